// One owner's cluster for the end-to-end test and `npm run demo:k8s`: a real API server with
// kube-controller-manager (Deployments and StatefulSets make pods, garbage collection, service
// account tokens), a test kubelet as its only node, and the Concord chart installed with helm —
// nothing else. Images map to this checkout's build (dist/); an attacking owner's operator image
// maps to a build whose coordinator attacks (test/e2e/images/).
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startCluster, type TestCluster } from '../../scripts/kube/cluster.js';
import { TestKubelet } from './kubelet.js';

const execFileAsync = promisify(execFile);
/** The checkout (this module runs from test/e2e/ under jest, from dist/test/e2e/ built). */
const ROOT = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'charts/concord/Chart.yaml'))) {
    if (dirname(dir) === dir) throw new Error('charts/concord not found');
    dir = dirname(dir);
  }
  return dir;
})();

export interface Owner {
  name: string;
  cluster: TestCluster;
  kubelet: TestKubelet;
  dir: string;
  /** Pods, their states and the tails of their logs, and the kubelet's errors: for a failing test. */
  describe(): Promise<string>;
  stop(): Promise<void>;
}

/**
 * An image whose coordinator runs one of the attacks of scripts/attacks.ts: what a dishonest owner
 * would build. Its operator is the real one (the attack is in the coordinator).
 */
async function attackerImage(dir: string, attack: string): Promise<string> {
  const cmd = join(dir, 'dist/operator/src/cmd');
  await mkdir(cmd, { recursive: true });
  await writeFile(join(cmd, 'operator.js'), `await import(${JSON.stringify(join(ROOT, 'dist/operator/src/cmd/operator.js'))});\n`);
  await writeFile(join(cmd, 'coordinator.js'), [
    `process.argv.push('--attack', ${JSON.stringify(attack)});`,
    `await import(${JSON.stringify(join(ROOT, 'dist/scripts/malicious-coordinator.js'))});`,
  ].join('\n'));
  await writeFile(join(dir, 'package.json'), '{"type":"module"}\n');
  return dir;
}

export async function startOwner(name: string, subnet: number, options: { attack?: string } = {}): Promise<Owner> {
  const dir = await mkdtemp(join(tmpdir(), `concord-e2e-${name}-`));
  const cluster = await startCluster({ controllerManager: true });
  const apiServerPort = Number(new URL(cluster.config.getCurrentCluster()!.server).port);
  const operatorRepository = options.attack === undefined ? 'concord-operator' : 'concord-operator-attacker';
  const images: Record<string, string> = { 'concord-operator': ROOT, 'concord-trainer': ROOT };
  // Not under /tmp: a pod's emptyDir at /tmp would hide it from the pod's own process.
  if (options.attack !== undefined) images['concord-operator-attacker'] = await attackerImage(join(ROOT, '.cache/e2e-images', `${name}-${options.attack}`), options.attack);
  const kubelet = new TestKubelet({ cluster, node: `${name}-node`, subnet, images, dir: join(dir, 'node'), apiServerPort });
  await kubelet.start();
  // The chart, as an owner installs it (1.20 API server: see docs/install.md for the flag).
  await execFileAsync(join(ROOT, 'scripts/helm/helm.sh'), [
    'install', 'concord', join(ROOT, 'charts/concord'), '--kubeconfig', cluster.kubeconfigPath, '--namespace', 'concord-system', '--create-namespace',
    '--disable-openapi-validation',
    '--set', `operator.image.repository=${operatorRepository}`, '--set', 'trainer.image.repository=concord-trainer',
    '--set', 'operator.pollSeconds=2', '--set', 'operator.image.pullPolicy=Never',
  ]);
  return {
    name, cluster, kubelet, dir,
    describe: async () => {
      const lines = [`=== ${name}`, ...kubelet.errors];
      for (const pod of (await cluster.core.listPodForAllNamespaces()).items) {
        lines.push(`--- pod ${pod.metadata!.namespace}/${pod.metadata!.name} ${pod.status?.phase} ${JSON.stringify(pod.status?.containerStatuses?.[0]?.state ?? {})}`);
        lines.push(await readFile(kubelet.logOf(pod.metadata!.namespace!, pod.metadata!.name!), 'utf8').then((t) => t.slice(-2000), () => '(no log)'));
      }
      return lines.join('\n');
    },
    stop: async () => {
      await kubelet.stop();
      await cluster.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
