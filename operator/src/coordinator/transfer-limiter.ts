// Per-peer caps on transfers (issue #5: "per-peer transfer concurrency and bandwidth are capped
// by configuration"): at most `concurrency` transfers from one peer at a time, and their bytes
// paced to `bytesPerSecond` by a token bucket, so one fast or greedy peer cannot take the
// cluster's whole uplink or memory.
import { sleep } from '../runtime/backoff.js';

export interface TransferLimits {
  concurrency: number;
  /** 0: no cap. */
  bytesPerSecond: number;
}

class PeerLane {
  private running = 0;
  private readonly waiting: Array<() => void> = [];
  /** Bytes that may pass now; refills at bytesPerSecond, up to one second's worth. */
  private tokens: number;
  private refilledAt = performance.now();

  constructor(private readonly limits: TransferLimits) {
    this.tokens = limits.bytesPerSecond;
  }

  async acquire(): Promise<void> {
    if (this.running < this.limits.concurrency) {
      this.running++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next !== undefined) next();
    else this.running--;
  }

  /** Waits until `bytes` may pass under the bandwidth cap. */
  async pace(bytes: number, signal?: AbortSignal): Promise<void> {
    const rate = this.limits.bytesPerSecond;
    if (rate === 0) return;
    const now = performance.now();
    this.tokens = Math.min(rate, this.tokens + ((now - this.refilledAt) / 1000) * rate);
    this.refilledAt = now;
    this.tokens -= bytes;
    if (this.tokens < 0) await sleep((-this.tokens / rate) * 1000, signal);
  }
}

export class TransferLimiter {
  private readonly lanes = new Map<string, PeerLane>();

  constructor(private readonly limits: TransferLimits) {
    if (!(Number.isInteger(limits.concurrency) && limits.concurrency >= 1)) throw new Error(`transfer concurrency must be a positive integer, got ${limits.concurrency}`);
    if (!(limits.bytesPerSecond >= 0)) throw new Error(`transfer bytesPerSecond must be 0 (no cap) or positive, got ${limits.bytesPerSecond}`);
  }

  /** Runs `transfer` in `peer`'s lane; it calls `pace(n)` before using each n bytes. */
  async run<T>(peer: string, transfer: (pace: (bytes: number) => Promise<void>) => Promise<T>, signal?: AbortSignal): Promise<T> {
    let lane = this.lanes.get(peer);
    if (lane === undefined) this.lanes.set(peer, (lane = new PeerLane(this.limits)));
    await lane.acquire();
    try {
      return await transfer((bytes) => lane.pace(bytes, signal));
    } finally {
      lane.release();
    }
  }
}
