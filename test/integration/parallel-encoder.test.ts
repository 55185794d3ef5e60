import { describe, expect, it } from '@jest/globals';
import { decodePayload, ParallelSparseLoCoEncoder, SparseLoCoEncoder } from '../../trainer/src/codec/index.js';
import { within, WORKERS_MS } from '../support/deadlines.js';

function values(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32 - 0.5) ** 3 * 1e-2);
}

// The workers run from the build output (npm test builds first).
describe('the parallel encoder', () => {
  it.each([
    [4096 * 40 + 1234, { chunk: 4096, k: 64, bits: 2, errorDecay: 0.95 }, 2],
    [4096 * 3, { chunk: 4096, k: 64, bits: 2 }, 4],
    [1000, { chunk: 4096, k: 64, bits: 2 }, 2],
    [50_000, { chunk: 512, k: 16, bits: 3 }, 3],
  ])('writes the same bytes and error buffer as the single-threaded encoder, round after round (%d values)', async (n, options, threads) => {
    const single = new SparseLoCoEncoder(n, options);
    const parallel = await ParallelSparseLoCoEncoder.create(n, options, threads);
    try {
      for (let round = 0; round < 3; round++) {
        const delta = values(n, 17 + round);
        const expected = Buffer.from(single.encode(delta));
        const got = Buffer.from(await parallel.encode(delta));
        expect(got.equals(expected)).toBe(true);
        expect(Buffer.from(parallel.error.buffer).equals(Buffer.from(single.error.buffer))).toBe(true);
        expect(decodePayload(got, n).indices.length).toBeGreaterThan(0);
      }
      // Δ computed straight into shared memory is read without a copy.
      const shared = parallel.sharedDelta();
      shared.set(values(n, 99));
      expect(Buffer.from(await parallel.encode(shared)).equals(Buffer.from(single.encode(values(n, 99))))).toBe(true);
    } finally {
      await parallel.close();
    }
  }, within(WORKERS_MS));

  it('refuses non-finite input like the single-threaded encoder', async () => {
    const parallel = await ParallelSparseLoCoEncoder.create(20_000, { chunk: 4096, k: 64, bits: 2 }, 2);
    try {
      const delta = values(20_000, 1);
      delta[15_000] = Infinity;
      await expect(parallel.encode(delta)).rejects.toThrow(/not finite at index 15000/);
    } finally {
      await parallel.close();
    }
  });
});
