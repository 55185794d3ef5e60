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

/** Losses before and after applying θ − λ·decode(c), on the contributor's data and on random data. */
export interface ContributionLosses {
  ownLossBefore: number;
  ownLossAfter: number;
  randomLossBefore: number;
  randomLossAfter: number;
}

/** Messages between a TrainerThread (main thread) and its worker (train-worker.ts). */
export type ToWorker =
  | { type: 'init'; config: TrainConfig; params: Float32Array; m: SharedArrayBuffer; v: SharedArrayBuffer; optimizerStep: number }
  | { type: 'read-params' }
  | { type: 'load-params'; params: Float32Array }
  | { type: 'score'; base: Float32Array; indices: Uint32Array; values: Float32Array; step: number; assignment: Assignment; randomSeed: bigint; batches: number; randomLossBefore?: number }
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
