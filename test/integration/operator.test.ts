import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { stringify } from 'yaml';
import { AppsV1Api, PatchStrategy, setHeaderOptions, type V1Deployment } from '@kubernetes/client-node';
import { GROUP, VERSION, type TrainingRun } from '../../operator/src/api/types.js';
import { configHashOf } from '../../operator/src/controllers/trainingrun/builders.js';
import { encodePublicKey, generateIdentity, identityToPem } from '../../operator/src/federation/identity.js';
import type { Operator } from '../../operator/src/manager.js';
import { installCrds, startCluster, type TestCluster } from '../../scripts/kube/cluster.js';
import { API_SERVER_START_MS, COMMAND_MS, GARBAGE_COLLECTION_MS, RECONCILE_MS, TEARDOWN_MS, within } from '../support/deadlines.js';
import { getPeer, getRun, peerObject, startOperator, trainingRun } from '../support/operator.js';
import { waitFor } from '../support/wait.js';

// Every wait below has its own deadline (test/support/deadlines.ts); a test's own limit is above
// their sum: five reconciles at most in one test here, unless the test says otherwise.
jest.setTimeout(within(5 * RECONCILE_MS));

// One real API server (etcd + kube-apiserver + kube-controller-manager for garbage collection)
// and one operator for the whole file; each test uses its own TrainingRun.
let cluster: TestCluster;
let operator: Operator & { logLines: string[] };
let apps: AppsV1Api;
const execFileAsync = promisify(execFile);

beforeAll(async () => {
  cluster = await startCluster({ controllerManager: true });
  await installCrds(cluster);
  apps = cluster.config.makeApiClient(AppsV1Api);
  operator = await startOperator(cluster);
}, within(API_SERVER_START_MS));

afterAll(async () => {
  if (process.env.CONCORD_TEST_LOGS) console.log(operator?.logLines.join(""));
  await operator?.stop();
  await cluster?.stop();
}, within(TEARDOWN_MS));

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const strategicPatch = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);
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
    }, RECONCILE_MS, 'alpha to get a status with its identity');
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

describe('TrainingRun controller: changes, drift, bad input', () => {
  const patchSpec = (name: string, spec: Record<string, unknown>) => cluster.custom.patchNamespacedCustomObject({
    group: GROUP, version: VERSION, plural: 'trainingruns', namespace: 'default', name, body: { spec },
  }, mergePatch);

  it('follows spec updates: replicas, a new worker group, a removed one', async () => {
    await cluster.objects.create(trainingRun('bravo'));
    await waitFor(() => exists(() => apps.readNamespacedStatefulSet({ name: 'bravo-trainer-cpu', namespace: 'default' })), RECONCILE_MS, 'the cpu group');
    await patchSpec('bravo', { workers: [{ name: 'gpu', replicas: 3, gpu: { count: 2 } }] });
    await waitFor(async () => (await apps.readNamespacedStatefulSet({ name: 'bravo-trainer-gpu', namespace: 'default' })).spec!.replicas === 3, RECONCILE_MS, 'the gpu group with 3 replicas');
    await waitFor(async () => !(await exists(() => apps.readNamespacedStatefulSet({ name: 'bravo-trainer-cpu', namespace: 'default' }))), RECONCILE_MS, 'the removed cpu group to go');
    const gpu = await apps.readNamespacedStatefulSet({ name: 'bravo-trainer-gpu', namespace: 'default' });
    expect(gpu.spec!.template.spec!.containers[0]!.resources!.limits!['nvidia.com/gpu']).toBe('2');
    // The config follows too, and the pods roll with it (config hash in the template).
    const config = await cluster.core.readNamespacedConfigMap({ name: 'bravo-config', namespace: 'default' });
    expect(config.data!['trainer-gpu.yaml']).toContain('device: cuda');
    expect(config.data!['coordinator.yaml']).toContain('trainers: 3');
  });

  it('recreates a deleted child and corrects an edited one', async () => {
    await cluster.objects.create(trainingRun('charlie'));
    await waitFor(() => exists(() => apps.readNamespacedDeployment({ name: 'charlie-coordinator', namespace: 'default' })), RECONCILE_MS, 'the coordinator');
    await cluster.core.deleteNamespacedService({ name: 'charlie-federation', namespace: 'default' });
    await cluster.core.deleteNamespacedConfigMap({ name: 'charlie-config', namespace: 'default' });
    await waitFor(() => exists(() => cluster.core.readNamespacedService({ name: 'charlie-federation', namespace: 'default' })), RECONCILE_MS, 'the Service to come back');
    await waitFor(() => exists(() => cluster.core.readNamespacedConfigMap({ name: 'charlie-config', namespace: 'default' })), RECONCILE_MS, 'the ConfigMap to come back');
    // Someone edits what the operator owns: image and replicas.
    const live = await apps.readNamespacedDeployment({ name: 'charlie-coordinator', namespace: 'default' });
    await apps.patchNamespacedDeployment({
      name: 'charlie-coordinator', namespace: 'default',
      body: { spec: { replicas: 3, template: { spec: { containers: [{ name: 'coordinator', image: 'someone/else:1' }] } } } },
    }, strategicPatch);
    await waitFor(async () => {
      const now: V1Deployment = await apps.readNamespacedDeployment({ name: 'charlie-coordinator', namespace: 'default' });
      return now.spec!.replicas === 1 && now.spec!.template.spec!.containers[0]!.image === live.spec!.template.spec!.containers[0]!.image;
    }, RECONCILE_MS, 'the edit to be corrected');
  });

  it('reports a spec the schema lets through but the operator cannot run, naming the field, and keeps what exists', async () => {
    // heads must divide dModel: a CEL rule on newer API servers, the operator's check on every one.
    await cluster.objects.create(trainingRun('delta', { model: { vocabSize: 512, seqLen: 32, layers: 1, dModel: 30, heads: 4 } }));
    await waitFor(async () => condition(await getRun(cluster, 'delta'), 'Ready')?.reason === 'InvalidSpec', RECONCILE_MS, 'InvalidSpec');
    const run = await getRun(cluster, 'delta');
    expect(condition(run, 'Ready')!.message).toContain('spec.model.heads');
    expect(condition(run, 'Ready')!.status).toBe('False');
    expect(run.status!.phase).toBe('Failed');
    expect(await exists(() => apps.readNamespacedDeployment({ name: 'delta-coordinator', namespace: 'default' }))).toBe(false);
    // Fixed: the run proceeds.
    await patchSpec('delta', { model: { dModel: 32 } });
    await waitFor(async () => condition(await getRun(cluster, 'delta'), 'Ready')?.reason === 'CoordinatorNotReady', RECONCILE_MS, 'the fixed run to proceed');

    // A run that was fine and is then broken keeps its children (nothing stored is lost).
    await patchSpec('delta', { compression: { chunk: 16, topk: 64 } });
    await waitFor(async () => condition(await getRun(cluster, 'delta'), 'Ready')?.reason === 'InvalidSpec', RECONCILE_MS, 'InvalidSpec after an update');
    expect(condition(await getRun(cluster, 'delta'), 'Ready')!.message).toContain('spec.compression.topk');
    expect(await exists(() => apps.readNamespacedDeployment({ name: 'delta-coordinator', namespace: 'default' }))).toBe(true);
  });

  it('refuses in the schema what the schema can express, with a message that names the field', async () => {
    await expect(cluster.objects.create(trainingRun('echo', { workers: [{ name: 'cpu', replicas: -1 }] }))).rejects.toThrow(/spec\.workers(\[0\])?\.replicas/);
    await expect(cluster.objects.create(trainingRun('echo', { outer: { optimizer: 'adam' } }))).rejects.toThrow(/spec\.outer\.optimizer/);
    const { runId: _, ...noRunId } = trainingRun('echo').spec;
    await expect(cluster.objects.create({ ...trainingRun('echo'), spec: noRunId })).rejects.toThrow(/spec\.runId/);
    await expect(cluster.objects.create(trainingRun('echo', { data: { dataset: { claimName: 'corpus', hash: 'not-a-hash' } } }))).rejects.toThrow(/spec\.data\.dataset\.hash/);
    await expect(cluster.objects.create(trainingRun('echo', { data: { dataset: { claimName: 'corpus', path: '../other', hash: 'a'.repeat(64) } } }))).rejects.toThrow(/spec\.data\.dataset\.path/);
  });

  it('uses a Secret the owner made beforehand and never overwrites it', async () => {
    const identity = generateIdentity();
    const created = await cluster.core.createNamespacedSecret({
      namespace: 'default', body: { metadata: { name: 'my-identity' }, stringData: { 'private.pem': identityToPem(identity) } },
    });
    await cluster.objects.create(trainingRun('foxtrot', { federation: { identitySecret: 'my-identity' } }));
    await waitFor(async () => (await getRun(cluster, 'foxtrot')).status?.identity?.publicKey !== undefined, RECONCILE_MS, 'the identity in status');
    expect((await getRun(cluster, 'foxtrot')).status!.identity!.publicKey).toBe(encodePublicKey(identity.publicKey));
    const after = await cluster.core.readNamespacedSecret({ name: 'my-identity', namespace: 'default' });
    expect(after.metadata!.resourceVersion).toBe(created.metadata!.resourceVersion);
    expect(after.metadata!.ownerReferences ?? []).toEqual([]);
    const config = await cluster.core.readNamespacedConfigMap({ name: 'foxtrot-config', namespace: 'default' });
    expect(config.data!['coordinator.yaml']).toContain('identityFile: /var/run/concord/identity/private.pem');
    const deployment = await apps.readNamespacedDeployment({ name: 'foxtrot-coordinator', namespace: 'default' });
    expect(deployment.spec!.template.spec!.volumes!.find((v) => v.name === 'identity')!.secret!.secretName).toBe('my-identity');
  });

  it('suspends (trainers and coordinator to zero, identity and volume kept) and resumes', async () => {
    await cluster.objects.create(trainingRun('golf'));
    await waitFor(() => exists(() => apps.readNamespacedStatefulSet({ name: 'golf-trainer-cpu', namespace: 'default' })), RECONCILE_MS, 'the trainers');
    // The status is written after the children, in the same pass: wait for it too.
    let key: string | undefined;
    await waitFor(async () => (key = (await getRun(cluster, 'golf')).status?.identity?.publicKey) !== undefined, RECONCILE_MS, 'the identity in status');
    await patchSpec('golf', { suspend: true });
    await waitFor(async () => (await getRun(cluster, 'golf')).status?.phase === 'Suspended', RECONCILE_MS, 'Suspended');
    expect((await apps.readNamespacedStatefulSet({ name: 'golf-trainer-cpu', namespace: 'default' })).spec!.replicas).toBe(0);
    expect((await apps.readNamespacedDeployment({ name: 'golf-coordinator', namespace: 'default' })).spec!.replicas).toBe(0);
    expect(await exists(() => cluster.core.readNamespacedPersistentVolumeClaim({ name: 'golf-checkpoints', namespace: 'default' }))).toBe(true);
    expect(condition(await getRun(cluster, 'golf'), 'Ready')).toMatchObject({ status: 'False', reason: 'Suspended' });
    await patchSpec('golf', { suspend: false });
    await waitFor(async () => (await apps.readNamespacedStatefulSet({ name: 'golf-trainer-cpu', namespace: 'default' })).spec!.replicas === 1, RECONCILE_MS, 'the trainers back');
    expect((await getRun(cluster, 'golf')).status!.identity!.publicKey).toBe(key);
  });

  it('puts its Peers into the coordinator config; a deleted Peer leaves it', async () => {
    await cluster.objects.create(trainingRun('hotel'));
    const partner = generateIdentity();
    await cluster.objects.create(peerObject('partner', 'hotel', 'partner.example.org:7443', encodePublicKey(partner.publicKey)));
    const configMap = () => cluster.core.readNamespacedConfigMap({ name: 'hotel-config', namespace: 'default' });
    const coordinatorYaml = async () => (await configMap()).data!['coordinator.yaml']!;
    const hash = async () => (await apps.readNamespacedDeployment({ name: 'hotel-coordinator', namespace: 'default' })).spec!.template.metadata!.annotations!['concord.dev/config-hash'];
    // The ConfigMap is applied before the Deployment in a pass: wait until the coordinator's
    // template carries the hash of the config that holds the peer.
    await waitFor(async () => {
      const config = await configMap();
      return config.data!['coordinator.yaml']!.includes('partner.example.org:7443') && (await hash()) === configHashOf(config);
    }, RECONCILE_MS, 'the peer in the config and the coordinator rolled with it');
    const before = await hash();
    await cluster.objects.delete(peerObject('partner', 'hotel', 'partner.example.org:7443', encodePublicKey(partner.publicKey)));
    await waitFor(async () => !(await coordinatorYaml()).includes('partner.example.org'), RECONCILE_MS, 'the peer to leave the config');
    // The coordinator pod rolls with the new config: the revoked key is refused from then on.
    await waitFor(async () => (await hash()) !== before, RECONCILE_MS, 'the coordinator template to change');
  });

  it('takes only the Peers its peerSelector selects; the others say NotSelected until relabelled', async () => {
    await cluster.objects.create(trainingRun('selective', { federation: { peerSelector: { matchLabels: { 'concord.dev/partner': 'yes' } } } }));
    const labelled = (name: string, value: string | undefined) => {
      const peer = peerObject(name, 'selective', `${name}.example.org:7443`, encodePublicKey(generateIdentity().publicKey));
      return value === undefined ? peer : { ...peer, metadata: { ...peer.metadata, labels: { 'concord.dev/partner': value } } };
    };
    await cluster.objects.create(labelled('chosen', 'yes'));
    await cluster.objects.create(labelled('staged', undefined));
    const coordinatorYaml = async () => (await cluster.core.readNamespacedConfigMap({ name: 'selective-config', namespace: 'default' })).data!['coordinator.yaml']!;
    await waitFor(async () => (await coordinatorYaml()).includes('chosen.example.org:7443'), RECONCILE_MS, 'the selected peer in the config');
    expect(await coordinatorYaml()).not.toContain('staged.example.org');
    const verified = async (name: string) => (await getPeer(cluster, name)).status?.conditions?.find((c) => c.type === 'Verified');
    await waitFor(async () => (await verified('staged'))?.reason === 'NotSelected', RECONCILE_MS, 'the unselected Peer to say NotSelected');
    expect((await verified('staged'))!.message).toContain('spec.federation.peerSelector');
    await waitFor(async () => (await getRun(cluster, 'selective')).status?.peers?.configured === 1, RECONCILE_MS, 'the run to count its one selected Peer');
    // Labelled: it joins the run's config, and its status no longer says NotSelected.
    await cluster.custom.patchNamespacedCustomObject({
      group: GROUP, version: VERSION, plural: 'peers', namespace: 'default', name: 'staged', body: { metadata: { labels: { 'concord.dev/partner': 'yes' } } },
    }, mergePatch);
    await waitFor(async () => (await coordinatorYaml()).includes('staged.example.org:7443'), RECONCILE_MS, 'the relabelled peer in the config');
    await waitFor(async () => (await verified('staged'))?.reason !== 'NotSelected', RECONCILE_MS, 'the relabelled Peer\'s status to move on');
  });

  it('deletes everything it made when the run is deleted (garbage collection by owner references)', async () => {
    await cluster.objects.create(trainingRun('india'));
    await waitFor(() => exists(() => apps.readNamespacedStatefulSet({ name: 'india-trainer-cpu', namespace: 'default' })), RECONCILE_MS, 'the children');
    await cluster.custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, plural: 'trainingruns', namespace: 'default', name: 'india' });
    const gone = (read: () => Promise<unknown>) => async () => !(await exists(read));
    // The garbage collector watches a custom resource only after its discovery resync (30 s).
    await waitFor(gone(() => apps.readNamespacedDeployment({ name: 'india-coordinator', namespace: 'default' })), GARBAGE_COLLECTION_MS, 'the Deployment to go');
    await waitFor(gone(() => apps.readNamespacedStatefulSet({ name: 'india-trainer-cpu', namespace: 'default' })), GARBAGE_COLLECTION_MS, 'the StatefulSet to go');
    await waitFor(gone(() => cluster.core.readNamespacedConfigMap({ name: 'india-config', namespace: 'default' })), GARBAGE_COLLECTION_MS, 'the ConfigMap to go');
    await waitFor(gone(() => cluster.core.readNamespacedSecret({ name: 'india-identity', namespace: 'default' })), GARBAGE_COLLECTION_MS, 'the identity Secret to go');
    await waitFor(gone(() => cluster.core.readNamespacedService({ name: 'india-federation', namespace: 'default' })), GARBAGE_COLLECTION_MS, 'the Service to go');
  }, within(RECONCILE_MS, 5 * GARBAGE_COLLECTION_MS));
});

describe('kubectl against the test API server', () => {
  const kubectl = (...args: string[]) => execFileAsync('kubectl', ['--kubeconfig', cluster.kubeconfigPath, ...args]).then(
    ({ stdout, stderr }) => ({ code: 0, out: stdout + stderr }),
    (error: { code?: number; stdout?: string; stderr?: string }) => ({ code: error.code ?? 1, out: (error.stdout ?? '') + (error.stderr ?? '') }),
  );

  it('shows the printer columns of TrainingRuns and Peers', async () => {
    await cluster.objects.create(trainingRun('juliet'));
    await cluster.objects.create(peerObject('juliet-partner', 'juliet', 'partner.example.org:7443', encodePublicKey(generateIdentity().publicKey)));
    await waitFor(async () => (await getRun(cluster, 'juliet')).status?.progress !== undefined, RECONCILE_MS, 'juliet\'s status');
    const runs = await kubectl('get', 'trainingruns', 'juliet');
    expect(runs.code).toBe(0);
    expect(runs.out).toMatch(/NAME\s+PHASE\s+ROUND\s+LOSS\s+PEERS\s+AGE/);
    expect(runs.out).toMatch(/juliet\s+Pending\s+0\/5\s+/);
    const peers = await kubectl('get', 'peers', 'juliet-partner');
    expect(peers.out).toMatch(/NAME\s+RUN\s+ENDPOINT\s+REACHABLE\s+VERIFIED\s+REPUTATION\s+AGE/);
    expect(peers.out).toMatch(/juliet-partner\s+juliet\s+partner\.example\.org:7443/);
    const both = await kubectl('get', 'trainingruns,peers');
    expect(both.out).toContain('trainingrun.concord.dev/juliet');
    expect(both.out).toContain('peer.concord.dev/juliet-partner');
  }, within(RECONCILE_MS, 3 * COMMAND_MS));

  it('kubectl apply of an invalid TrainingRun is refused by the schema with a message naming the field', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'concord-kubectl-'));
    const file = join(dir, 'invalid.yaml');
    await writeFile(file, stringify(trainingRun('kilo', { inner: { lr: 5 }, federation: { serviceType: 'Public' } })));
    // --validate=false: the API server's schema answers, not kubectl's client-side check.
    const result = await kubectl('apply', '--validate=false', '-f', file);
    await rm(dir, { recursive: true, force: true });
    expect(result.code).not.toBe(0);
    expect(result.out).toMatch(/spec\.inner\.lr/);
    expect(result.out).toMatch(/spec\.federation\.serviceType/);
    expect(result.out).toMatch(/Unsupported value: "Public"/);
  });
});
