import { describe, expect, it } from '@jest/globals';
import { layoutOf } from '../../trainer/src/params.js';
import { AdamW } from '../../trainer/src/train/adamw.js';
import { learningRate } from '../../trainer/src/train/schedule.js';

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

  it('refuses a non-finite gradient, naming the problem', () => {
    const optimizer = new AdamW(layout, () => true, config);
    expect(() => optimizer.update(new Float32Array(6), Float32Array.of(NaN, 0, 0, 0, 0, 0), 0.1)).toThrow(/gradient norm is NaN/);
  });
});
