import type { TrainConfig } from '../train/config.js';
import type { InnerLoopResult, Progress } from '../train/inner-loop.js';

/** Whose data a round trains on: the arguments of assign() that a coordinator decides. */
export interface Assignment {
  runSeed: bigint;
  peers: string[];
  peerId: string;
  round: number;
  replica: number;
  replicas: number;
}

/** Per-sequence losses before and after one sample's step, pair by pair. */
export interface PairedLosses {
  before: Float32Array;
  after: Float32Array;
}

/** A contribution's evaluation: per-sequence losses before and after θ − step·decode(c), on a
 * sample of the contributor's trained data and on control data. */
export interface ContributionLosses {
  own: PairedLosses;
  control: PairedLosses;
}

/** What a 'score' request asks: the update, the step, whose data and how to draw the samples. */
export interface ScoreRequest {
  base: Float32Array;
  indices: Uint32Array;
  values: Float32Array;
  step: number;
  /** The contributor's assignment (one replica: its whole slice). */
  assignment: Assignment;
  /** Sequences it trained on, by its claim. */
  trained: number;
  /** 32 bytes that draw both samples (EvaluateTask.sample_seed). */
  seed: Uint8Array;
  /** Batches per side. */
  batches: number;
}

/** Messages between a TrainerThread (main thread) and its worker (train-worker.ts). */
export type ToWorker =
  | { type: 'init'; config: TrainConfig; params: Float32Array; m: SharedArrayBuffer; v: SharedArrayBuffer; optimizerStep: number }
  | { type: 'read-params' }
  | { type: 'load-params'; params: Float32Array }
  | ({ type: 'score' } & ScoreRequest)
  | { type: 'train'; maxSteps?: number; deadlineMs?: number; firstStep: number; assignment?: Assignment }
  | { type: 'evaluate' }
  | { type: 'close' };

export interface WorkerReady {
  provider: 'cuda' | 'cpu';
  paramCount: number;
  trainTokens: number;
  validationTokens: number;
  /** Entropy of the train tokens' unigram distribution, in nats: the loss of a model that knows only token frequencies. */
  unigramEntropy: number;
}

export type FromWorker =
  | ({ type: 'ready' } & WorkerReady)
  | { type: 'progress'; progress: Progress }
  | { type: 'trained'; result: InnerLoopResult; optimizerStep: number }
  | { type: 'evaluated'; loss: number }
  | { type: 'params'; params: Float32Array }
  | { type: 'params-loaded' }
  | { type: 'scored'; losses: ContributionLosses }
  | { type: 'error'; message: string };
