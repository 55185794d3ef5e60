// Helpers of the operator tests: TrainingRun and Peer objects as a user writes them, and an
// operator instance running in the test process against a test cluster.
import type { KubernetesObject } from '@kubernetes/client-node';
import { API_VERSION, GROUP, VERSION, type Peer, type TrainingRun } from '../../operator/src/api/types.js';
import { jsonLogger, type Logger } from '../../operator/src/log.js';
import { Operator, type OperatorOptions } from '../../operator/src/manager.js';
import type { TestCluster } from '../../scripts/kube/cluster.js';

export const IMAGES = { coordinator: 'concord-operator:test', trainer: 'concord-trainer:test' };

/** A TrainingRun as a user applies it (the API server fills the defaults). */
export type Manifest = KubernetesObject & { spec: Record<string, unknown> };

export function trainingRun(name: string, spec: Record<string, unknown> = {}, namespace = 'default'): Manifest {
  const run = {
    apiVersion: API_VERSION, kind: 'TrainingRun', metadata: { name, namespace },
    spec: {
      runId: `test-${name}`,
      model: { vocabSize: 512, seqLen: 32, layers: 1, dModel: 32, heads: 2 },
      workers: [{ name: 'cpu', replicas: 1, gpu: { count: 0 } }],
      outer: { rounds: 5, windowSeconds: 30 },
      ...spec,
    },
  };
  return run as Manifest;
}

export function peerObject(name: string, run: string, endpoint: string, publicKey: string, namespace = 'default'): Manifest {
  return { apiVersion: API_VERSION, kind: 'Peer', metadata: { name, namespace }, spec: { runRef: { name: run }, endpoint, publicKey } };
}

export async function getRun(cluster: TestCluster, name: string, namespace = 'default'): Promise<TrainingRun> {
  return (await cluster.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, plural: 'trainingruns', namespace, name })) as TrainingRun;
}

export async function getPeer(cluster: TestCluster, name: string, namespace = 'default'): Promise<Peer> {
  return (await cluster.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, plural: 'peers', namespace, name })) as Peer;
}

/** Log lines kept in memory (printed only when a test wants them). */
export function memoryLogger(lines: string[] = []): Logger & { lines: string[] } {
  return Object.assign(jsonLogger({}, (line) => void lines.push(line)), { lines });
}

export async function startOperator(cluster: TestCluster, options: Partial<OperatorOptions> = {}): Promise<Operator & { logLines: string[] }> {
  const log = memoryLogger();
  const operator = new Operator({
    config: cluster.config, images: IMAGES, log, pollMs: 500, workers: 2,
    retry: { baseDelayMs: 50, maxDelayMs: 2_000 },
    // No coordinator runs in these clusters (no kubelet): a closed port answers at once.
    coordinatorAddress: () => '127.0.0.1:1',
    ...options,
  });
  await operator.start();
  return Object.assign(operator, { logLines: log.lines });
}
