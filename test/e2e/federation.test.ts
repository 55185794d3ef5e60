import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { AppsV1Api, type CoreV1Event } from '@kubernetes/client-node';
import { GROUP, VERSION, type Peer, type TrainingRun } from '../../operator/src/api/types.js';
import { parseCoordinatorConfig } from '../../operator/src/coordinator/config.js';
import { ModelState } from '../../operator/src/coordinator/model-state.js';
import { API_SERVER_START_MS, COMMAND_MS, CRDS_MS, E2E_ROUND_MS, GARBAGE_COLLECTION_MS, OPERATOR_POD_MS, POD_READY_MS, RECONCILE_MS, TEARDOWN_MS, within } from '../support/deadlines.js';
import { waitFor } from '../support/wait.js';
import { applyRun, e2eRunSpec, getPeer, getRun, introduce, startOwner, type Owner } from './owner.js';

// Three owners, three real API servers, each with the chart installed by helm and a test kubelet
// as its node (test/e2e/kubelet.ts, docs/e2e.md). Each owner applies the same TrainingRun and a
// Peer per partner with the key and address the partner's Kubernetes objects show, as people
// would; mallory's coordinator image attacks (it signs two different contributions a round).
// Coordinators wait for their Peers before the first round (a run trains with its partners).
// The test then reads only Kubernetes state.

let owners: Owner[];
const byName = (name: string) => owners.find((o) => o.name === name)!;
const run = (o: Owner) => getRun(o, 'gpt');
const condition = (object: TrainingRun | Peer, type: string) => object.status?.conditions?.find((c) => c.type === type);

const ROUNDS = (e2eRunSpec().outer as { rounds: number }).rounds;
/** The coordinators' pods up (after the Peers exist) and three rounds, then alpha and beta seen at the same round. */
const SAME_ROUND_MS = POD_READY_MS + 4 * E2E_ROUND_MS;
/** The rest of the run, at most every round of it. */
const FINISH_MS = ROUNDS * E2E_ROUND_MS;
/** The test kubelet stopping a run's pods once their owners are gone (a grace of up to 10 s each). */
const POD_GONE_MS = POD_READY_MS;

beforeAll(async () => {
  owners = await Promise.all([startOwner('alpha', 31), startOwner('beta', 32), startOwner('mallory', 33, { attack: 'equivocate' })]);
}, within(API_SERVER_START_MS, COMMAND_MS, CRDS_MS));

afterAll(async () => {
  if (process.env.CONCORD_TEST_LOGS) for (const o of owners ?? []) console.log(await o.describe());
  await Promise.all((owners ?? []).map((o) => o.stop()));
}, within(2 * TEARDOWN_MS));

describe('three owners federate through the operator', () => {
  it('trains to the same model on the honest clusters, with the attacker banned and the evidence in its Peer', async () => {
    for (const o of owners) await applyRun(o, 'gpt', e2eRunSpec());
    await introduce(owners, 'gpt', OPERATOR_POD_MS);

    const alpha = byName('alpha');
    const beta = byName('beta');
    const rounds = ROUNDS;
    // Mid-run, whenever the honest clusters report the same round, they hold the same model.
    await waitFor(async () => {
      const [a, b] = [await run(alpha), await run(beta)];
      const round = a.status?.round ?? 0;
      if (round < 3 || round !== b.status?.round || a.status?.phase !== 'Running') return false;
      expect(a.status!.modelHash).toBe(b.status!.modelHash);
      return true;
    }, SAME_ROUND_MS, 'alpha and beta at the same round (≥ 3) while running', 200);
    for (const o of [alpha, beta]) {
      const status = await run(o);
      expect(condition(status, 'Ready')).toMatchObject({ status: 'True', reason: 'AllReady' });
      expect(condition(status, 'Federated')).toMatchObject({ status: 'True', reason: 'PeersVerified' });
      // Training=True was reached (rounds are short: the event records it).
      const events = (await o.cluster.core.listNamespacedEvent({ namespace: 'default' })).items as CoreV1Event[];
      expect(events.some((e) => e.involvedObject.kind === 'TrainingRun' && e.reason === 'RoundsProgressing')).toBe(true);
    }

    // A trainer pod deleted mid-run comes back (its StatefulSet) and the run goes on.
    const apps = alpha.cluster.config.makeApiClient(AppsV1Api);
    const before = await alpha.cluster.core.readNamespacedPod({ name: 'gpt-trainer-cpu-0', namespace: 'default' });
    await alpha.cluster.core.deleteNamespacedPod({ name: 'gpt-trainer-cpu-0', namespace: 'default' });
    await waitFor(async () => {
      const pod = await alpha.cluster.core.readNamespacedPod({ name: 'gpt-trainer-cpu-0', namespace: 'default' }).catch(() => undefined);
      return pod !== undefined && pod.metadata!.uid !== before.metadata!.uid && pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
    }, POD_READY_MS, 'the trainer pod to be recreated and ready', 200);
    expect((await apps.readNamespacedStatefulSet({ name: 'gpt-trainer-cpu', namespace: 'default' })).spec!.replicas).toBe(1);
    const roundWhenBack = (await run(alpha)).status!.round!;
    expect(roundWhenBack).toBeLessThan(rounds);

    await waitFor(async () => (await run(alpha)).status?.phase === 'Succeeded' && (await run(beta)).status?.phase === 'Succeeded', FINISH_MS, 'the honest runs to finish', 1000);
    const [a, b] = [await run(alpha), await run(beta)];
    expect(a.status!.round).toBe(rounds);
    expect(b.status!.round).toBe(rounds);
    expect(a.status!.modelHash).toMatch(/^[0-9a-f]{64}$/);
    expect(a.status!.modelHash).toBe(b.status!.modelHash);
    // And the model moved: contributions were applied (the hash is not the round-0 model's, which
    // follows from the run's config as the operator wrote it).
    const config = parseCoordinatorConfig((await alpha.cluster.core.readNamespacedConfigMap({ name: 'gpt-config', namespace: 'default' })).data!['coordinator.yaml']!);
    const initial = ModelState.initial(config.runId, config.train.model, config.train.outer, config.rounds.runSeed).hash.toString('hex');
    expect(a.status!.modelHash).not.toBe(initial);
    for (const run of [a, b]) {
      expect(condition(run, 'Ready')!.status).toBe('True');
      expect(condition(run, 'Training')).toMatchObject({ status: 'False', reason: 'RoundsCompleted' });
      expect(condition(run, 'Degraded')).toMatchObject({ status: 'True', reason: 'PeerBanned' });
    }

    // Each honest owner's Peer for mallory: banned, with both signed headers as evidence.
    let acceptedFromPartner = 0;
    for (const o of [alpha, beta]) {
      await waitFor(async () => (await getPeer(o, 'mallory')).status?.banned !== undefined, RECONCILE_MS, `${o.name}'s Peer mallory to show the ban`, 500);
      const mallory = await getPeer(o, 'mallory');
      expect(condition(mallory, 'Verified')).toMatchObject({ status: 'False', reason: 'Banned' });
      expect(mallory.status!.banned!.reason).toBe('Equivocation');
      expect(mallory.status!.banned!.evidence!.split('\n')).toHaveLength(2);
      expect(mallory.status!.rejected).toBeGreaterThan(0);
      const partner = await getPeer(o, o === alpha ? 'beta' : 'alpha');
      expect(condition(partner, 'Verified')).toMatchObject({ status: 'True' });
      acceptedFromPartner += partner.status!.accepted ?? 0;
      const events = (await o.cluster.core.listNamespacedEvent({ namespace: 'default' })).items as CoreV1Event[];
      expect(events.some((e) => e.involvedObject.kind === 'Peer' && e.involvedObject.name === 'mallory' && e.reason === 'Banned')).toBe(true);
    }
    expect(acceptedFromPartner).toBeGreaterThan(0);
  }, within(OPERATOR_POD_MS, SAME_ROUND_MS, POD_READY_MS, FINISH_MS, 2 * RECONCILE_MS));

  it('deleting a TrainingRun removes everything the operator made for it', async () => {
    const alpha = byName('alpha');
    const apps = alpha.cluster.config.makeApiClient(AppsV1Api);
    await alpha.cluster.custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, plural: 'trainingruns', namespace: 'default', name: 'gpt' });
    const gone = (read: () => Promise<unknown>) => async () => read().then(() => false, () => true);
    const ns = 'default';
    await waitFor(gone(() => apps.readNamespacedDeployment({ name: 'gpt-coordinator', namespace: ns })), GARBAGE_COLLECTION_MS, 'the coordinator Deployment to go', 500);
    await waitFor(gone(() => apps.readNamespacedStatefulSet({ name: 'gpt-trainer-cpu', namespace: ns })), GARBAGE_COLLECTION_MS, 'the trainers to go', 500);
    for (const [what, read] of [
      ['ConfigMap', () => alpha.cluster.core.readNamespacedConfigMap({ name: 'gpt-config', namespace: ns })],
      ['identity Secret', () => alpha.cluster.core.readNamespacedSecret({ name: 'gpt-identity', namespace: ns })],
      ['checkpoint claim', () => alpha.cluster.core.readNamespacedPersistentVolumeClaim({ name: 'gpt-checkpoints', namespace: ns })],
      ['federation Service', () => alpha.cluster.core.readNamespacedService({ name: 'gpt-federation', namespace: ns })],
      ['coordinator Service', () => alpha.cluster.core.readNamespacedService({ name: 'gpt-coordinator', namespace: ns })],
    ] as const) await waitFor(gone(read), GARBAGE_COLLECTION_MS, `the ${what} to go`, 500);
    await waitFor(async () => (await alpha.cluster.core.listNamespacedPod({ namespace: ns })).items.length === 0, POD_GONE_MS, 'every pod of the run to go', 500);
  }, within(7 * GARBAGE_COLLECTION_MS, POD_GONE_MS));
});
