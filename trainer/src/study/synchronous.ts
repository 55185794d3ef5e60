// Synchronous data-parallel training, the centralised baseline of both studies: at every step
// each peer computes the gradient of its own batch, the gradients are averaged (what an
// all-reduce gives every peer) and one AdamW step is taken on the one model. One ORT session
// stands in for all the peers: the result is the same, only slower than real peers in parallel.
import * as ort from 'onnxruntime-node';
import { batchTokens } from '../data/assign.js';
import type { TokenSource } from '../data/dataset.js';
import type { GraphRunner } from '../engine/session.js';
import type { AdamW } from '../train/adamw.js';
import { learningRate, type ScheduleConfig } from '../train/schedule.js';

/** Loss and gradient of one batch at given parameters (a 'train' graph with one flat gradient output). */
export class BatchGradient {
  private readonly input: Int32Array;
  private readonly target: Int32Array;
  private readonly feeds: Record<string, ort.Tensor>;

  constructor(private readonly runner: GraphRunner, private readonly tokens: TokenSource, private readonly shape: { batch: number; seqLen: number }) {
    this.input = new Int32Array(shape.batch * shape.seqLen);
    this.target = new Int32Array(shape.batch * shape.seqLen);
    const dims = [shape.batch, shape.seqLen];
    this.feeds = { tokens: new ort.Tensor('int32', this.input, dims), targets: new ort.Tensor('int32', this.target, dims) };
  }

  /** The gradient lives in ORT's output buffer: read it before the next call. */
  async at(params: Float32Array, batchOffsets: readonly number[]): Promise<{ loss: number; grads: Float32Array }> {
    batchTokens(this.tokens, batchOffsets, this.shape.seqLen, { input: this.input, target: this.target });
    const out = await this.runner.run(params, this.feeds);
    return { loss: Number((out.loss!.data as Float32Array)[0]), grads: out.grads!.data as Float32Array };
  }
}

export interface SynchronousOptions {
  gradient: BatchGradient;
  /** Updated in place. */
  params: Float32Array;
  optimizer: AdamW;
  schedule: ScheduleConfig;
  steps: number;
  /** The batches of step `step`, one per peer (sequence start offsets). */
  batchesAt: (step: number) => ReadonlyArray<readonly number[]>;
  /** After each step (1-based count) with the mean loss of its batches. */
  afterStep?: (step: number, loss: number) => Promise<void> | void;
}

export async function trainSynchronous(options: SynchronousOptions): Promise<void> {
  const { gradient, params, optimizer, schedule } = options;
  const mean = new Float32Array(params.length);
  for (let step = 0; step < options.steps; step++) {
    mean.fill(0);
    const batches = options.batchesAt(step);
    let loss = 0;
    for (const batch of batches) {
      const result = await gradient.at(params, batch);
      const { grads } = result;
      for (let i = 0; i < mean.length; i++) mean[i] = mean[i]! + grads[i]! / batches.length;
      loss += result.loss / batches.length;
    }
    optimizer.update(params, mean, learningRate(step, schedule));
    await options.afterStep?.(step + 1, loss);
  }
}
