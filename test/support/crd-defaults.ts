// The CRDs of crds/ as the unit tests see them: objects defaulted exactly as the API server
// defaults them (structural schema `default`s, applied top-down), so that pure builders are tested
// with the same input the operator gets from a cluster, without one.
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import type { Peer, TrainingRun } from '../../operator/src/api/types.js';
import type { Schema } from '../../scripts/api-docs.js';

export type { Schema };

export function crdSchema(plural: 'trainingruns' | 'peers'): Schema {
  const crd = parse(readFileSync(new URL(`../../crds/concord.dev_${plural}.yaml`, import.meta.url), 'utf8')) as { spec: { versions: Array<{ schema: { openAPIV3Schema: Schema } }> } };
  return crd.spec.versions[0]!.schema.openAPIV3Schema;
}

export function applyDefaults(schema: Schema, value: unknown): unknown {
  if (Array.isArray(value)) return schema.items ? value.map((item) => applyDefaults(schema.items!, item)) : value;
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  for (const [key, property] of Object.entries(schema.properties ?? {})) {
    if (out[key] === undefined && property.default !== undefined) out[key] = structuredClone(property.default);
    if (out[key] !== undefined) out[key] = applyDefaults(property, out[key]);
  }
  return out;
}

let uid = 0;

/** A TrainingRun as the operator reads it from the API server: defaulted, with uid and generation. */
export function defaultedRun(spec: Record<string, unknown> = {}, name = 'alpha'): TrainingRun {
  return applyDefaults(crdSchema('trainingruns'), {
    apiVersion: 'concord.dev/v1alpha1', kind: 'TrainingRun',
    metadata: { name, namespace: 'team-a', uid: `uid-${++uid}`, generation: 1 },
    spec: {
      runId: 'shared-run',
      model: { vocabSize: 512, seqLen: 32, layers: 1, dModel: 32, heads: 2 },
      workers: [{ name: 'cpu', replicas: 2 }],
      ...spec,
    },
  }) as TrainingRun;
}

export function defaultedPeer(name: string, spec: Record<string, unknown>, run = 'alpha'): Peer {
  return applyDefaults(crdSchema('peers'), {
    apiVersion: 'concord.dev/v1alpha1', kind: 'Peer', metadata: { name, namespace: 'team-a', uid: `uid-${++uid}`, generation: 1 },
    spec: { runRef: { name: run }, endpoint: `${name}.example.org:7443`, ...spec },
  }) as Peer;
}
