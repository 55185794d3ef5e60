// A controller's loop: workers take keys from its queue and reconcile them one at a time per key.
// A reconcile that throws is retried with the key's backoff; one that asks to be checked again
// later (requeueAfterMs) is, with its backoff forgotten — the level-based shape of
// controller-runtime's Reconciler.
import type { OperatorMetrics } from '../metrics/operator.js';
import type { Logger } from '../log.js';
import { WorkQueue } from './work-queue.js';

export interface ReconcileResult {
  /** Check the key again after this long (polling the coordinator, waiting for a rollout). */
  requeueAfterMs?: number;
}

export type Reconcile = (key: string) => Promise<ReconcileResult | void>;

export class Controller {
  readonly queue: WorkQueue;

  constructor(
    readonly name: string,
    private readonly reconcile: Reconcile,
    private readonly metrics: OperatorMetrics,
    private readonly log: Logger,
    queueOptions: { baseDelayMs?: number; maxDelayMs?: number } = {},
  ) {
    this.queue = new WorkQueue({ ...queueOptions, onDepth: (depth) => metrics.queueDepth.set({ controller: name }, depth) });
  }

  /** Runs `workers` loops until the queue shuts down; resolves when they have all finished. */
  async run(workers: number): Promise<void> {
    await Promise.all(Array.from({ length: workers }, () => this.work()));
  }

  private async work(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      const stop = this.metrics.reconcileDuration.startTimer({ controller: this.name });
      try {
        const result = await this.reconcile(key);
        this.queue.forget(key);
        if (result?.requeueAfterMs !== undefined) {
          this.metrics.reconciles.inc({ controller: this.name, result: 'requeue' });
          this.queue.addAfter(key, result.requeueAfterMs);
        } else {
          this.metrics.reconciles.inc({ controller: this.name, result: 'success' });
        }
      } catch (error) {
        this.metrics.reconciles.inc({ controller: this.name, result: 'error' });
        const delay = this.queue.addRateLimited(key);
        this.log.warn('reconcile-failed', { controller: this.name, key, retryInMs: delay, error: error instanceof Error ? error.message : String(error) });
      } finally {
        stop();
        this.queue.done(key);
      }
    }
  }
}
