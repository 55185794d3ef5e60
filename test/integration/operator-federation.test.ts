import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { AppsV1Api, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { Coordinator } from '../../operator/src/coordinator/coordinator.js';
import { parseCoordinatorConfig } from '../../operator/src/coordinator/config.js';
import { encodePublicKey, generateIdentity, identityFromPem } from '../../operator/src/federation/identity.js';
import type { Operator } from '../../operator/src/manager.js';
import { serveMetrics, type MetricsServer } from '../../operator/src/metrics/serve.js';
import { freePort } from '../../operator/src/runtime/free-port.js';
import type { Peer, TrainingRun } from '../../operator/src/api/types.js';
import { installCrds, startCluster, type TestCluster } from '../../scripts/kube/cluster.js';
import { API_SERVER_START_MS, RECONCILE_MS, SERVER_START_MS, TEARDOWN_MS, within } from '../support/deadlines.js';
import { getPeer, getRun, memoryLogger, peerObject, startOperator, trainingRun } from '../support/operator.js';
import { waitFor } from '../support/wait.js';

// Every wait below has its own deadline (test/support/deadlines.ts); each test's own limit is
// above their sum.

// Two owners, two real API servers, an operator in each. Each owner applies a TrainingRun and a
// Peer for the other, with the public key the other's TrainingRun status shows, as a person
// would. No kubelet runs here, so the test plays the coordinator pod's part: it starts a real
// Coordinator from exactly the ConfigMap and identity Secret the operator made (federation on a
// loopback port), and points the operator's status polling at it.
interface Owner {
  name: string;
  cluster: TestCluster;
  operator: Operator;
  /** Where this owner's coordinator listens for partners (the Peer endpoint the other writes). */
  federationPort: number;
  statusPort: number;
  coordinator?: { coordinator: Coordinator; metrics: MetricsServer };
}

const owners: Owner[] = [];

async function owner(name: string): Promise<Owner> {
  const cluster = await startCluster();
  await installCrds(cluster);
  const statusPort = await freePort();
  const operator = await startOperator(cluster, { coordinatorAddress: () => `127.0.0.1:${statusPort}` });
  const o: Owner = { name, cluster, operator, federationPort: await freePort(), statusPort };
  owners.push(o);
  return o;
}

/** Starts (or restarts, as a rollout would) the owner's coordinator from what the operator made. */
async function runCoordinator(o: Owner): Promise<Coordinator> {
  await stopCoordinator(o);
  const config = await o.cluster.core.readNamespacedConfigMap({ name: 'run-config', namespace: 'default' });
  const secret = await o.cluster.core.readNamespacedSecret({ name: 'run-identity', namespace: 'default' });
  const parsed = parseCoordinatorConfig(config.data!['coordinator.yaml']!);
  const coordinator = new Coordinator({
    name: o.name, runId: parsed.runId, identity: identityFromPem(Buffer.from(secret.data!['private.pem']!, 'base64').toString()),
    listen: { host: '127.0.0.1', port: o.federationPort }, trainerListen: { host: '127.0.0.1', port: 0 },
    peers: parsed.peers, settings: parsed.rounds, train: parsed.train, trainers: parsed.trainers, log: memoryLogger(),
  });
  await coordinator.start();
  void coordinator.probePeers(300);
  const metrics = await serveMetrics(coordinator.registry, '127.0.0.1', o.statusPort, { '/status': () => ({ status: 200, body: coordinator.report() }) });
  o.coordinator = { coordinator, metrics };
  // What the kubelet and the Deployment controller would report once the pod is up.
  await o.cluster.config.makeApiClient(AppsV1Api).patchNamespacedDeploymentStatus({
    name: 'run-coordinator', namespace: 'default', body: { status: { replicas: 1, readyReplicas: 1, availableReplicas: 1 } },
  }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
  return coordinator;
}

async function stopCoordinator(o: Owner): Promise<void> {
  if (o.coordinator === undefined) return;
  await o.coordinator.coordinator.stop(0);
  await o.coordinator.metrics.close();
  o.coordinator = undefined;
}

let a: Owner;
let b: Owner;

beforeAll(async () => {
  [a, b] = await Promise.all([owner('owner-a'), owner('owner-b')]);
}, within(API_SERVER_START_MS));

afterAll(async () => {
  for (const o of owners) {
    await stopCoordinator(o);
    await o.operator.stop();
    await o.cluster.stop();
  }
}, within(2 * TEARDOWN_MS));

const condition = (object: TrainingRun | Peer, type: string) => object.status?.conditions?.find((c) => c.type === type);

describe('two owners, two API servers, an operator in each', () => {
  it('reconciles each side independently with its own identity; handshakes show in Peer conditions', async () => {
    const spec = { runId: 'shared-run' };
    await Promise.all([a, b].map((o) => o.cluster.objects.create(trainingRun('run', spec))));
    const keyOf = async (o: Owner) => {
      let key: string | undefined;
      await waitFor(async () => (key = (await getRun(o.cluster, 'run')).status?.identity?.publicKey) !== undefined, RECONCILE_MS, `${o.name}'s identity`);
      return key!;
    };
    const [keyA, keyB] = await Promise.all([keyOf(a), keyOf(b)]);
    expect(keyA).not.toBe(keyB);

    // Each owner adds the other as a Peer, with the key read from the other's status.
    await a.cluster.objects.create(peerObject('owner-b', 'run', `127.0.0.1:${b.federationPort}`, keyB));
    await b.cluster.objects.create(peerObject('owner-a', 'run', `127.0.0.1:${a.federationPort}`, keyA));
    // Owner A also lists a partner that is down, one configured with the wrong key, and by
    // mistake its own key.
    const stranger = await freePort();
    await a.cluster.objects.create(peerObject('stranger', 'run', `127.0.0.1:${stranger}`, encodePublicKey(generateIdentity().publicKey)));
    await a.cluster.objects.create(peerObject('wrong-key', 'run', `127.0.0.1:${b.federationPort}`, encodePublicKey(generateIdentity().publicKey)));
    await a.cluster.objects.create(peerObject('itself', 'run', `127.0.0.1:${a.federationPort}`, keyA));
    await waitFor(async () => (await a.cluster.core.readNamespacedConfigMap({ name: 'run-config', namespace: 'default' })).data!['coordinator.yaml']!.includes('wrong-key'), RECONCILE_MS, 'A\'s peers in its config');
    await waitFor(async () => (await b.cluster.core.readNamespacedConfigMap({ name: 'run-config', namespace: 'default' })).data!['coordinator.yaml']!.includes('owner-a'), RECONCILE_MS, 'B\'s peer in its config');
    await Promise.all([runCoordinator(a), runCoordinator(b)]);

    const peerCondition = async (o: Owner, peer: string, type: string) => condition(await getPeer(o.cluster, peer), type);
    await waitFor(async () => (await peerCondition(a, 'owner-b', 'Verified'))?.status === 'True', RECONCILE_MS, 'A to verify B');
    await waitFor(async () => (await peerCondition(b, 'owner-a', 'Verified'))?.status === 'True', RECONCILE_MS, 'B to verify A');
    expect(await peerCondition(a, 'owner-b', 'Reachable')).toMatchObject({ status: 'True', reason: 'HandshakeSucceeded' });
    await waitFor(async () => (await peerCondition(a, 'stranger', 'Reachable'))?.status === 'False', RECONCILE_MS, 'the stranger to be unreachable');
    expect(await peerCondition(a, 'stranger', 'Reachable')).toMatchObject({ reason: 'Unreachable' });
    await waitFor(async () => (await peerCondition(a, 'wrong-key', 'Verified'))?.status === 'False', RECONCILE_MS, 'the wrong key to be caught');
    // Reachable but misconfigured: a different reason than unreachable.
    expect(await peerCondition(a, 'wrong-key', 'Verified')).toMatchObject({ reason: 'KeyMismatch' });
    expect(await peerCondition(a, 'wrong-key', 'Reachable')).toMatchObject({ status: 'True' });

    // The run's own key as a Peer: refused by the operator, kept out of the coordinator's config.
    expect(await peerCondition(a, 'itself', 'Verified')).toMatchObject({ status: 'False', reason: 'InvalidSpec' });
    expect((await a.cluster.core.readNamespacedConfigMap({ name: 'run-config', namespace: 'default' })).data!['coordinator.yaml']).not.toContain('itself');

    const peerB = await getPeer(a.cluster, 'owner-b');
    expect(peerB.status!.lastSeen).toBeDefined();
    expect(peerB.status!.rttMs).toBeGreaterThanOrEqual(0);
    expect(peerB.status!.peerId).toMatch(/^[0-9a-f]+$/);
    // Status of the runs: B has its one peer verified; A one of three.
    await waitFor(async () => condition(await getRun(b.cluster, 'run'), 'Federated')?.status === 'True', RECONCILE_MS, 'B federated');
    await waitFor(async () => (await getRun(a.cluster, 'run')).status?.peers?.summary === '1/4', RECONCILE_MS, 'A\'s peer summary');
    expect(condition(await getRun(a.cluster, 'run'), 'Federated')).toMatchObject({ status: 'False', reason: 'TooFewPeersVerified' });
  }, within(9 * RECONCILE_MS, 2 * SERVER_START_MS));

  it('a deleted Peer is revoked: once the coordinator rolls with the new config, the partner is refused', async () => {
    await b.cluster.objects.delete(peerObject('owner-a', 'run', `127.0.0.1:${a.federationPort}`, 'x'));
    await waitFor(async () => !(await b.cluster.core.readNamespacedConfigMap({ name: 'run-config', namespace: 'default' })).data!['coordinator.yaml']!.includes('owner-a'), RECONCILE_MS, 'B\'s config without A');
    // The config hash in the pod template changed: the Deployment rolls, which this test plays.
    await runCoordinator(b);
    await waitFor(async () => condition(await getPeer(a.cluster, 'owner-b'), 'Verified')?.reason === 'NotAllowedByPeer', RECONCILE_MS, 'A to be refused by B');
    expect(condition(await getPeer(a.cluster, 'owner-b'), 'Reachable')).toMatchObject({ status: 'True' });
  }, within(2 * RECONCILE_MS, TEARDOWN_MS, SERVER_START_MS));
});
