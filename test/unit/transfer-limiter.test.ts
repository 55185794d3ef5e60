import { describe, expect, it } from '@jest/globals';
import { TransferLimiter } from '../../operator/src/coordinator/transfer-limiter.js';
import { LATE_MS } from '../support/deadlines.js';

describe('per-peer transfer limits', () => {
  it('runs at most `concurrency` transfers from one peer at a time, and other peers beside them', async () => {
    const limiter = new TransferLimiter({ concurrency: 2, bytesPerSecond: 0 });
    const running = new Map<string, number>();
    const most = new Map<string, number>();
    const transfer = (peer: string) => limiter.run(peer, async () => {
      running.set(peer, (running.get(peer) ?? 0) + 1);
      most.set(peer, Math.max(most.get(peer) ?? 0, running.get(peer)!));
      // A transfer holds its slot a moment. Any length will do: all nine are asked for at once,
      // so the first two of each peer start together however slow the machine.
      await new Promise((resolve) => setTimeout(resolve, 20));
      running.set(peer, running.get(peer)! - 1);
      return peer;
    });
    const results = await Promise.all([...Array.from({ length: 6 }, () => transfer('a')), ...Array.from({ length: 3 }, () => transfer('b'))]);
    expect(results.filter((r) => r === 'a')).toHaveLength(6);
    expect(most.get('a')).toBe(2);
    expect(most.get('b')).toBe(2);
  });

  it('paces one peer\'s bytes to its bandwidth cap (one second of burst, then the rate)', async () => {
    const limiter = new TransferLimiter({ concurrency: 1, bytesPerSecond: 100_000 });
    const started = performance.now();
    await limiter.run('a', async (pace) => {
      // 100 kB pass at once (the bucket starts full), the next 50 kB wait ~0.5 s.
      for (let i = 0; i < 15; i++) await pace(10_000);
    });
    const seconds = (performance.now() - started) / 1000;
    // At least the rate (a slower machine only adds), and not much more than it.
    expect(seconds).toBeGreaterThan(0.4);
    expect(seconds).toBeLessThan(0.5 + LATE_MS / 1000);
    // Another peer has its own bucket, still full: its 50 kB pass at once, while 'a', asking at the
    // same time for more than a bucket holds, must wait, however much time has passed since.
    const finished: string[] = [];
    await Promise.all([
      limiter.run('a', async (pace) => pace(150_000)).then(() => finished.push('a')),
      limiter.run('b', async (pace) => pace(50_000)).then(() => finished.push('b')),
    ]);
    expect(finished).toEqual(['b', 'a']);
  });

  it('refuses nonsense limits', () => {
    expect(() => new TransferLimiter({ concurrency: 0, bytesPerSecond: 0 })).toThrow(/concurrency must be a positive integer/);
    expect(() => new TransferLimiter({ concurrency: 1, bytesPerSecond: -1 })).toThrow(/bytesPerSecond/);
  });
});
