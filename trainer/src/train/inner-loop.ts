import * as ort from 'onnxruntime-node';
import { batchTokens } from '../data/assign.js';
import type { TokenSource } from '../data/dataset.js';
import type { GraphRunner } from '../engine/session.js';
import type { AdamW } from './adamw.js';
import { learningRate, type ScheduleConfig } from './schedule.js';

/** What a trainer reports while it trains (a few times per second at most). */
export interface Progress {
  step: number;
  loss: number;
  tokens: number;
  tokensPerSecond: number;
  lr: number;
  gradNorm: number;
  elapsedMs: number;
}

export interface InnerLoopOptions {
  /** The 'train' graph with per-tensor gradients: inputs params, tokens, targets; outputs loss and grad.<name>. */
  runner: GraphRunner;
  /** Updated in place. */
  params: Float32Array;
  optimizer: AdamW;
  schedule: ScheduleConfig;
  /** Steps the schedule counts from (the optimizer's steps before this loop). */
  firstStep?: number;
  batch: number;
  seqLen: number;
  /** The train token array and the sequence start offsets of batch `i` of this loop. */
  tokens: TokenSource;
  offsets: (batchIndex: number) => readonly number[];
  /** Stop before a step that would end after this wall-clock time (ms since the epoch). */
  deadlineMs?: number;
  /** Stop after this many steps. */
  maxSteps?: number;
  onProgress?: (progress: Progress) => void;
  /** Minimum time between progress reports (default 250 ms). */
  progressEveryMs?: number;
  now?: () => number;
}

export interface InnerLoopResult {
  steps: number;
  tokens: number;
  /** Loss of every step, in order. */
  losses: number[];
  elapsedMs: number;
  stoppedBy: 'deadline' | 'steps';
}

/**
 * The inner loop: forward + backward in one ORT run, gradient clipping and AdamW in JS over the
 * flat vector, until the deadline or the step budget. The deadline is wall-clock so a round ends
 * on time whatever the hardware: a step that would likely end after it (judged by the recent
 * step time) is not started, and the tokens trained so far are what the round reports.
 */
export async function runInnerLoop(options: InnerLoopOptions): Promise<InnerLoopResult> {
  const { runner, params, optimizer, schedule, batch, seqLen, tokens } = options;
  const now = options.now ?? Date.now;
  const progressEveryMs = options.progressEveryMs ?? 250;
  const maxSteps = options.maxSteps ?? Infinity;
  if (options.deadlineMs === undefined && !Number.isFinite(maxSteps)) throw new Error('the inner loop needs a deadline or a step budget');
  const firstStep = options.firstStep ?? 0;
  const buffers = { input: new Int32Array(batch * seqLen), target: new Int32Array(batch * seqLen) };
  const tokenTensor = new ort.Tensor('int32', buffers.input, [batch, seqLen]);
  const targetTensor = new ort.Tensor('int32', buffers.target, [batch, seqLen]);
  // Outputs land in these buffers every step: no fresh P-sized array per step for the GC.
  const lossBuffer = new Float32Array(1);
  const grads = new Float32Array(params.length);
  const fetches: Record<string, ort.Tensor> = { loss: new ort.Tensor('float32', lossBuffer, []) };
  for (const t of runner.layout.tensors) fetches[`grad.${t.name}`] = new ort.Tensor('float32', grads.subarray(t.offset, t.offset + t.size), t.shape);
  const started = now();
  const losses: number[] = [];
  let stepMs = 0;
  let lastReport = -Infinity;
  let trained = 0;
  let stoppedBy: InnerLoopResult['stoppedBy'] = 'steps';

  for (let i = 0; i < maxSteps; i++) {
    const stepStart = now();
    if (options.deadlineMs !== undefined && stepStart + stepMs > options.deadlineMs) {
      stoppedBy = 'deadline';
      break;
    }
    batchTokens(tokens, options.offsets(i), seqLen, buffers);
    await runner.run(params, { tokens: tokenTensor, targets: targetTensor }, fetches);
    const loss = lossBuffer[0]!;
    if (!Number.isFinite(loss)) throw new Error(`loss is ${loss} at step ${firstStep + i}: the run diverged`);
    const lr = learningRate(firstStep + i, schedule);
    const gradNorm = optimizer.update(params, grads, lr);
    losses.push(loss);
    trained += batch * seqLen;
    const end = now();
    // The recent step time, to judge whether one more step fits before the deadline.
    stepMs = stepMs === 0 ? end - stepStart : 0.8 * stepMs + 0.2 * (end - stepStart);
    if (options.onProgress && (end - lastReport >= progressEveryMs || i + 1 === maxSteps)) {
      lastReport = end;
      const elapsedMs = end - started;
      options.onProgress({ step: firstStep + i + 1, loss, tokens: trained, tokensPerSecond: (trained * 1000) / Math.max(1, elapsedMs), lr, gradNorm, elapsedMs });
    }
  }
  return { steps: losses.length, tokens: trained, losses, elapsedMs: now() - started, stoppedBy };
}

/**
 * Mean loss of the 'loss' graph over fixed batches (evaluation): every batch is the same on
 * every call, so validation losses of different steps and machines compare.
 */
export async function evaluate(
  runner: GraphRunner, params: Float32Array, tokens: TokenSource,
  options: { batch: number; seqLen: number; batches: readonly (readonly number[])[] },
): Promise<number> {
  const { batch, seqLen } = options;
  const buffers = { input: new Int32Array(batch * seqLen), target: new Int32Array(batch * seqLen) };
  const extra = { tokens: new ort.Tensor('int32', buffers.input, [batch, seqLen]), targets: new ort.Tensor('int32', buffers.target, [batch, seqLen]) };
  let sum = 0;
  for (const offsets of options.batches) {
    batchTokens(tokens, offsets, seqLen, buffers);
    const outputs = await runner.run(params, extra);
    sum += Number((outputs.loss!.data as Float32Array)[0]);
  }
  return sum / options.batches.length;
}

/**
 * Each sequence's own mean loss ('loss' graph, sequenceLosses) over `batches`, in order: what a
 * paired comparison of two parameter vectors on the same sequences needs.
 */
export async function sequenceLosses(
  runner: GraphRunner, params: Float32Array, tokens: TokenSource,
  options: { batch: number; seqLen: number; batches: readonly (readonly number[])[] },
): Promise<Float32Array> {
  const { batch, seqLen } = options;
  const buffers = { input: new Int32Array(batch * seqLen), target: new Int32Array(batch * seqLen) };
  const extra = { tokens: new ort.Tensor('int32', buffers.input, [batch, seqLen]), targets: new ort.Tensor('int32', buffers.target, [batch, seqLen]) };
  const out = new Float32Array(options.batches.length * batch);
  for (const [b, offsets] of options.batches.entries()) {
    batchTokens(tokens, offsets, seqLen, buffers);
    const outputs = await runner.run(params, extra);
    out.set(outputs.sequenceLosses!.data as Float32Array, b * batch);
  }
  return out;
}

/** `count` batches of evenly spaced, non-overlapping sequences over a token array. */
export function evenlySpacedBatches(tokenCount: number, options: { batch: number; seqLen: number; count: number }): number[][] {
  const { batch, seqLen, count } = options;
  const windows = Math.floor((tokenCount - 1) / seqLen);
  const needed = batch * count;
  if (windows < 1) throw new Error(`${tokenCount} tokens hold no sequence of ${seqLen + 1}`);
  const stride = Math.max(1, Math.floor(windows / needed));
  return Array.from({ length: count }, (_, b) => Array.from({ length: batch }, (_, r) => (((b * batch + r) * stride) % windows) * seqLen));
}
