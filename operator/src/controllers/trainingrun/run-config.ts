// What a TrainingRun's pods read: the coordinator's config file and one trainer config per worker
// group, built from the spec as plain data (pure), and checked by the very parsers the coordinator
// and trainer run — so a spec the operator accepts is a spec its pods accept, and an error names
// the TrainingRun field at fault, not a field of a generated file.
import { readCoordinatorConfig } from '../../coordinator/config.js';
import { ConfigError } from '../../../../trainer/src/config-error.js';
import { parseTrainConfig } from '../../../../trainer/src/train/config.js';
import { stringify } from 'yaml';
import type { Peer, TrainingRun, WorkerGroup } from '../../api/types.js';
import { selectorProblem } from '../peer-selection.js';
import { MOUNTS, PORTS } from './names.js';

/** A spec the operator cannot run, with the TrainingRun field that is wrong. */
export class InvalidSpecError extends Error {
  constructor(readonly field: string, readonly problem: string) {
    super(`${field}: ${problem}`);
    this.name = 'InvalidSpecError';
  }
}

/**
 * Inner steps the cosine schedule decays over. Rounds end on their wall-clock window, so the
 * steps a run will take are not known in advance: the schedule is held near its peak (warmup,
 * then a decay too slow to matter within a run), as in `npm start` (docs/operator.md).
 */
const DECAY_STEPS = 1_000_000;

/** The trainer config (trainer/src/train/config.ts) of one worker group. */
export function trainerConfigOf(run: TrainingRun, group: WorkerGroup): Record<string, unknown> {
  const { spec } = run;
  const outer: Record<string, unknown> = { kind: spec.outer.optimizer };
  if (spec.outer.lr !== undefined) outer.lr = spec.outer.lr;
  if (spec.outer.optimizer === 'nesterov') outer.momentum = spec.outer.momentum;
  return {
    seed: spec.seed,
    model: { ...spec.model },
    // A prepared dataset replaces the corpus: its split is in its manifest, its hash pins it.
    data: spec.data.dataset === undefined ? { genres: spec.data.genres, validationEvery: spec.data.validationEvery }
      : { dir: datasetDirOf(spec.data.dataset), hash: spec.data.dataset.hash },
    inner: { ...spec.inner, batch: group.batch ?? spec.inner.batch },
    train: {
      steps: DECAY_STEPS, minutes: 24 * 60,
      device: (group.gpu?.count ?? 0) > 0 ? 'cuda' : 'cpu',
      ...(group.threads !== undefined ? { threads: group.threads } : {}),
    },
    outer,
  };
}

/** Where a trainer reads the prepared dataset: the volume's mount, and the path within it. */
export function datasetDirOf(dataset: { path?: string }): string {
  return dataset.path === undefined ? MOUNTS.dataset : `${MOUNTS.dataset}/${dataset.path}`;
}

/** Trainers the coordinator waits for before its first round: every replica of every group. */
export function trainerCount(run: TrainingRun): number {
  return run.spec.workers.reduce((sum, group) => sum + group.replicas, 0);
}

/**
 * The coordinator's config file (operator/src/coordinator/config.ts). `peers` are the run's Peer
 * resources; the model and optimizers are the first group's trainer config (the coordinator only
 * reads the model and the outer step from it; every group shares them).
 */
export function coordinatorConfigOf(run: TrainingRun, peers: readonly Peer[]): Record<string, unknown> {
  const { spec } = run;
  const rounds: Record<string, unknown> = {
    runSeed: spec.seed, rounds: spec.outer.rounds, windowSeconds: spec.outer.windowSeconds, graceSeconds: spec.outer.graceSeconds, deliveryBoundSeconds: spec.outer.deliveryBoundSeconds,
    compression: { ...spec.compression },
    validation: { ...spec.validation },
    transfer: { ...spec.federation.transfer },
    maxContributionBytes: spec.federation.maxContributionBytes,
    claims: {
      relativeTokenCap: spec.outer.relativeTokenCap, maxShare: spec.outer.maxShare,
      ...(spec.outer.maxTokensPerRound !== undefined ? { maxTokensPerRound: spec.outer.maxTokensPerRound } : {}),
    },
  };
  if (spec.federation.quorum !== undefined) rounds.quorum = spec.federation.quorum;
  return {
    name: run.metadata.name,
    runId: spec.runId,
    identityFile: `${MOUNTS.identity}/private.pem`,
    listen: `0.0.0.0:${spec.federation.port}`,
    trainerListen: `0.0.0.0:${PORTS.trainers}`,
    metricsListen: `0.0.0.0:${PORTS.metrics}`,
    trainers: Math.max(1, trainerCount(run)),
    peers: [...peers].sort((a, b) => a.metadata.name!.localeCompare(b.metadata.name!)).map((peer) => ({
      name: peer.metadata.name!, endpoint: peer.spec.endpoint, publicKey: peer.spec.publicKey,
      ...(peer.spec.weight !== undefined ? { weight: peer.spec.weight } : {}),
      ...(peer.spec.maxContributionBytes !== undefined ? { maxContributionBytes: peer.spec.maxContributionBytes } : {}),
    })),
    train: trainerConfigOf(run, spec.workers[0]!),
    rounds,
    checkpointDir: MOUNTS.checkpoints,
    checkpointEveryRounds: spec.checkpoint.everyRounds,
    ...(spec.outer.maxInnerSteps !== undefined ? { maxInnerSteps: spec.outer.maxInnerSteps } : {}),
  };
}

/** The files of the run's ConfigMap: `coordinator.yaml` and `trainer-<group>.yaml`. */
export function configFilesOf(run: TrainingRun, peers: readonly Peer[]): Record<string, string> {
  const files: Record<string, string> = { 'coordinator.yaml': stringify(coordinatorConfigOf(run, peers)) };
  for (const group of run.spec.workers) files[`trainer-${group.name}.yaml`] = stringify(trainerConfigOf(run, group));
  return files;
}

/**
 * Checks what the CRD schema cannot (or, on API servers without CEL, does not) by parsing the
 * generated files with the pods' own parsers. Throws InvalidSpecError naming the spec field.
 */
export function validateRun(run: TrainingRun, peers: readonly Peer[] = []): void {
  const { spec } = run;
  if (!Array.isArray(spec.workers) || spec.workers.length === 0) throw new InvalidSpecError('spec.workers', 'needs at least one worker group');
  const names = new Set<string>();
  spec.workers.forEach((group, i) => {
    if (names.has(group.name)) throw new InvalidSpecError(`spec.workers[${i}].name`, `"${group.name}" is used by two groups`);
    names.add(group.name);
    try {
      parseTrainConfig(trainerConfigOf(run, group));
    } catch (error) {
      throw translate(error, (field) => trainerFieldToSpec(field, i));
    }
  });
  const selector = selectorProblem(spec.federation.peerSelector, 'spec.federation.peerSelector');
  if (selector !== undefined) throw new InvalidSpecError(selector.field, selector.problem);
  try {
    readCoordinatorConfig(coordinatorConfigOf(run, peers));
  } catch (error) {
    throw translate(error, coordinatorFieldToSpec);
  }
}

function translate(error: unknown, toSpec: (field: string) => string): Error {
  if (error instanceof ConfigError) return new InvalidSpecError(toSpec(error.field), error.problem);
  return error instanceof Error ? error : new Error(String(error));
}

/** A field of a group's trainer config → the TrainingRun field it came from. */
function trainerFieldToSpec(field: string, group: number): string {
  if (field === 'inner.batch') return `spec.workers[${group}].batch`;
  if (field === 'train.threads') return `spec.workers[${group}].threads`;
  if (field === 'outer.kind') return 'spec.outer.optimizer';
  if (field === 'seed') return 'spec.seed';
  return `spec.${field}`;
}

const ROUND_FIELDS: Record<string, string> = {
  runSeed: 'seed', rounds: 'outer.rounds', windowSeconds: 'outer.windowSeconds', graceSeconds: 'outer.graceSeconds', deliveryBoundSeconds: 'outer.deliveryBoundSeconds',
  quorum: 'federation.quorum', maxContributionBytes: 'federation.maxContributionBytes',
};

/** A field of the coordinator config → the TrainingRun (or Peer) field it came from. */
function coordinatorFieldToSpec(field: string): string {
  const peer = /^peers\[(\d+)\]\.(\w+)$/.exec(field);
  if (peer) return `Peer #${peer[1]} spec.${peer[2]}`;
  if (field.startsWith('train.')) return trainerFieldToSpec(field.slice('train.'.length), 0);
  if (field.startsWith('rounds.')) {
    const rest = field.slice('rounds.'.length);
    const top = rest.split('.')[0]!;
    if (ROUND_FIELDS[top] !== undefined) return `spec.${ROUND_FIELDS[top]}`;
    if (top === 'transfer') return `spec.federation.${rest}`;
    return `spec.${rest}`;
  }
  if (field === 'runId') return 'spec.runId';
  if (field === 'maxInnerSteps') return 'spec.outer.maxInnerSteps';
  if (field === 'checkpointEveryRounds') return 'spec.checkpoint.everyRounds';
  return `spec.${field}`;
}
