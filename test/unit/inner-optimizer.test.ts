import { describe, expect, it } from '@jest/globals';
import { layoutOf } from '../../trainer/src/params.js';
import { AdamW } from '../../trainer/src/train/adamw.js';
import { learningRate } from '../../trainer/src/train/schedule.js';
import { seededRandom } from '../../trainer/src/random.js';

describe('learning-rate schedule', () => {
  const config = { lr: 1e-3, warmupSteps: 10, decaySteps: 110, minLrRatio: 0.1 };
  it('warms up linearly, decays by a cosine to the floor, then stays there', () => {
    expect(learningRate(0, config)).toBeCloseTo(1e-4, 12);
    expect(learningRate(9, config)).toBeCloseTo(1e-3, 12);
    expect(learningRate(60, config)).toBeCloseTo(1e-4 + 0.9e-3 * 0.5, 12);
    expect(learningRate(110, config)).toBeCloseTo(1e-4, 12);
    expect(learningRate(500, config)).toBeCloseTo(1e-4, 12);
    for (let s = 10; s < 110; s++) expect(learningRate(s + 1, config)).toBeLessThanOrEqual(learningRate(s, config));
  });
});

describe('AdamW', () => {
  const layout = layoutOf([{ name: 'w', shape: [2, 2] }, { name: 'b', shape: [2] }]);
  const config = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, gradClip: 0 };

  it('takes the textbook first step: −lr·sign(g) plus decoupled decay on decayed tensors only', () => {
    const params = Float32Array.of(1, -1, 2, 0.5, 3, -3);
    const grads = Float32Array.of(0.5, -2, 1e-3, 0, 4, -4);
    const optimizer = new AdamW(layout, (name) => name === 'w', config);
    optimizer.update(params, grads, 0.01);
    // First step: m̂ = g, v̂ = g², so the update is g/|g| (0 where g is 0).
    expect(params[0]).toBeCloseTo(1 * (1 - 0.01 * 0.1) - 0.01, 6);
    expect(params[1]).toBeCloseTo(-1 * (1 - 0.001) + 0.01, 6);
    expect(params[3]).toBeCloseTo(0.5 * (1 - 0.001), 6);
    expect(params[4]).toBeCloseTo(3 - 0.01, 6); // 'b' is not decayed
    expect(params[5]).toBeCloseTo(-3 + 0.01, 6);
  });

  it('clips the global gradient norm and reports the norm before clipping', () => {
    const optimizer = new AdamW(layout, () => false, { ...config, gradClip: 1 });
    const grads = Float32Array.of(3, 4, 0, 0, 0, 0);
    expect(optimizer.update(new Float32Array(6), grads, 0.1)).toBeCloseTo(5, 6);
    // m after one step = (1 − β1)·g·(1/5).
    expect(optimizer.m[0]).toBeCloseTo(0.1 * 3 / 5, 6);
  });

  it('minimises a quadratic', () => {
    const optimizer = new AdamW(layoutOf([{ name: 'x', shape: [3] }]), () => false, config);
    const x = Float32Array.of(5, -3, 2);
    for (let i = 0; i < 2000; i++) optimizer.update(x, x.map((v) => 2 * v), 0.01);
    for (const v of x) expect(Math.abs(v)).toBeLessThan(0.02);
  });

  it('agrees with a float64 element-by-element AdamW over many chunks, odd tensor sizes and both decays', () => {
    // 40,003 + 17 + 25,001 values: several of the kernel's chunks, and tails of 3, 1 and 1 lanes.
    const big = layoutOf([{ name: 'w1', shape: [40_003] }, { name: 'b', shape: [17] }, { name: 'w2', shape: [25_001] }]);
    const decays = (name: string) => name.startsWith('w');
    const random = seededRandom(4);
    const params = Float32Array.from({ length: big.size }, () => random() * 2 - 1);
    const reference = { params: Float64Array.from(params), m: new Float64Array(big.size), v: new Float64Array(big.size) };
    const optimizer = new AdamW(big, decays, { ...config, gradClip: 1 });
    for (let step = 1; step <= 3; step++) {
      const grads = Float32Array.from({ length: big.size }, () => (random() - 0.5) * 0.02);
      const lr = 0.01 * step;
      const norm = optimizer.update(params, grads, lr);
      const scale = norm > 1 ? 1 / norm : 1;
      for (const t of big.tensors) {
        const keep = decays(t.name) ? 1 - lr * config.weightDecay : 1;
        for (let i = t.offset; i < t.offset + t.size; i++) {
          const g = grads[i]! * scale;
          reference.m[i] = 0.9 * reference.m[i]! + 0.1 * g;
          reference.v[i] = 0.95 * reference.v[i]! + 0.05 * g * g;
          const mHat = reference.m[i]! / (1 - 0.9 ** step);
          const vHat = reference.v[i]! / (1 - 0.95 ** step);
          reference.params[i] = reference.params[i]! * keep - (lr * mHat) / (Math.sqrt(vHat) + config.eps);
        }
      }
    }
    let worst = 0;
    for (let i = 0; i < big.size; i++) worst = Math.max(worst, Math.abs(params[i]! - reference.params[i]!));
    expect(worst).toBeLessThan(1e-5); // float32 rounding of values near 1, over three steps
    expect(worst).toBeGreaterThan(0); // float32 arithmetic, not a copy of the reference
    expect(params.every(Number.isFinite)).toBe(true);
  });

  it('gives the same bits for the same inputs', () => {
    const run = () => {
      const optimizer = new AdamW(layout, (name) => name === 'w', config);
      const params = Float32Array.of(1, -1, 2, 0.5, 3, -3);
      for (let i = 0; i < 5; i++) optimizer.update(params, Float32Array.of(0.5, -2, 1e-3, 0, 4, -4).map((g) => g * (i + 1)), 0.01);
      return [...params, ...optimizer.m, ...optimizer.v];
    };
    expect(run()).toEqual(run());
  });

  it('refuses a non-finite gradient, naming the problem', () => {
    const optimizer = new AdamW(layout, () => true, config);
    expect(() => optimizer.update(new Float32Array(6), Float32Array.of(NaN, 0, 0, 0, 0, 0), 0.1)).toThrow(/gradient norm is NaN/);
  });
});
