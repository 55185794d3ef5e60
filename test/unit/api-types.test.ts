import { describe, expect, it } from '@jest/globals';
import type { Condition, PeerSpec, PeerStatus, TrainingRunSpec, TrainingRunStatus } from '../../operator/src/api/types.js';
import { crdSchema, type Schema } from '../support/crd-defaults.js';

// crds/ is the single source of the API schema; operator/src/api/types.ts describes the same
// objects for the compiler. These samples must set every field of the types (Full<> makes every
// optional field required, and tsc checks that in CI), and the test checks that their fields are
// exactly the schema's: a field added to one and not the other fails here.
type Full<T> = T extends readonly (infer U)[] ? Full<U>[] : T extends object ? { [K in keyof T]-?: Full<T[K]> } : T;

const condition: Full<Condition> = { type: 'Ready', status: 'True', reason: 'AllReady', message: '', lastTransitionTime: '', observedGeneration: 1 };

const runSpec: Full<TrainingRunSpec> = {
  runId: 'r', seed: 1, suspend: false,
  model: { family: 'llama', vocabSize: 512, seqLen: 32, layers: 1, dModel: 32, heads: 2, kvHeads: 1, ffnWidth: 64, ropeTheta: 10000, normEps: 1e-5, tiedEmbeddings: false },
  data: { corpus: 'brown', genres: 'all', validationEvery: 20, dataset: { claimName: 'data', path: 'corpus', hash: 'a'.repeat(64) } },
  workers: [{
    name: 'g', replicas: 1, batch: 8, gpu: { resource: 'nvidia.com/gpu', count: 1 }, threads: 1,
    resources: { requests: { cpu: '1' }, limits: { cpu: '1' } }, nodeSelector: { a: 'b' },
    tolerations: [{ key: 'k', operator: 'Exists', value: 'v', effect: 'NoSchedule', tolerationSeconds: 1 }],
  }],
  inner: { batch: 16, lr: 0.003, warmupSteps: 50, minLrRatio: 0.1, weightDecay: 0.1, gradClip: 1, beta1: 0.9, beta2: 0.95 },
  outer: { optimizer: 'sgd', lr: 1, momentum: 0.9, rounds: 10, windowSeconds: 60, graceSeconds: 10, deliveryBoundSeconds: 2, maxInnerSteps: 30, maxTokensPerRound: 100000, relativeTokenCap: 2, maxShare: 0.5 },
  compression: { chunk: 4096, topk: 64, bits: 2, errorDecay: 0.95 },
  validation: { batches: 2, sample: 1, reputationFloor: 0.3, harm: 3, help: 2, relative: 0.4 },
  federation: { port: 7443, serviceType: 'ClusterIP', identitySecret: 's', quorum: 2, maxContributionBytes: 1024, transfer: { concurrency: 2, bytesPerSecond: 0, minBytesPerSecond: 262144 }, peerSelector: { matchLabels: { a: 'b' }, matchExpressions: [{ key: 'k', operator: 'In', values: ['v'] }] } },
  checkpoint: { size: '1Gi', storageClassName: 'fast', everyRounds: 5 },
};

const runStatus: Full<TrainingRunStatus> = {
  observedGeneration: 1, phase: 'Running', round: 1, rounds: 2, progress: '1/2', modelHash: 'h', loss: 1, tokens: 1, eta: '1m',
  lastProgressTime: '', identity: { secretName: 's', peerId: 'p', publicKey: 'k' },
  peers: { configured: 1, reachable: 1, verified: 1, banned: 0, summary: '1/1' }, conditions: [condition],
};

const peerSpec: Full<PeerSpec> = { runRef: { name: 'r' }, endpoint: 'h:1', publicKey: 'k', weight: 1, maxContributionBytes: 1024 };

const peerStatus: Full<PeerStatus> = {
  observedGeneration: 1, peerId: 'p', lastHandshake: '', lastSeen: '', rttMs: 1, reputation: 0.5, accepted: 1, rejected: 1,
  rejectedByReason: { LowScore: 1 }, banned: { reason: 'Equivocation', round: 1, evidence: 'e' }, conditions: [condition],
};

/** Field paths of a value, stopping at maps (schema additionalProperties). */
function valuePaths(value: unknown, schema: Schema, prefix: string): string[] {
  if (Array.isArray(value)) return value.length === 0 ? [] : valuePaths(value[0], schema.items ?? {}, `${prefix}[]`);
  if (value === null || typeof value !== 'object' || schema.additionalProperties !== undefined) return [];
  return Object.entries(value as Record<string, unknown>).flatMap(([key, v]) => [`${prefix}.${key}`, ...valuePaths(v, schema.properties?.[key] ?? {}, `${prefix}.${key}`)]);
}

function schemaPaths(schema: Schema, prefix: string): string[] {
  if (schema.items) return schemaPaths(schema.items, `${prefix}[]`);
  if (schema.additionalProperties !== undefined) return [];
  return Object.entries(schema.properties ?? {}).flatMap(([key, s]) => [`${prefix}.${key}`, ...schemaPaths(s, `${prefix}.${key}`)]);
}

describe('operator/src/api/types.ts matches crds/', () => {
  it.each([
    ['TrainingRun spec', crdSchema('trainingruns').properties!.spec!, runSpec],
    ['TrainingRun status', crdSchema('trainingruns').properties!.status!, runStatus],
    ['Peer spec', crdSchema('peers').properties!.spec!, peerSpec],
    ['Peer status', crdSchema('peers').properties!.status!, peerStatus],
  ])('%s has the same fields in the types and the schema', (_name, schema, sample) => {
    expect(valuePaths(sample, schema, '').sort()).toEqual(schemaPaths(schema, '').sort());
  });

  it('enums of the schema are the unions of the types', () => {
    const spec = crdSchema('trainingruns').properties!.spec!.properties!;
    expect(spec.outer!.properties!.optimizer!.enum).toEqual(['nesterov', 'sgd'] satisfies TrainingRunSpec['outer']['optimizer'][]);
    expect(spec.federation!.properties!.serviceType!.enum).toEqual(['ClusterIP', 'NodePort', 'LoadBalancer'] satisfies TrainingRunSpec['federation']['serviceType'][]);
    expect(crdSchema('trainingruns').properties!.status!.properties!.phase!.enum).toEqual(['Pending', 'Running', 'Suspended', 'Succeeded', 'Failed'] satisfies NonNullable<TrainingRunStatus['phase']>[]);
  });
});
