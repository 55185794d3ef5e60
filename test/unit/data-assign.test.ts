import { describe, expect, it } from '@jest/globals';
import {
  KeyedPermutation,
  assign,
  assignedSlice,
  batchTokens,
  randomBatches,
  roundPermutation,
  windowCount,
  type AssignOptions,
} from '../../trainer/src/data/assign.js';

// assign() of `base` with batches 1, pinned: a change here changes every run's data assignment
// (bump the key domain "concord/assign/v1" when that is intended).
const PINNED = [61056, 23744, 32640, 16640];

const base: AssignOptions = {
  runSeed: 'run-42',
  peers: ['peer-c', 'peer-a', 'peer-b'],
  peerId: 'peer-a',
  round: 7,
  replica: 0,
  replicas: 2,
  batchSize: 4,
  seqLen: 64,
  tokens: 100_000,
  batches: 5,
};

/** All windows the given (peer, replica) sees in a round when it takes its whole slice. */
function wholeSlice(options: AssignOptions): number[] {
  const { length } = assignedSlice(options);
  return assign({ ...options, batchSize: 1, batches: length }).flat();
}

describe('assign', () => {
  it('is deterministic and independent of the order the peers are listed in', () => {
    const a = assign(base);
    expect(assign({ ...base })).toEqual(a);
    expect(assign({ ...base, peers: ['peer-b', 'peer-c', 'peer-a'] })).toEqual(a);
    expect(a).toHaveLength(5);
    expect(a.every((b) => b.length === 4)).toBe(true);
    expect(assign({ ...base, batches: 1 })[0]).toEqual(PINNED);
  });

  it('gives every offset on the window grid and inside the array', () => {
    for (const round of [0, 1, 2, 1000]) {
      for (const offset of assign({ ...base, round, batches: 50 }).flat()) {
        expect(offset % base.seqLen).toBe(0);
        expect(offset).toBeGreaterThanOrEqual(0);
        expect(offset + base.seqLen + 1).toBeLessThanOrEqual(base.tokens);
      }
    }
  });

  it('partitions the windows of a round among peers and their replicas', () => {
    const replicas: Record<string, number> = { 'peer-a': 2, 'peer-b': 1, 'peer-c': 3 };
    const seen = new Map<number, string>();
    for (const peerId of base.peers) {
      for (let replica = 0; replica < replicas[peerId]!; replica++) {
        for (const offset of wholeSlice({ ...base, peerId, replica, replicas: replicas[peerId]! })) {
          expect(seen.get(offset)).toBeUndefined();
          seen.set(offset, `${peerId}/${replica}`);
        }
      }
    }
    const windows = windowCount(base.tokens, base.seqLen);
    expect(seen.size).toBe(windows);
    expect([...seen.keys()].sort((x, y) => x - y)).toEqual(Array.from({ length: windows }, (_, w) => w * base.seqLen));
  });

  it('keeps peers disjoint within a round even with different batch sizes', () => {
    const a = new Set(assign({ ...base, peerId: 'peer-a', batchSize: 16, batches: 40 }).flat());
    const b = assign({ ...base, peerId: 'peer-b', replicas: 1, batchSize: 3, batches: 200 }).flat();
    expect(b.some((o) => a.has(o))).toBe(false);
  });

  it('draws a different permutation each round and for each run seed', () => {
    const r7 = wholeSlice(base);
    const r8 = wholeSlice({ ...base, round: 8 });
    expect(r8).not.toEqual(r7);
    const shared = r8.filter((o) => new Set(r7).has(o)).length;
    expect(shared / r7.length).toBeLessThan(0.4); // expected ~1/6 for a slice of a sixth
    expect(assign({ ...base, runSeed: 'run-43' })).not.toEqual(assign(base));
    expect(assign({ ...base, runSeed: 42n })).not.toEqual(assign({ ...base, runSeed: '42' }));
    expect(assign({ ...base, round: 7n })).toEqual(assign(base));
  });

  it('returns later batches on request and wraps around inside its own slice', () => {
    const ten = assign({ ...base, batches: 10 });
    expect(assign({ ...base, firstBatch: 6, batches: 4 })).toEqual(ten.slice(6));
    const { length } = assignedSlice(base);
    const sequences = assign({ ...base, batchSize: 1, batches: 2 * length + 3 }).flat();
    expect(new Set(sequences.slice(0, length)).size).toBe(length);
    expect(sequences.slice(length, 2 * length)).toEqual(sequences.slice(0, length));
    expect(sequences.slice(2 * length)).toEqual(sequences.slice(0, 3));
  });

  it('refuses an unknown peer, duplicate ids, bad replicas and too little data', () => {
    expect(() => assign({ ...base, peerId: 'peer-x' })).toThrow(/not in the round's peer list/);
    expect(() => assign({ ...base, peers: ['peer-a', 'peer-a'] })).toThrow(/listed twice/);
    expect(() => assign({ ...base, replica: 2 })).toThrow(/replica must be in \[0, 2\)/);
    expect(() => assign({ ...base, tokens: 64 * 5 + 1 })).toThrow(/too few/);
    expect(() => assign({ ...base, round: -1 })).toThrow(/round must be/);
    expect(() => assign({ ...base, seqLen: 0 })).toThrow(/seqLen must be/);
  });
});

describe('keyed permutation', () => {
  it('is a bijection of [0, n) for sizes around powers of two', () => {
    const key = new Uint8Array(32).fill(9);
    for (const n of [1, 2, 3, 4, 5, 17, 255, 256, 257, 1000, 4097, 65_537]) {
      const p = new KeyedPermutation(n, key);
      const hit = new Uint8Array(n);
      for (let i = 0; i < n; i++) hit[p.at(i)]!++;
      expect(hit.every((h) => h === 1)).toBe(true);
    }
  });

  it('looks shuffled: few fixed points and no long runs of neighbours', () => {
    const n = 10_000;
    const p = roundPermutation('seed', 3, n);
    let fixed = 0;
    let neighbours = 0;
    for (let i = 0; i < n; i++) {
      if (p.at(i) === i) fixed++;
      if (i > 0 && Math.abs(p.at(i) - p.at(i - 1)) === 1) neighbours++;
    }
    expect(fixed).toBeLessThan(10); // ~1 expected
    expect(neighbours).toBeLessThan(20); // ~2 expected
  });

  it('puts every ordered pair of windows first about equally often, even for tiny W', () => {
    const n = 5;
    const rounds = 6000;
    const seen = new Array<number>(n * n).fill(0);
    for (let r = 0; r < rounds; r++) {
      const p = roundPermutation('uniform', r, n);
      seen[p.at(0) * n + p.at(1)]!++;
    }
    const expected = rounds / (n * (n - 1));
    let chi2 = 0;
    for (let a = 0; a < n; a++) {
      for (let b = 0; b < n; b++) if (a !== b) chi2 += (seen[a * n + b]! - expected) ** 2 / expected;
    }
    expect(chi2).toBeLessThan(45); // 19 degrees of freedom: p ≈ 0.001; 8 Feistel rounds gave ~85
  });
});

describe('randomBatches', () => {
  const options = { batchSize: 8, seqLen: 32, tokens: 50_000, batches: 6 };

  it('depends only on its seed and draws distinct in-range windows', () => {
    const a = randomBatches('commit-hash-1', options);
    expect(randomBatches('commit-hash-1', options)).toEqual(a);
    expect(randomBatches('commit-hash-2', options)).not.toEqual(a);
    expect(randomBatches(Buffer.from('commit-hash-1'), options)).not.toEqual(a);
    const flat = a.flat();
    expect(new Set(flat).size).toBe(flat.length);
    for (const o of flat) {
      expect(o % 32).toBe(0);
      expect(o + 33).toBeLessThanOrEqual(50_000);
    }
  });
});

describe('batchTokens', () => {
  it('gathers inputs and next-token targets for each offset', () => {
    const tokens = Uint16Array.from({ length: 100 }, (_, i) => i);
    const { input, target } = batchTokens(tokens, [0, 40], 4);
    expect(Array.from(input)).toEqual([0, 1, 2, 3, 40, 41, 42, 43]);
    expect(Array.from(target)).toEqual([1, 2, 3, 4, 41, 42, 43, 44]);
    expect(() => batchTokens(tokens, [96], 4)).toThrow(/does not fit/);
  });
});
