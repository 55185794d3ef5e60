import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { AppsV1Api, CoordinationV1Api } from '@kubernetes/client-node';
import type { Operator } from '../../operator/src/manager.js';
import { freePort } from '../../operator/src/runtime/free-port.js';
import { installCrds, startCluster, waitFor, type TestCluster } from '../../scripts/kube/cluster.js';
import { getRun, startOperator, trainingRun } from '../support/operator.js';

// Every wait below has its own deadline; the test's own limit only has to be above their sum on a
// loaded machine.
jest.setTimeout(120_000);

// Leader election, the API server going away, and the health and metrics endpoints, against one
// real API server (no controller manager: nothing here needs garbage collection).
let cluster: TestCluster;
let apps: AppsV1Api;
const operators: Operator[] = [];

beforeAll(async () => {
  cluster = await startCluster();
  await installCrds(cluster);
  apps = cluster.config.makeApiClient(AppsV1Api);
}, 30 * 60_000);

afterAll(async () => {
  await Promise.all(operators.map((o) => o.stop().catch(() => undefined)));
  await cluster?.stop();
}, 60_000);

const election = { namespace: 'default', name: 'concord-operator', leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 500 };
const hasCoordinator = (name: string) => apps.readNamespacedDeployment({ name: `${name}-coordinator`, namespace: 'default' }).then(() => true, () => false);

describe('operator runtime against a real API server', () => {
  it('elects one leader of two instances; the other takes over when the leader stops', async () => {
    const first = await startOperator(cluster, { leaderElection: { ...election, identity: 'first' } });
    operators.push(first);
    await waitFor(() => first.isLeader, 10_000, 'the first instance to lead');
    const second = await startOperator(cluster, { leaderElection: { ...election, identity: 'second' } });
    operators.push(second);
    const lease = await cluster.config.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: 'concord-operator', namespace: 'default' });
    expect(lease.spec!.holderIdentity).toBe('first');

    await cluster.objects.create(trainingRun('led-by-first'));
    await waitFor(() => hasCoordinator('led-by-first'), 30_000, 'the leader to reconcile');
    // Only the leader works: the follower's reconcile counter stays at zero (counted when a
    // reconcile ends, which may be a moment after the child appeared).
    const reconciles = async (o: Operator) => (await o.metrics.reconciles.get()).values.filter((v) => v.labels.controller === 'trainingrun').reduce((s, v) => s + v.value, 0);
    await waitFor(async () => (await reconciles(first)) > 0, 30_000, 'the leader\'s reconcile to be counted');
    expect(second.isLeader).toBe(false);
    expect(await reconciles(second)).toBe(0);

    await first.stop();
    await waitFor(() => second.isLeader, 10_000, 'the second instance to take over');
    await cluster.objects.create(trainingRun('led-by-second'));
    await waitFor(() => hasCoordinator('led-by-second'), 30_000, 'the new leader to reconcile');
    await second.stop();
  }, 120_000);

  it('recovers when the API server restarts mid-run', async () => {
    const operator = await startOperator(cluster);
    operators.push(operator);
    await cluster.objects.create(trainingRun('survivor'));
    await waitFor(() => hasCoordinator('survivor'), 30_000, 'the first reconcile');
    await cluster.restartApiServer();
    // Changes made after the restart are seen: the informers came back by themselves.
    await cluster.objects.create(trainingRun('after-restart'));
    await waitFor(() => hasCoordinator('after-restart'), 60_000, 'a run created after the restart to be reconciled');
    await apps.deleteNamespacedDeployment({ name: 'survivor-coordinator', namespace: 'default' });
    await waitFor(() => hasCoordinator('survivor'), 60_000, 'a deleted child to be recreated after the restart');
    expect((await getRun(cluster, 'after-restart')).status?.identity?.publicKey).toBeDefined();
    await operator.stop();
  }, 180_000);

  it('serves /healthz, /readyz and /metrics with the reconcile counters and queue depth', async () => {
    const port = await freePort();
    const operator = await startOperator(cluster, { healthListen: { host: '127.0.0.1', port } });
    operators.push(operator);
    await cluster.objects.create(trainingRun('observed'));
    await waitFor(() => hasCoordinator('observed'), 30_000, 'a reconcile');
    const get = (path: string) => fetch(`http://127.0.0.1:${port}${path}`);
    expect((await get('/healthz')).status).toBe(200);
    expect(await (await get('/readyz')).text()).toBe('ok\n');
    const metrics = await (await get('/metrics')).text();
    expect(metrics).toMatch(/concord_reconcile_total\{controller="trainingrun",result="(success|requeue)"\} [1-9]/);
    expect(metrics).toContain('concord_reconcile_duration_seconds_bucket{le="0.005",controller="trainingrun"}');
    expect(metrics).toContain('concord_workqueue_depth{controller="peer"}');
    await operator.stop();
    await expect(get('/healthz')).rejects.toThrow();
  }, 60_000);
});
