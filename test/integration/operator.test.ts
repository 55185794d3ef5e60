import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { AppsV1Api, type V1Deployment } from '@kubernetes/client-node';
import { GROUP, VERSION, type TrainingRun } from '../../operator/src/api/types.js';
import { encodePublicKey, generateIdentity, identityToPem } from '../../operator/src/federation/identity.js';
import type { Operator } from '../../operator/src/manager.js';
import { installCrds, startCluster, waitFor, type TestCluster } from '../support/kube.js';
import { getRun, peerObject, startOperator, trainingRun } from '../support/operator.js';

// One real API server (etcd + kube-apiserver + kube-controller-manager for garbage collection)
// and one operator for the whole file; each test uses its own TrainingRun.
let cluster: TestCluster;
let operator: Operator & { logLines: string[] };
let apps: AppsV1Api;

beforeAll(async () => {
  cluster = await startCluster({ controllerManager: true });
  await installCrds(cluster);
  apps = cluster.config.makeApiClient(AppsV1Api);
  operator = await startOperator(cluster);
}, 30 * 60_000);

afterAll(async () => {
  if (process.env.CONCORD_TEST_LOGS) console.log(operator?.logLines.join(""));
  await operator?.stop();
  await cluster?.stop();
}, 60_000);

const condition = (run: TrainingRun, type: string) => run.status?.conditions?.find((c) => c.type === type);
const exists = async (read: () => Promise<unknown>) => read().then(() => true, () => false);

describe('TrainingRun controller against a real API server', () => {
  it('creates the identity, config, volume, services, coordinator and one trainer StatefulSet per group, and reports status', async () => {
    await cluster.objects.create(trainingRun('alpha', {
      workers: [
        { name: 'a100', replicas: 2, gpu: { resource: 'nvidia.com/gpu', count: 1 }, batch: 32, nodeSelector: { gpu: 'a100' }, tolerations: [{ key: 'gpu', operator: 'Exists', effect: 'NoSchedule' }] },
        { name: 'cpu', replicas: 1, gpu: { count: 0 } },
      ],
    }));
    let run: TrainingRun | undefined;
    await waitFor(async () => {
      run = await getRun(cluster, 'alpha');
      return run.status?.identity?.publicKey !== undefined && run.status.observedGeneration === run.metadata.generation;
    }, 30_000, 'alpha to get a status with its identity');
    const secret = await cluster.core.readNamespacedSecret({ name: 'alpha-identity', namespace: 'default' });
    expect(Buffer.from(secret.data!['public.key']!, 'base64').toString()).toBe(run!.status!.identity!.publicKey);
    expect(secret.metadata!.ownerReferences?.[0]?.name).toBe('alpha');
    const config = await cluster.core.readNamespacedConfigMap({ name: 'alpha-config', namespace: 'default' });
    expect(Object.keys(config.data!).sort()).toEqual(['coordinator.yaml', 'trainer-a100.yaml', 'trainer-cpu.yaml']);
    expect(config.data!['trainer-a100.yaml']).toContain('batch: 32');
    expect(config.data!['trainer-a100.yaml']).toContain('device: cuda');
    await cluster.core.readNamespacedPersistentVolumeClaim({ name: 'alpha-checkpoints', namespace: 'default' });
    const federation = await cluster.core.readNamespacedService({ name: 'alpha-federation', namespace: 'default' });
    expect(federation.spec!.ports!.map((p) => p.port)).toEqual([7443]);
    await cluster.core.readNamespacedService({ name: 'alpha-coordinator', namespace: 'default' });
    const coordinator = await apps.readNamespacedDeployment({ name: 'alpha-coordinator', namespace: 'default' });
    expect(coordinator.spec!.template.spec!.containers[0]!.image).toBe('concord-operator:test');
    const gpu = await apps.readNamespacedStatefulSet({ name: 'alpha-trainer-a100', namespace: 'default' });
    expect(gpu.spec!.replicas).toBe(2);
    expect(gpu.spec!.template.spec!.containers[0]!.resources!.limits!['nvidia.com/gpu']).toBe('1');
    expect(gpu.spec!.template.spec!.nodeSelector).toEqual({ gpu: 'a100' });
    expect(gpu.spec!.template.spec!.tolerations![0]!.key).toBe('gpu');
    const cpu = await apps.readNamespacedStatefulSet({ name: 'alpha-trainer-cpu', namespace: 'default' });
    expect(cpu.spec!.template.spec!.containers[0]!.command).toContain('--replica-offset');
    expect(cpu.spec!.template.spec!.containers[0]!.command!.at(-1)).toBe('2');
    // No kubelet runs pods here: the coordinator never becomes available.
    expect(run!.status!.phase).toBe('Pending');
    expect(condition(run!, 'Ready')).toMatchObject({ status: 'False', reason: 'CoordinatorNotReady' });
    expect(condition(run!, 'Federated')).toMatchObject({ status: 'False', reason: 'NoPeers' });
    expect(run!.status!.progress).toBe('0/5');
  });
});
