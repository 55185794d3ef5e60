import { describe, expect, it } from '@jest/globals';
import { childrenOf, configHashOf, configMapOf, identitySecretOf, replicaOffsetOf } from '../../operator/src/controllers/trainingrun/builders.js';
import { CONFIG_HASH_ANNOTATION, LABELS } from '../../operator/src/controllers/trainingrun/names.js';
import { InvalidSpecError, validateRun } from '../../operator/src/controllers/trainingrun/run-config.js';
import { parseCoordinatorConfig } from '../../operator/src/coordinator/config.js';
import { encodePublicKey, generateIdentity } from '../../operator/src/federation/identity.js';
import { parseTrainConfigYaml } from '../../trainer/src/train/config.js';
import { defaultedPeer, defaultedRun } from '../support/crd-defaults.js';

const images = { coordinator: 'registry.example/concord-operator:1.0', trainer: 'registry.example/concord-trainer:1.0' };
const key = () => encodePublicKey(generateIdentity().publicKey);

describe('TrainingRun builders (pure)', () => {
  it('builds every child with owner references, labels and the config hash in the pod templates', () => {
    const run = defaultedRun();
    const children = childrenOf(run, [], images);
    const all = [children.configMap, children.checkpoints, children.coordinatorService, children.federationService, children.coordinator, ...children.trainers];
    for (const child of all) {
      expect(child.metadata!.namespace).toBe('team-a');
      expect(child.metadata!.ownerReferences).toEqual([{ apiVersion: 'concord.dev/v1alpha1', kind: 'TrainingRun', name: 'alpha', uid: run.metadata.uid, controller: true, blockOwnerDeletion: true }]);
      expect(child.metadata!.labels![LABELS.run]).toBe('alpha');
    }
    const hash = configHashOf(children.configMap);
    expect(children.coordinator.spec!.template.metadata!.annotations![CONFIG_HASH_ANNOTATION]).toBe(hash);
    expect(children.trainers[0]!.spec!.template.metadata!.annotations![CONFIG_HASH_ANNOTATION]).toBe(hash);
  });

  it('is a pure function: the same run gives the same objects', () => {
    const run = defaultedRun();
    const peers = [defaultedPeer('b', { publicKey: key() })];
    expect(JSON.stringify(childrenOf(run, peers, images))).toBe(JSON.stringify(childrenOf(run, peers, images)));
  });

  it('writes config files the coordinator and trainers parse, with the spec values', () => {
    const run = defaultedRun({
      seed: 7, outer: { optimizer: 'sgd', rounds: 12, windowSeconds: 90, maxInnerSteps: 40, maxTokensPerRound: 90_000, maxShare: 0.4 }, compression: { topk: 32 },
      validation: { sample: 2 }, federation: { quorum: 3, port: 9443 },
      workers: [{ name: 'big', replicas: 2, batch: 64, gpu: { count: 1 } }, { name: 'small', replicas: 3, threads: 2 }],
    });
    const peerKey = key();
    const files = configMapOf(run, [defaultedPeer('partner', { publicKey: peerKey }), defaultedPeer('picky', { publicKey: key(), weight: 0.5, maxContributionBytes: 2048 })]).data!;
    const coordinator = parseCoordinatorConfig(files['coordinator.yaml']!);
    expect(coordinator.runId).toBe('shared-run');
    expect(coordinator.listen.port).toBe(9443);
    expect(coordinator.trainers).toBe(5);
    // The CRD defaults weight to 1; the Peer's settings reach the coordinator as they are.
    expect(coordinator.peers[0]).toEqual({ name: 'partner', endpoint: 'partner.example.org:7443', publicKey: Buffer.from(peerKey, 'base64'), weight: 1 });
    expect(coordinator.peers[1]).toMatchObject({ name: 'picky', weight: 0.5, maxContributionBytes: 2048 });
    expect(coordinator.rounds.runSeed).toBe(7n);
    expect(coordinator.rounds.rounds).toBe(12);
    expect(coordinator.rounds.windowMs).toBe(90_000);
    expect(coordinator.maxInnerSteps).toBe(40);
    expect(coordinator.rounds.claims).toEqual({ maxTokensPerRound: 90_000, relativeTokenCap: 2, maxShare: 0.4 });
    expect(coordinator.checkpointEveryRounds).toBe(1); // spec.checkpoint.everyRounds' default
    expect(coordinator.rounds.compression.k).toBe(32);
    expect(coordinator.rounds.validation.sample).toBe(2);
    expect(coordinator.rounds.quorum).toBe(3);
    expect(coordinator.train.outer).toEqual({ kind: 'sgd', lr: 1 });
    const big = parseTrainConfigYaml(files['trainer-big.yaml']!);
    const small = parseTrainConfigYaml(files['trainer-small.yaml']!);
    expect([big.inner.batch, small.inner.batch]).toEqual([64, 16]);
    expect([big.train.device, small.train.device]).toEqual(['cuda', 'cpu']);
    expect(small.train.threads).toBe(2);
    expect(big.model).toEqual(coordinator.train.model);
  });

  it('reads a prepared dataset from its volume, read-only, pinned by its hash in both configs', () => {
    const hash = 'c'.repeat(64);
    const run = defaultedRun({ data: { dataset: { claimName: 'corpus-pvc', path: 'fineweb/v1', hash } } });
    const children = childrenOf(run, [], images);
    const files = children.configMap.data!;
    expect(parseCoordinatorConfig(files['coordinator.yaml']!).train.data).toMatchObject({ dir: '/var/lib/concord-data/fineweb/v1', hash });
    const trainer = parseTrainConfigYaml(files['trainer-workers.yaml'] ?? files[Object.keys(files).find((f) => f.startsWith('trainer-'))!]!);
    expect(trainer.data).toMatchObject({ dir: '/var/lib/concord-data/fineweb/v1', hash });
    const pod = children.trainers[0]!.spec!.template.spec!;
    expect(pod.volumes).toContainEqual({ name: 'dataset', persistentVolumeClaim: { claimName: 'corpus-pvc', readOnly: true } });
    expect(pod.containers[0]!.volumeMounts).toContainEqual({ name: 'dataset', mountPath: '/var/lib/concord-data', readOnly: true });
    // Without a dataset: the bundled corpus, no volume.
    const plain = childrenOf(defaultedRun(), [], images).trainers[0]!.spec!.template.spec!;
    expect(plain.volumes!.map((v) => v.name)).not.toContain('dataset');
  });

  it('gives each group its own replica numbers and its GPUs, selectors and tolerations', () => {
    const run = defaultedRun({
      workers: [
        { name: 'h100', replicas: 4, gpu: { resource: 'nvidia.com/gpu', count: 8 }, nodeSelector: { pool: 'h100' }, tolerations: [{ key: 'gpu', operator: 'Exists' }] },
        { name: 'a10', replicas: 2, gpu: { resource: 'amd.com/gpu', count: 1 }, resources: { requests: { cpu: '4', memory: '16Gi' } } },
      ],
    });
    expect([replicaOffsetOf(run, 'h100'), replicaOffsetOf(run, 'a10')]).toEqual([0, 4]);
    const [h100, a10] = childrenOf(run, [], images).trainers;
    const container = (sts: typeof h100) => sts!.spec!.template.spec!.containers[0]!;
    expect(container(h100).resources!.limits).toEqual({ 'nvidia.com/gpu': '8' });
    expect(container(a10).resources).toEqual({ requests: { cpu: '4', memory: '16Gi' }, limits: { 'amd.com/gpu': '1' } });
    expect(h100!.spec!.template.spec!.nodeSelector).toEqual({ pool: 'h100' });
    expect(container(a10).command!.slice(-2)).toEqual(['--replica-offset', '4']);
    expect(h100!.spec!.replicas).toBe(4);
    expect(h100!.spec!.selector.matchLabels![LABELS.group]).toBe('h100');
  });

  it('runs locked down: non-root, read-only root filesystem, no privilege escalation, no API token', () => {
    const children = childrenOf(defaultedRun(), [], images);
    for (const workload of [children.coordinator, ...children.trainers]) {
      const pod = workload.spec!.template.spec!;
      expect(pod.securityContext!.runAsNonRoot).toBe(true);
      expect(pod.automountServiceAccountToken).toBe(false);
      expect(pod.containers[0]!.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    }
  });

  it('exposes only the federation port with the spec\'s Service type; trainers and metrics stay inside', () => {
    const children = childrenOf(defaultedRun({ federation: { serviceType: 'LoadBalancer' } }), [], images);
    expect(children.federationService.spec!.type).toBe('LoadBalancer');
    expect(children.federationService.spec!.ports!.map((p) => p.port)).toEqual([7443]);
    expect(children.coordinatorService.spec!.type).toBe('ClusterIP');
    expect(children.coordinatorService.spec!.ports!.map((p) => p.name)).toEqual(['trainers', 'metrics']);
  });

  it('scales the coordinator and every trainer group to zero when suspended', () => {
    const children = childrenOf(defaultedRun({ suspend: true }), [], images);
    expect(children.coordinator.spec!.replicas).toBe(0);
    expect(children.trainers.map((t) => t.spec!.replicas)).toEqual([0]);
  });

  it('changes the config hash when a Peer joins or leaves, so the coordinator rolls', () => {
    const run = defaultedRun();
    const without = configHashOf(configMapOf(run, []));
    const withPeer = configHashOf(configMapOf(run, [defaultedPeer('b', { publicKey: key() })]));
    expect(withPeer).not.toBe(without);
    expect(configHashOf(configMapOf(run, []))).toBe(without);
  });

  it('creates the identity Secret with the private key and the public key beside it', () => {
    const identity = generateIdentity();
    const secret = identitySecretOf(defaultedRun(), { privateKeyPem: 'PEM', publicKey: encodePublicKey(identity.publicKey) });
    expect(secret.metadata!.name).toBe('alpha-identity');
    expect(secret.stringData).toEqual({ 'private.pem': 'PEM', 'public.key': encodePublicKey(identity.publicKey) });
  });
});

describe('validateRun: what the schema cannot say, named by TrainingRun field', () => {
  const problem = (spec: Record<string, unknown>) => {
    try {
      validateRun(defaultedRun(spec));
      return undefined;
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidSpecError);
      return (error as InvalidSpecError).message;
    }
  };

  it('accepts the defaulted example, and a Llama-family model', () => {
    expect(problem({})).toBeUndefined();
    expect(problem({ model: { family: 'llama', vocabSize: 512, seqLen: 32, layers: 1, dModel: 32, heads: 4, kvHeads: 2, tiedEmbeddings: true } })).toBeUndefined();
  });

  it.each([
    [{ model: { vocabSize: 512, seqLen: 32, layers: 1, dModel: 30, heads: 4 } }, 'spec.model.heads'],
    [{ model: { family: 'llama', vocabSize: 512, seqLen: 32, layers: 1, dModel: 32, heads: 4, kvHeads: 3 } }, 'spec.model.kvHeads'],
    [{ model: { family: 'llama', vocabSize: 512, seqLen: 32, layers: 1, dModel: 36, heads: 4 } }, 'spec.model.heads'],
    [{ model: { vocabSize: 512, seqLen: 32, layers: 1, dModel: 32, heads: 4, kvHeads: 2 } }, 'spec.model.kvHeads'],
    [{ compression: { chunk: 16, topk: 32 } }, 'spec.compression.topk'],
    [{ workers: [{ name: 'a', replicas: 1 }, { name: 'a', replicas: 2 }] }, 'spec.workers[1].name'],
    [{ workers: [{ name: 'a', replicas: 1, batch: 0 }] }, 'spec.workers[0].batch'],
    [{ workers: [] }, 'spec.workers'],
    [{ outer: { optimizer: 'nesterov', momentum: 1.5 } }, 'spec.outer.momentum'],
    [{ validation: { harm: -1 } }, 'spec.validation.harm'],
    [{ validation: { relative: 1.5 } }, 'spec.validation.relative'],
  ])('%j → %s', (spec, field) => {
    expect(problem(spec)).toMatch(new RegExp(`^${field.replace(/[[\].]/g, '\\$&')}: `));
  });
});

describe('the CRD defaults are the components\' defaults', () => {
  it('inner, compression and validation defaults match the trainer and round settings', async () => {
    const { DEFAULT_INNER } = await import('../../trainer/src/train/config.js');
    const { DEFAULT_ROUND_SETTINGS } = await import('../../operator/src/coordinator/round-settings.js');
    const spec = defaultedRun().spec;
    expect(spec.inner).toEqual(DEFAULT_INNER);
    const c = DEFAULT_ROUND_SETTINGS.compression;
    expect(spec.compression).toEqual({ chunk: c.chunk, topk: c.k, bits: c.bits, errorDecay: c.errorDecay });
    const v = DEFAULT_ROUND_SETTINGS.validation;
    expect(spec.validation).toEqual({ batches: v.batches, harm: v.harm, help: v.help, relative: v.relative, reputationFloor: v.reputationFloor });
    expect(spec.federation.transfer).toEqual(DEFAULT_ROUND_SETTINGS.transfer);
    expect(spec.federation.maxContributionBytes).toBe(DEFAULT_ROUND_SETTINGS.maxContributionBytes);
    const claims = DEFAULT_ROUND_SETTINGS.claims;
    expect([spec.outer.relativeTokenCap, spec.outer.maxShare, spec.outer.maxTokensPerRound]).toEqual([claims.relativeTokenCap, claims.maxShare, claims.maxTokensPerRound]);
  });
});
