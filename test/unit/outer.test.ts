import { describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { decodePayload, densify, SparseLoCoEncoder, type SparseUpdate } from '../../trainer/src/codec/index.js';
import { aggregate, type Contribution } from '../../trainer/src/outer/aggregate.js';
import { DILOCO_OUTER, OuterOptimizer, TEMPLAR_OUTER } from '../../trainer/src/outer/optimizer.js';

const N = 5000;

function randomDelta(seed: number, scale = 1e-2): Float32Array {
  let s = seed;
  return Float32Array.from({ length: N }, () => ((s = (Math.imul(s, 48271) + 11) >>> 0) / 2 ** 32 - 0.5) * scale);
}

function encoded(seed: number, scale?: number): SparseUpdate {
  return decodePayload(new SparseLoCoEncoder(N, { chunk: 500, k: 25, bits: 2 }).encode(randomDelta(seed, scale)), N);
}

function sha(values: Float32Array): string {
  return createHash('sha256').update(Buffer.from(values.buffer, values.byteOffset, values.byteLength)).digest('hex');
}

const contributions: Contribution[] = ['peer-c', 'peer-a', 'peer-d', 'peer-b'].map((peerId, i) => ({
  peerId, tokens: 1000 * (i + 1), score: 0.5 + i / 8, update: encoded(i + 1),
}));

describe('aggregation', () => {
  it('gives the same bits whatever order the contributions arrive in, and on every run', () => {
    const reference = sha(aggregate(contributions, N).delta);
    let seed = 17;
    for (let shuffle = 0; shuffle < 10; shuffle++) {
      // Fisher–Yates with a small PRNG: a different arrival order each time.
      const order = [...contributions];
      for (let i = order.length - 1; i > 0; i--) {
        seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
        const j = seed % (i + 1);
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      expect(sha(aggregate(order, N).delta)).toBe(reference);
    }
    expect(aggregate(contributions, N).peers.map((p) => p.peerId)).toEqual(['peer-a', 'peer-b', 'peer-c', 'peer-d']);
  });

  it('weights by tokens × score and clips each update to the median norm', () => {
    const big = { peerId: 'attacker', tokens: 1000, score: 1, update: encoded(9, 10) }; // 1000× larger
    const result = aggregate([...contributions, big], N);
    const attacker = result.peers.find((p) => p.peerId === 'attacker')!;
    expect(attacker.norm).toBeGreaterThan(100 * result.medianNorm);
    expect(attacker.norm * attacker.clip).toBeCloseTo(result.medianNorm, 10);
    const weights = result.peers.map((p) => p.weight);
    expect(weights.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    // By hand for one coordinate: Σ weight·clip·value.
    const dense = [...contributions, big].sort((a, b) => (a.peerId < b.peerId ? -1 : 1)).map((c) => densify(c.update));
    const index = contributions[0]!.update.indices[3]!;
    const expected = result.peers.reduce((sum, p, i) => Math.fround(sum + p.weight * p.clip * dense[i]![index]!), 0);
    expect(result.delta[index]).toBe(expected);
  });

  it('refuses inputs that cannot be combined, naming the peer', () => {
    expect(() => aggregate([contributions[0]!, { ...contributions[1]!, peerId: contributions[0]!.peerId }], N)).toThrow(/peer-c contributes twice/);
    expect(() => aggregate([{ ...contributions[0]!, score: 2 }], N)).toThrow(/peer-c has a score outside \[0, 1\]/);
    expect(() => aggregate(contributions, N + 1)).toThrow(/has 5000 values, the model 5001/);
  });
});

describe('outer optimizer', () => {
  it('takes DiLoCo Nesterov steps: m ← μm + g, θ ← θ − lr(g + μm)', () => {
    const optimizer = new OuterOptimizer(2, DILOCO_OUTER);
    const params = Float32Array.of(1, -1);
    optimizer.step(params, Float32Array.of(0.1, 0.2));
    expect(params[0]).toBe(Math.fround(1 - 0.7 * (0.1 + 0.9 * Math.fround(0.1))));
    expect(optimizer.momentum[1]).toBe(Math.fround(0.2));
    optimizer.step(params, Float32Array.of(0.1, 0.2));
    const m = Math.fround(0.9 * Math.fround(0.1) + 0.1);
    expect(optimizer.momentum[0]).toBe(m);
    expect(params[0]).toBe(Math.fround(Math.fround(1 - 0.7 * (0.1 + 0.9 * Math.fround(0.1))) - 0.7 * (0.1 + 0.9 * m)));
  });

  it('with plain SGD at lr 1 lands exactly on base − g', () => {
    const base = randomDelta(3, 1);
    const g = randomDelta(4, 0.01);
    const params = base.slice();
    new OuterOptimizer(N, TEMPLAR_OUTER).step(params, g);
    for (let i = 0; i < N; i += 97) expect(params[i]).toBe(Math.fround(base[i]! - g[i]!));
  });

  it('is deterministic: same inputs, same parameter bits', () => {
    const run = () => {
      const params = randomDelta(5, 1);
      const optimizer = new OuterOptimizer(N, DILOCO_OUTER);
      for (let r = 0; r < 5; r++) optimizer.step(params, aggregate(contributions, N).delta);
      return sha(params);
    };
    expect(run()).toBe(run());
  });

  it('refuses bad settings', () => {
    expect(() => new OuterOptimizer(3, { kind: 'nesterov', lr: 0.7, momentum: 1 })).toThrow(/outer.momentum must be in \[0, 1\)/);
    expect(() => new OuterOptimizer(3, { kind: 'sgd', lr: 0 })).toThrow(/outer.lr must be a positive number/);
  });
});
