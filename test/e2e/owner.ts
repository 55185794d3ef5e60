// One owner's cluster for the end-to-end test and `npm run demo:k8s`: a real API server with
// kube-controller-manager (Deployments and StatefulSets make pods, garbage collection, service
// account tokens), a test kubelet as its only node, and the Concord chart installed with helm —
// nothing else. Images map to this checkout's build (dist/); an attacking owner's operator image
// maps to a build whose coordinator attacks (test/e2e/images/).
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { GROUP, VERSION, type Peer, type TrainingRun } from '../../operator/src/api/types.js';
import { startCluster, waitForCrds, type TestCluster } from '../../scripts/kube/cluster.js';
import { OPERATOR_POD_MS } from '../support/deadlines.js';
import { waitFor } from '../support/wait.js';
import { PROJECT_ROOT } from '../../scripts/project-root.js';
import { TestKubelet } from './kubelet.js';

const execFileAsync = promisify(execFile);
const ROOT = PROJECT_ROOT;

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
  if (process.getuid?.() !== 0) {
    throw new Error('the test kubelet needs root: it mounts each pod\'s volumes in a mount namespace of its own (unshare --mount, mount --bind); run as root (CI does)');
  }
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
  await waitForCrds(cluster); // helm returns once the CRDs are created, not yet served

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

/** A prepared dataset an owner holds on a volume: its claim, and what the run pins. */
export interface VolumeDataset {
  claimName: string;
  hash: string;
  vocabSize: number;
}

/**
 * Fills a volume with a prepared dataset as an owner would: a PersistentVolumeClaim, and the
 * dataset's files copied onto the volume behind it (the test kubelet keeps a claim's volume in a
 * directory of its own, test/e2e/kubelet.ts).
 */
export async function fillVolume(o: Owner, claimName: string, datasetDir: string): Promise<void> {
  await o.cluster.core.createNamespacedPersistentVolumeClaim({
    namespace: 'default',
    body: { metadata: { name: claimName }, spec: { accessModes: ['ReadOnlyMany'], resources: { requests: { storage: '1Gi' } } } },
  });
  await cp(datasetDir, o.kubelet.claimDir('default', claimName), { recursive: true });
}

/**
 * The run every owner of the end-to-end test and the demo applies (tiny model, short rounds): a
 * GPT on the bundled corpus, or with `dataset` a Llama-family model (grouped-query attention,
 * untied output) on a prepared dataset every owner holds on a volume.
 */
export function e2eRunSpec(options: { rounds?: number; windowSeconds?: number; maxInnerSteps?: number; dataset?: VolumeDataset } = {}): Record<string, unknown> {
  const { dataset } = options;
  return {
    runId: dataset === undefined ? 'e2e-gpt' : 'e2e-llama', seed: 7,
    model: dataset === undefined ? { vocabSize: 512, seqLen: 32, layers: 1, dModel: 32, heads: 2 }
      : { family: 'llama', vocabSize: dataset.vocabSize, seqLen: 32, layers: 1, dModel: 32, heads: 4, kvHeads: 2 },
    ...(dataset === undefined ? {} : { data: { dataset: { claimName: dataset.claimName, hash: dataset.hash } } }),
    workers: [{ name: 'cpu', replicas: 1, gpu: { count: 0 }, threads: 1 }],
    inner: { batch: 4 },
    // A few hundred inner steps a round (DiLoCo's H): the tiny model would otherwise take
    // thousands in a window and drift far from the base.
    outer: { optimizer: 'sgd', rounds: options.rounds ?? 16, windowSeconds: options.windowSeconds ?? 8, graceSeconds: 6, maxInnerSteps: options.maxInnerSteps ?? 300 },
    compression: { chunk: 1024, topk: 32 },
    validation: { batches: 1 },
    federation: { serviceType: 'LoadBalancer' },
  };
}

export async function getRun(o: Owner, name: string): Promise<TrainingRun> {
  return (await o.cluster.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, plural: 'trainingruns', namespace: 'default', name })) as TrainingRun;
}

export async function getPeer(o: Owner, name: string): Promise<Peer> {
  return (await o.cluster.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, plural: 'peers', namespace: 'default', name })) as Peer;
}

export async function applyRun(o: Owner, name: string, spec: Record<string, unknown>): Promise<void> {
  await o.cluster.objects.create({ apiVersion: `${GROUP}/${VERSION}`, kind: 'TrainingRun', metadata: { name, namespace: 'default' }, spec });
}

/**
 * What each owner hands its partners, read from its own cluster as a person would: the run's
 * public key (status.identity.publicKey) and the federation Service's load-balancer address.
 * Then every owner adds a Peer for each partner (named after the partner).
 */
export async function introduce(owners: readonly Owner[], run: string, timeoutMs = OPERATOR_POD_MS): Promise<void> {
  const contacts = await Promise.all(owners.map(async (o) => {
    let key: string | undefined;
    let ip: string | undefined;
    await waitFor(async () => {
      key = (await getRun(o, run)).status?.identity?.publicKey;
      ip = (await o.cluster.core.readNamespacedService({ name: `${run}-federation`, namespace: 'default' })).status?.loadBalancer?.ingress?.[0]?.ip;
      return key !== undefined && ip !== undefined;
    }, timeoutMs, `${o.name}'s key and federation address`, 500);
    return { owner: o.name, key: key!, endpoint: `${ip}:7443` };
  }));
  for (const o of owners) {
    for (const partner of contacts.filter((c) => c.owner !== o.name)) {
      await o.cluster.objects.create({ apiVersion: `${GROUP}/${VERSION}`, kind: 'Peer', metadata: { name: partner.owner, namespace: 'default' }, spec: { runRef: { name: run }, endpoint: partner.endpoint, publicKey: partner.key } });
    }
  }
}
