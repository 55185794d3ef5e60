import { parse } from 'yaml';
import { ConfigError, configFields } from '../config-error.js';
import { parseModelConfig, type ModelConfig } from '../model/family.js';
import { TEMPLAR_OUTER, type OuterConfig } from '../outer/optimizer.js';
import type { Device } from '../engine/session.js';

/** Everything one training process needs: `npm run train -- --config FILE.yaml`. */
export interface TrainConfig {
  /** Seeds the initialisation and the data order. */
  seed: number;
  model: ModelConfig;
  /** The Brown corpus (genres, the split rule), or a prepared dataset's directory (`dir`, trainer/src/data/open.ts) and the hash its manifest must have (`hash`). */
  data: { genres: string; validationEvery: number; dir?: string; hash?: string };
  inner: InnerConfig;
  train: { steps: number; minutes: number; evalEvery: number; evalBatches: number; threads: number | undefined; device: Device };
  /** The outer step a federated trainer applies after each round (default DiLoCo's). */
  outer: OuterConfig;
}

/** The inner optimizer: AdamW with warmup and cosine decay (the `inner` part of a TrainingRun). */
export interface InnerConfig {
  batch: number;
  lr: number;
  warmupSteps: number;
  minLrRatio: number;
  weightDecay: number;
  gradClip: number;
  beta1: number;
  beta2: number;
}

export const DEFAULT_INNER: InnerConfig = { batch: 16, lr: 3e-3, warmupSteps: 50, minLrRatio: 0.1, weightDecay: 0.1, gradClip: 1, beta1: 0.9, beta2: 0.95 };

export { ConfigError };

export function parseTrainConfigYaml(text: string): TrainConfig {
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (error) {
    throw new ConfigError('(file)', `not valid YAML: ${(error as Error).message}`);
  }
  return parseTrainConfig(raw);
}

export function parseTrainConfig(raw: unknown): TrainConfig {
  const root = configFields(raw, '(file)', ['seed', 'model', 'data', 'inner', 'train', 'outer']);
  const outer = configFields(root.outer ?? {}, 'outer', ['kind', 'lr', 'momentum']);
  const outerKind = outer.kind ?? 'nesterov';
  if (outerKind !== 'nesterov' && outerKind !== 'sgd') throw new ConfigError('outer.kind', `must be nesterov or sgd, got ${JSON.stringify(outerKind)}`);
  const outerConfig: OuterConfig = outerKind === 'sgd'
    ? { kind: 'sgd', lr: number(outer.lr ?? TEMPLAR_OUTER.lr, 'outer.lr', 0, 10, false) }
    : { kind: 'nesterov', lr: number(outer.lr ?? 0.7, 'outer.lr', 0, 10, false), momentum: number(outer.momentum ?? 0.9, 'outer.momentum', 0, 1, true) };
  if (outerConfig.kind === 'nesterov' && outerConfig.momentum >= 1) throw new ConfigError('outer.momentum', 'must be below 1');
  const data = configFields(root.data ?? {}, 'data', ['genres', 'validationEvery', 'dir', 'hash']);
  const inner = configFields(root.inner ?? {}, 'inner', Object.keys(DEFAULT_INNER));
  const train = configFields(root.train ?? {}, 'train', ['steps', 'minutes', 'evalEvery', 'evalBatches', 'threads', 'device']);
  if (root.model === undefined) throw new ConfigError('model', 'is required');
  const device = train.device ?? 'auto';
  if (device !== 'auto' && device !== 'cpu' && device !== 'cuda') throw new ConfigError('train.device', `must be auto, cpu or cuda, got ${JSON.stringify(device)}`);
  const genres = data.genres ?? 'all';
  if (typeof genres !== 'string' || !/^(all|[a-r]+)$/.test(genres)) throw new ConfigError('data.genres', `must be "all" or Brown genre letters (a to r), got ${JSON.stringify(genres)}`);
  if (data.dir !== undefined && (typeof data.dir !== 'string' || data.dir === '')) throw new ConfigError('data.dir', `must be a directory path, got ${JSON.stringify(data.dir)}`);
  if (data.hash !== undefined && (typeof data.hash !== 'string' || !/^[0-9a-f]{64}$/.test(data.hash))) throw new ConfigError('data.hash', `must be a dataset hash (64 hex digits), got ${JSON.stringify(data.hash)}`);
  if (data.hash !== undefined && data.dir === undefined) throw new ConfigError('data.hash', 'names a prepared dataset: set data.dir too');
  if (data.dir !== undefined && (data.genres !== undefined || data.validationEvery !== undefined)) {
    throw new ConfigError(data.genres !== undefined ? 'data.genres' : 'data.validationEvery', 'applies to the Brown corpus only: a prepared dataset (data.dir) has its split in its manifest');
  }
  const config: TrainConfig = {
    seed: integer(root.seed ?? 1, 'seed', 0),
    model: parseModelConfig(root.model, 'model'),
    data: { genres, validationEvery: integer(data.validationEvery ?? 20, 'data.validationEvery', 2), ...(data.dir !== undefined ? { dir: data.dir as string } : {}), ...(data.hash !== undefined ? { hash: data.hash as string } : {}) },
    inner: {
      batch: integer(inner.batch ?? DEFAULT_INNER.batch, 'inner.batch', 1),
      lr: number(inner.lr ?? DEFAULT_INNER.lr, 'inner.lr', 0, 1, false),
      warmupSteps: integer(inner.warmupSteps ?? DEFAULT_INNER.warmupSteps, 'inner.warmupSteps', 0),
      minLrRatio: number(inner.minLrRatio ?? DEFAULT_INNER.minLrRatio, 'inner.minLrRatio', 0, 1, true),
      weightDecay: number(inner.weightDecay ?? DEFAULT_INNER.weightDecay, 'inner.weightDecay', 0, 1, true),
      gradClip: number(inner.gradClip ?? DEFAULT_INNER.gradClip, 'inner.gradClip', 0, 1e6, true),
      beta1: number(inner.beta1 ?? DEFAULT_INNER.beta1, 'inner.beta1', 0, 1, true),
      beta2: number(inner.beta2 ?? DEFAULT_INNER.beta2, 'inner.beta2', 0, 1, true),
    },
    train: {
      steps: integer(train.steps ?? 1000, 'train.steps', 1),
      minutes: number(train.minutes ?? 10, 'train.minutes', 0, 24 * 60, false),
      evalEvery: integer(train.evalEvery ?? 100, 'train.evalEvery', 1),
      evalBatches: integer(train.evalBatches ?? 8, 'train.evalBatches', 1),
      threads: train.threads === undefined ? undefined : integer(train.threads, 'train.threads', 1),
      device,
    },
    outer: outerConfig,
  };
  if (config.inner.beta1 >= 1) throw new ConfigError('inner.beta1', 'must be below 1');
  if (config.inner.beta2 >= 1) throw new ConfigError('inner.beta2', 'must be below 1');
  return config;
}

function integer(value: unknown, field: string, min: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) throw new ConfigError(field, `must be an integer, got ${JSON.stringify(value)}`);
  if (value < min) throw new ConfigError(field, `must be at least ${min}, got ${value}`);
  return value;
}

function number(value: unknown, field: string, min: number, max: number, minInclusive: boolean): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new ConfigError(field, `must be a number, got ${JSON.stringify(value)}`);
  if (minInclusive ? value < min : value <= min) throw new ConfigError(field, `must be ${minInclusive ? 'at least' : 'above'} ${min}, got ${value}`);
  if (value > max) throw new ConfigError(field, `must be at most ${max}, got ${value}`);
  return value;
}
