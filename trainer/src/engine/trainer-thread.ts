import { Worker } from 'node:worker_threads';
import { initModelParams, modelParamCount } from '../model/family.js';
import type { TrainConfig } from '../train/config.js';
import type { InnerLoopResult, Progress } from '../train/inner-loop.js';
import { compiledPath } from '../compiled.js';
import type { Assignment, ContributionLosses, FromWorker, ScoreRequest, ToWorker, WorkerReady } from './protocol.js';

/**
 * A trainer on its own thread: ORT's run() blocks the thread it runs on, so the inner loop runs
 * in a worker and this (main) thread stays free for gRPC, metrics and progress. The worker owns
 * the parameters (ORT cannot read shared memory); `readParams` returns a copy. The optimizer
 * moments are SharedArrayBuffers the main thread reads while the worker is idle.
 */
export class TrainerThread {
  readonly m: Float32Array;
  readonly v: Float32Array;
  optimizerStep = 0;
  private readonly worker: Worker;
  private pending: { resolve: (message: FromWorker) => void; reject: (error: Error) => void; expect: FromWorker['type'] } | undefined;
  private onProgress: ((progress: Progress) => void) | undefined;

  private constructor(readonly config: TrainConfig, readonly ready: WorkerReady, worker: Worker, buffers: { m: Float32Array; v: Float32Array }) {
    this.worker = worker;
    this.m = buffers.m;
    this.v = buffers.v;
  }

  /** Starts the worker with freshly initialised parameters (from config.seed). */
  static async start(config: TrainConfig): Promise<TrainerThread> {
    const size = modelParamCount(config.model);
    const shared = () => new Float32Array(new SharedArrayBuffer(size * 4));
    const buffers = { m: shared(), v: shared() };
    // Made here and handed over (transferred, not copied) to the worker, which owns them.
    const params = initModelParams(config.model, config.seed);
    const worker = new Worker(compiledPath('./train-worker.js', import.meta.url));
    const thread = await new Promise<TrainerThread>((resolve, reject) => {
      const fail = (error: Error) => reject(error);
      worker.once('error', fail);
      worker.once('message', (message: FromWorker) => {
        worker.off('error', fail);
        if (message.type === 'ready') resolve(new TrainerThread(config, message, worker, buffers));
        else reject(new Error(message.type === 'error' ? message.message : `unexpected ${message.type} from the trainer worker`));
      });
      const init: ToWorker = { type: 'init', config, params, m: buffers.m.buffer as SharedArrayBuffer, v: buffers.v.buffer as SharedArrayBuffer, optimizerStep: 0 };
      worker.postMessage(init, [params.buffer as ArrayBuffer]);
    });
    thread.listen();
    return thread;
  }

  /** Trains until the deadline or the step budget; progress arrives on `onProgress`. */
  async train(options: { maxSteps?: number; deadlineMs?: number; assignment?: Assignment; onProgress?: (progress: Progress) => void }): Promise<InnerLoopResult> {
    this.onProgress = options.onProgress;
    try {
      const message = await this.request({ type: 'train', firstStep: this.optimizerStep, ...withDefined(options) }, 'trained');
      if (message.type !== 'trained') throw new Error('unreachable');
      this.optimizerStep = message.optimizerStep;
      return message.result;
    } finally {
      this.onProgress = undefined;
    }
  }

  /** A copy of the current parameters (flat layout order). */
  async readParams(): Promise<Float32Array> {
    const message = await this.request({ type: 'read-params' }, 'params');
    if (message.type !== 'params') throw new Error('unreachable');
    return message.params;
  }

  /** Replaces the parameters (e.g. with a round's base θ_r); the array is transferred. */
  async loadParams(params: Float32Array): Promise<void> {
    const message = await this.requestWithTransfer({ type: 'load-params', params }, 'params-loaded', [params.buffer as ArrayBuffer]);
    if (message.type !== 'params-loaded') throw new Error('unreachable');
  }

  /**
   * Scores a contribution: per-sequence losses before and after base − step·update, on a sample of
   * the contributor's trained data and on control data (protocol.ts, ScoreRequest). The trainer's
   * own parameters are not touched.
   */
  async scoreContribution(request: ScoreRequest): Promise<ContributionLosses> {
    const message = await this.request({ type: 'score', ...request }, 'scored');
    if (message.type !== 'scored') throw new Error('unreachable');
    return message.losses;
  }

  /** Mean validation loss over the fixed validation batches. */
  async evaluate(): Promise<number> {
    const message = await this.request({ type: 'evaluate' }, 'evaluated');
    if (message.type !== 'evaluated') throw new Error('unreachable');
    return message.loss;
  }

  async close(): Promise<void> {
    this.worker.postMessage({ type: 'close' } satisfies ToWorker);
    await this.worker.terminate();
  }

  private request(message: ToWorker, expect: FromWorker['type']): Promise<FromWorker> {
    return this.requestWithTransfer(message, expect, []);
  }

  private requestWithTransfer(message: ToWorker, expect: FromWorker['type'], transfer: ArrayBuffer[]): Promise<FromWorker> {
    if (this.pending !== undefined) return Promise.reject(new Error('the trainer is busy'));
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject, expect };
      this.worker.postMessage(message, transfer);
    });
  }

  private listen(): void {
    const settle = (error: Error | undefined, message?: FromWorker) => {
      const pending = this.pending;
      this.pending = undefined;
      if (pending === undefined) return;
      if (error) pending.reject(error);
      else pending.resolve(message!);
    };
    this.worker.on('message', (message: FromWorker) => {
      if (message.type === 'progress') this.onProgress?.(message.progress);
      else if (message.type === 'error') settle(new Error(message.message));
      else if (message.type === this.pending?.expect) settle(undefined, message);
    });
    this.worker.on('error', (error) => settle(error));
    this.worker.on('exit', (code) => settle(new Error(`the trainer worker exited with code ${code}`)));
  }
}

function withDefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([key, v]) => v !== undefined && key !== 'onProgress')) as Partial<T>;
}
