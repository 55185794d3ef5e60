import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { AppsV1Api, CoordinationV1Api } from '@kubernetes/client-node';
import type { Operator } from '../../operator/src/manager.js';
import { freePort } from '../../operator/src/runtime/free-port.js';
import { installCrds, startCluster, type TestCluster } from '../../scripts/kube/cluster.js';
import { API_SERVER_RESTART_MS, API_SERVER_START_MS, LEADER_MS, RECONCILE_MS, TEARDOWN_MS, within } from '../support/deadlines.js';
import { getRun, startOperator, trainingRun } from '../support/operator.js';
import { waitFor } from '../support/wait.js';

// Every wait below has its own deadline (test/support/deadlines.ts); each test's own limit is
// above their sum.

// Leader election, the API server going away, and the health and metrics endpoints, against one
// real API server (no controller manager: nothing here needs garbage collection).
let cluster: TestCluster;
let apps: AppsV1Api;
const operators: Operator[] = [];

beforeAll(async () => {
  cluster = await startCluster();
  await installCrds(cluster);
  apps = cluster.config.makeApiClient(AppsV1Api);
}, within(API_SERVER_START_MS));

afterAll(async () => {
  await Promise.all(operators.map((o) => o.stop().catch(() => undefined)));
  await cluster?.stop();
}, within(TEARDOWN_MS));

const election = { namespace: 'default', name: 'concord-operator', leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 500 };
const hasCoordinator = (name: string) => apps.readNamespacedDeployment({ name: `${name}-coordinator`, namespace: 'default' }).then(() => true, () => false);

describe('operator runtime against a real API server', () => {
  it('elects one leader of two instances; the other takes over when the leader stops', async () => {
    const first = await startOperator(cluster, { leaderElection: { ...election, identity: 'first' } });
    operators.push(first);
    await waitFor(() => first.isLeader, LEADER_MS, 'the first instance to lead');
    const second = await startOperator(cluster, { leaderElection: { ...election, identity: 'second' } });
    operators.push(second);
    const lease = await cluster.config.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: 'concord-operator', namespace: 'default' });
    expect(lease.spec!.holderIdentity).toBe('first');

    await cluster.objects.create(trainingRun('led-by-first'));
    await waitFor(() => hasCoordinator('led-by-first'), RECONCILE_MS, 'the leader to reconcile');
    // Only the leader works: the follower's reconcile counter stays at zero (counted when a
    // reconcile ends, which may be a moment after the child appeared).
    const reconciles = async (o: Operator) => (await o.metrics.reconciles.get()).values.filter((v) => v.labels.controller === 'trainingrun').reduce((s, v) => s + v.value, 0);
    await waitFor(async () => (await reconciles(first)) > 0, RECONCILE_MS, 'the leader\'s reconcile to be counted');
    expect(second.isLeader).toBe(false);
    expect(await reconciles(second)).toBe(0);

    await first.stop();
    await waitFor(() => second.isLeader, LEADER_MS, 'the second instance to take over');
    await cluster.objects.create(trainingRun('led-by-second'));
    await waitFor(() => hasCoordinator('led-by-second'), RECONCILE_MS, 'the new leader to reconcile');
    await second.stop();
  }, within(2 * LEADER_MS, 3 * RECONCILE_MS, TEARDOWN_MS));

  it('recovers when the API server restarts mid-run', async () => {
    const operator = await startOperator(cluster);
    operators.push(operator);
    await cluster.objects.create(trainingRun('survivor'));
    await waitFor(() => hasCoordinator('survivor'), RECONCILE_MS, 'the first reconcile');
    await cluster.restartApiServer();
    // Changes made after the restart are seen: the informers came back by themselves (twice a
    // reconcile's deadline: they first reconnect to the restarted server).
    await cluster.objects.create(trainingRun('after-restart'));
    await waitFor(() => hasCoordinator('after-restart'), 2 * RECONCILE_MS, 'a run created after the restart to be reconciled');
    await apps.deleteNamespacedDeployment({ name: 'survivor-coordinator', namespace: 'default' });
    await waitFor(() => hasCoordinator('survivor'), 2 * RECONCILE_MS, 'a deleted child to be recreated after the restart');
    expect((await getRun(cluster, 'after-restart')).status?.identity?.publicKey).toBeDefined();
    await operator.stop();
  }, within(API_SERVER_RESTART_MS, 5 * RECONCILE_MS, TEARDOWN_MS));

  it('serves /healthz, /readyz and /metrics with the reconcile counters and queue depth', async () => {
    const port = await freePort();
    const operator = await startOperator(cluster, { healthListen: { host: '127.0.0.1', port } });
    operators.push(operator);
    await cluster.objects.create(trainingRun('observed'));
    await waitFor(() => hasCoordinator('observed'), RECONCILE_MS, 'a reconcile');
    const get = (path: string) => fetch(`http://127.0.0.1:${port}${path}`);
    expect((await get('/healthz')).status).toBe(200);
    expect(await (await get('/readyz')).text()).toBe('ok\n');
    const metrics = await (await get('/metrics')).text();
    expect(metrics).toMatch(/concord_reconcile_total\{controller="trainingrun",result="(success|requeue)"\} [1-9]/);
    expect(metrics).toContain('concord_reconcile_duration_seconds_bucket{le="0.005",controller="trainingrun"}');
    expect(metrics).toContain('concord_workqueue_depth{controller="peer"}');
    await operator.stop();
    await expect(get('/healthz')).rejects.toThrow();
  }, within(RECONCILE_MS, TEARDOWN_MS));
});
