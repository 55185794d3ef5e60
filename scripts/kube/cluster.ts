// A real Kubernetes API server for tests, benchmarks and demos: scripts/kube/start.sh (etcd + kube-apiserver v1.20.2,
// optionally kube-controller-manager for garbage collection), built once per machine into
// ~/.cache/concord/kube. Each cluster lives in its own temp directory; stop() removes it.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  ApiextensionsV1Api, CoreV1Api, CustomObjectsApi, KubeConfig, KubernetesObjectApi, loadYaml, type KubernetesObject,
} from '@kubernetes/client-node';
import { GROUP, VERSION } from '../../operator/src/api/types.js';
import { KeepAliveKubeConfig } from '../../operator/src/runtime/kube-config.js';
import { PROJECT_ROOT } from '../project-root.js';

const run = promisify(execFile);
const ROOT = PROJECT_ROOT;

export interface TestCluster {
  dir: string;
  kubeconfigPath: string;
  config: KubeConfig;
  objects: KubernetesObjectApi;
  core: CoreV1Api;
  custom: CustomObjectsApi;
  /** Kills the API server and starts it again with the same flags and data (etcd keeps running). */
  restartApiServer(): Promise<void>;
  stop(): Promise<void>;
}

export async function startCluster(options: { controllerManager?: boolean } = {}): Promise<TestCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'concord-kube-'));
  const args = [...(options.controllerManager ? ['--controller-manager'] : []), dir];
  try {
    await run('bash', [join(ROOT, 'scripts/kube/start.sh'), ...args], { maxBuffer: 16 * 1024 * 1024, timeout: 30 * 60_000 });
  } catch (error) {
    await run('bash', [join(ROOT, 'scripts/kube/stop.sh'), dir]).catch(() => undefined);
    throw new Error(`scripts/kube/start.sh failed: ${(error as { stderr?: string }).stderr ?? String(error)}`);
  }
  const kubeconfigPath = join(dir, 'kubeconfig');
  // Reusing connections, as the operator does: benchmarks measure the API server, not handshakes.
  const config = new KeepAliveKubeConfig();
  config.loadFromFile(kubeconfigPath);
  const cluster: TestCluster = {
    dir, kubeconfigPath, config,
    objects: KubernetesObjectApi.makeApiClient(config),
    core: config.makeApiClient(CoreV1Api),
    custom: config.makeApiClient(CustomObjectsApi),
    restartApiServer: async () => {
      const pids = await readFile(join(dir, 'pids'), 'utf8');
      const line = pids.split('\n').find((l) => l.endsWith(' kube-apiserver'));
      if (line === undefined) throw new Error('no kube-apiserver in pids');
      const pid = Number(line.split(' ')[0]);
      process.kill(pid, 'SIGKILL');
      await waitFor(async () => !alive(pid), 10_000, 'the API server to die');
      // start.sh wrote the exact command line; run it detached again and record the new pid.
      const { stdout } = await run('bash', ['-c', `setsid "${dir}/run-kube-apiserver.sh" </dev/null >>"${dir}/kube-apiserver.log" 2>&1 & echo $!`]);
      const next = Number(stdout.trim());
      const rest = pids.split('\n').filter((l) => l.trim() !== '' && !l.endsWith(' kube-apiserver'));
      await run('bash', ['-c', `printf '%s\\n' ${[...rest, `${next} kube-apiserver`].map((l) => `'${l}'`).join(' ')} > "${dir}/pids"`]);
      // /readyz, as start.sh waits for it: the server answers some requests (namespaces) before
      // its post-start hooks are done, and custom resources get 503 "server is starting" until then.
      const readyz = `${config.getCurrentCluster()!.server}/readyz`;
      await waitFor(async () => {
        const { stdout: answer } = await run('curl', ['-ks', '--max-time', '3', '-H', `Authorization: Bearer ${(await readFile(join(dir, 'token'), 'utf8')).trim()}`, readyz]).catch(() => ({ stdout: '' }));
        return answer === 'ok';
      }, 60_000, 'the API server to be ready again');
    },
    stop: async () => {
      await run('bash', [join(ROOT, 'scripts/kube/stop.sh'), dir]).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
  return cluster;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Installs the CRDs of crds/ and waits until the API server serves them. */
export async function installCrds(cluster: TestCluster): Promise<void> {
  const dir = join(ROOT, 'crds');
  for (const file of (await readdir(dir)).filter((f) => f.endsWith('.yaml')).sort()) {
    // loadYaml maps JSON names onto client-node's model names ("default" → _default); a plain
    // object would lose every default and enum in serialisation.
    await cluster.objects.create(loadYaml<KubernetesObject>(await readFile(join(dir, file), 'utf8')));
  }
  await waitForCrds(cluster);
}

/**
 * Waits until the API server serves Concord's CRDs (installed by installCrds or by the chart):
 * established, listable, and in discovery, which KubernetesObjectApi reads to map a kind to its
 * path and which the API server updates a moment after the CRD is established.
 */
export async function waitForCrds(cluster: TestCluster): Promise<void> {
  const api = cluster.config.makeApiClient(ApiextensionsV1Api);
  for (const [plural, kind] of [['trainingruns', 'TrainingRun'], ['peers', 'Peer']] as const) {
    await waitFor(async () => {
      const crd = await api.readCustomResourceDefinition({ name: `${plural}.${GROUP}` }).catch(() => undefined);
      return crd?.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') ?? false;
    }, 30_000, `CRD ${plural} to be established`);
    await waitFor(async () => {
      try {
        await cluster.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural });
        await cluster.objects.list(`${GROUP}/${VERSION}`, kind);
        return true;
      } catch {
        return false;
      }
    }, 30_000, `${plural} to be served`);
  }
}

/** Polls `check` until it returns true; fails with what it waited for. */
export async function waitFor(check: () => Promise<boolean> | boolean, timeoutMs: number, what: string, intervalMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await check()) return;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${String(lastError)})` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
