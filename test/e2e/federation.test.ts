import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { AppsV1Api, type CoreV1Event } from '@kubernetes/client-node';
import { GROUP, VERSION, type Peer, type TrainingRun } from '../../operator/src/api/types.js';
import { parseCoordinatorConfig } from '../../operator/src/coordinator/config.js';
import { ModelState } from '../../operator/src/coordinator/model-state.js';
import { API_SERVER_START_MS, COMMAND_MS, CRDS_MS, E2E_ROUND_MS, GARBAGE_COLLECTION_MS, OPERATOR_POD_MS, POD_READY_MS, RECONCILE_MS, TEARDOWN_MS, within } from '../support/deadlines.js';
import { waitFor } from '../support/wait.js';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadBrown } from '../../trainer/src/data/corpus.js';
import { verifyDataset, type DatasetManifest } from '../../trainer/src/data/shards.js';
import { applyRun, e2eRunSpec, fillVolume, getPeer, getRun, introduce, startOwner, type Owner, type VolumeDataset } from './owner.js';

// Three owners, three real API servers, each with the chart installed by helm and a test kubelet
// as its node (test/e2e/kubelet.ts, docs/e2e.md). Each owner prepares the same dataset from its
// own text (`npm run dataset`), puts it on a volume, and applies the same TrainingRun — a
// Llama-family model on that dataset, pinned by its hash — and a Peer per partner with the key and
// address the partner's Kubernetes objects show, as people would; mallory's coordinator image
// attacks (it signs two different contributions a round).
// Coordinators wait for their Peers before the first round (a run trains with its partners).
// The test then reads only Kubernetes state.

let owners: Owner[];
let dataset: VolumeDataset;
const RUN = 'llama';
const byName = (name: string) => owners.find((o) => o.name === name)!;
const run = (o: Owner) => getRun(o, RUN);
const condition = (object: TrainingRun | Peer, type: string) => object.status?.conditions?.find((c) => c.type === type);

const ROUNDS = (e2eRunSpec().outer as { rounds: number }).rounds;
/** The coordinators' pods up (after the Peers exist) and three rounds, then alpha and beta seen at the same round. */
const SAME_ROUND_MS = POD_READY_MS + 4 * E2E_ROUND_MS;
/** The rest of the run, at most every round of it. */
const FINISH_MS = ROUNDS * E2E_ROUND_MS;
/** The test kubelet stopping a run's pods once their owners are gone (a grace of up to 10 s each). */
const POD_GONE_MS = POD_READY_MS;

beforeAll(async () => {
  // Both at once, and both settled before anything fails: afterAll must not remove the dataset's
  // directory while the dataset command still writes into it.
  const [prepared, started] = await Promise.allSettled([
    prepareSharedDataset(),
    Promise.all([startOwner('alpha', 31), startOwner('beta', 32), startOwner('mallory', 33, { attack: 'equivocate' })]),
  ]);
  if (started.status === 'rejected') throw started.reason;
  owners = started.value;
  if (prepared.status === 'rejected') throw prepared.reason;
  const { dir, manifest } = prepared.value;
  for (const o of owners) await fillVolume(o, 'training-data', dir);
  dataset = { claimName: 'training-data', hash: manifest.hash, vocabSize: manifest.tokenizer.vocabSize };
}, within(API_SERVER_START_MS, COMMAND_MS, CRDS_MS, COMMAND_MS));

/** The dataset every owner holds: Brown documents as text files, prepared by the dataset command
 * (its own BPE, 512 ids). Each owner could prepare it from the same files; the bytes, and so the
 * hash, would be the same (preparing is deterministic: test/unit/dataset-prepare.test.ts). */
async function prepareSharedDataset(): Promise<{ dir: string; manifest: DatasetManifest }> {
  const root = await mkdtemp(join(tmpdir(), 'concord-e2e-data-'));
  datasetRoot = root;
  await mkdir(join(root, 'text'));
  const documents = loadBrown({ genres: 'ab' });
  for (const [i, d] of documents.entries()) await writeFile(join(root, 'text', `${String(i).padStart(4, '0')}.txt`), d.text);
  await promisify(execFile)(process.execPath, ['dist/trainer/src/cli/prepare.js', '--input', join(root, 'text'), '--vocab', '512', '--out', join(root, 'dataset')], {
    timeout: COMMAND_MS, env: { ...process.env, CONCORD_CACHE_DIR: join(root, 'cache') },
  });
  return { dir: join(root, 'dataset'), manifest: await verifyDataset(join(root, 'dataset')) };
}
let datasetRoot: string | undefined;

afterAll(async () => {
  if (process.env.CONCORD_TEST_LOGS) for (const o of owners ?? []) console.log(await o.describe());
  await Promise.all((owners ?? []).map((o) => o.stop()));
  if (datasetRoot !== undefined) await rm(datasetRoot, { recursive: true, force: true });
}, within(2 * TEARDOWN_MS));

describe('three owners federate through the operator', () => {
  it('trains to the same model on the honest clusters, with the attacker banned and the evidence in its Peer', async () => {
    for (const o of owners) await applyRun(o, RUN, e2eRunSpec({ dataset }));
    await introduce(owners, RUN, OPERATOR_POD_MS);

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
    const before = await alpha.cluster.core.readNamespacedPod({ name: `${RUN}-trainer-cpu-0`, namespace: 'default' });
    await alpha.cluster.core.deleteNamespacedPod({ name: `${RUN}-trainer-cpu-0`, namespace: 'default' });
    await waitFor(async () => {
      const pod = await alpha.cluster.core.readNamespacedPod({ name: `${RUN}-trainer-cpu-0`, namespace: 'default' }).catch(() => undefined);
      return pod !== undefined && pod.metadata!.uid !== before.metadata!.uid && pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
    }, POD_READY_MS, 'the trainer pod to be recreated and ready', 200);
    expect((await apps.readNamespacedStatefulSet({ name: `${RUN}-trainer-cpu`, namespace: 'default' })).spec!.replicas).toBe(1);
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
    const config = parseCoordinatorConfig((await alpha.cluster.core.readNamespacedConfigMap({ name: `${RUN}-config`, namespace: 'default' })).data!['coordinator.yaml']!);
    // The run the operator wrote is the Llama-family model on the dataset of the owners' volumes.
    expect(config.train.model).toMatchObject({ family: 'llama', kvHeads: 2, vocabSize: dataset.vocabSize });
    expect(config.train.data).toMatchObject({ dir: '/var/lib/concord-data', hash: dataset.hash });
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
    await alpha.cluster.custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, plural: 'trainingruns', namespace: 'default', name: RUN });
    const gone = (read: () => Promise<unknown>) => async () => read().then(() => false, () => true);
    const ns = 'default';
    await waitFor(gone(() => apps.readNamespacedDeployment({ name: `${RUN}-coordinator`, namespace: ns })), GARBAGE_COLLECTION_MS, 'the coordinator Deployment to go', 500);
    await waitFor(gone(() => apps.readNamespacedStatefulSet({ name: `${RUN}-trainer-cpu`, namespace: ns })), GARBAGE_COLLECTION_MS, 'the trainers to go', 500);
    for (const [what, read] of [
      ['ConfigMap', () => alpha.cluster.core.readNamespacedConfigMap({ name: `${RUN}-config`, namespace: ns })],
      ['identity Secret', () => alpha.cluster.core.readNamespacedSecret({ name: `${RUN}-identity`, namespace: ns })],
      ['checkpoint claim', () => alpha.cluster.core.readNamespacedPersistentVolumeClaim({ name: `${RUN}-checkpoints`, namespace: ns })],
      ['federation Service', () => alpha.cluster.core.readNamespacedService({ name: `${RUN}-federation`, namespace: ns })],
      ['coordinator Service', () => alpha.cluster.core.readNamespacedService({ name: `${RUN}-coordinator`, namespace: ns })],
    ] as const) await waitFor(gone(read), GARBAGE_COLLECTION_MS, `the ${what} to go`, 500);
    await waitFor(async () => (await alpha.cluster.core.listNamespacedPod({ namespace: ns })).items.length === 0, POD_GONE_MS, 'every pod of the run to go', 500);
  }, within(7 * GARBAGE_COLLECTION_MS, POD_GONE_MS));
});
