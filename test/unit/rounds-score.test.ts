import { describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { gauntletScore, randomBatchSeed, scaleToRound, scoreToPpm, type LossReport } from '../../operator/src/rounds/score.js';
import { randomBatches } from '../../trainer/src/data/assign.js';

/** Losses from improvements: before 4.0 on both batch sets. */
const losses = (own: number, random: number): LossReport => ({ ownLossBefore: 4, ownLossAfter: 4 - own, randomLossBefore: 4, randomLossAfter: 4 - random });

describe('Gauntlet score', () => {
  it('rewards a contribution that helps its own data more than random data', () => {
    // Specificity (0.2 − 0.14) / 0.2 = 0.3 ≥ full (0.25): score 1.
    expect(gauntletScore(losses(0.2, 0.14)).score).toBe(1);
    // Specificity 0.15: halfway between margin 0.05 and full 0.25.
    const half = gauntletScore(losses(0.2, 0.17));
    expect(half.score).toBeCloseTo(0.5, 12);
    expect(half.specificity).toBeCloseTo(0.15, 12);
    expect(half.reason).toBeUndefined();
    // Helps its own data and leaves random data as it was: fully specific.
    expect(gauntletScore(losses(0.05, 0)).score).toBe(1);
  });

  it('gives 0 (NoImprovement) to free-riding, copied, harmful and broken contributions', () => {
    const zero = (report: LossReport) => {
      const s = gauntletScore(report);
      expect(s.reason).toBe('NoImprovement');
      return s.score;
    };
    // A zero update changes nothing; a tiny one changes nothing measurable.
    expect(zero(losses(0, 0))).toBe(0);
    expect(zero(losses(5e-5, 0))).toBe(0);
    // Trained on other data, or copied: helps its own data as much as random data.
    expect(zero(losses(0.2, 0.2))).toBe(0);
    expect(zero(losses(0.2, 0.21))).toBe(0);
    // At the margin exactly (numbers exact in binary): (0.25 − 0.234375) / 0.25 = 0.0625 is not above it.
    expect(gauntletScore(losses(0.25, 0.234375), { margin: 0.0625 })).toMatchObject({ score: 0, specificity: 0.0625, reason: 'NoImprovement' });
    expect(gauntletScore(losses(0.25, 0.234), { margin: 0.0625 }).score).toBeGreaterThan(0);
    // Sign-flipped or scaled up: makes its own data worse.
    expect(zero(losses(-0.1, -0.05))).toBe(0);
    expect(zero(losses(-20, -21))).toBe(0);
    // Helps its own data at the expense of everything else.
    expect(zero(losses(0.3, -0.01))).toBe(0);
    // Losses that are not numbers.
    expect(zero({ ...losses(0.2, 0.1), ownLossAfter: Number.NaN })).toBe(0);
    expect(zero({ ...losses(0.2, 0.1), randomLossAfter: Number.POSITIVE_INFINITY })).toBe(0);
  });

  it('takes its thresholds from the options and refuses inconsistent ones', () => {
    expect(gauntletScore(losses(0.2, 0.17), { margin: 0, full: 0.15 }).score).toBe(1);
    expect(gauntletScore(losses(0.001, 0), { minImprovement: 0.01 }).score).toBe(0);
    expect(() => gauntletScore(losses(0.2, 0.1), { margin: 0.3, full: 0.2 })).toThrow(/margin/);
  });

  it('converts scores to integer millionths', () => {
    expect(scoreToPpm(1)).toBe(1_000_000);
    expect(scoreToPpm(0.5)).toBe(500_000);
    expect(scoreToPpm(1 / 3)).toBe(333_333);
    expect(scoreToPpm(0)).toBe(0);
    expect(scoreToPpm(Number.NaN)).toBe(0);
    expect(scoreToPpm(2)).toBe(1_000_000);
  });
});

describe('random batch seed', () => {
  const hashes = ['a', 'b', 'c', 'd'].map((x) => createHash('sha256').update(`header ${x}`).digest());

  it('depends on the set of committed headers, not on the order they arrived in', () => {
    const seed = randomBatchSeed('ns/run', 5n, hashes);
    expect(typeof seed).toBe('bigint');
    expect(seed >= 0n && seed < 1n << 64n).toBe(true);
    expect(randomBatchSeed('ns/run', 5n, [...hashes].reverse())).toBe(seed);
    expect(randomBatchSeed('ns/run', 5n, [hashes[2]!, hashes[0]!, hashes[3]!, hashes[1]!, hashes[0]!])).toBe(seed);
  });

  it('changes with any header, the run, the round or a salt', () => {
    const seed = randomBatchSeed('ns/run', 5n, hashes);
    const others = [
      randomBatchSeed('ns/run', 5n, hashes.slice(0, 3)),
      randomBatchSeed('ns/run', 5n, [...hashes.slice(0, 3), createHash('sha256').update('header e').digest()]),
      randomBatchSeed('ns/run2', 5n, hashes),
      randomBatchSeed('ns/run', 6n, hashes),
      randomBatchSeed('ns/run', 5n, hashes, Buffer.from('validator secret')),
      randomBatchSeed('ns/run', 5n, []),
    ];
    expect(new Set([seed, ...others]).size).toBe(others.length + 1);
  });

  it('is a valid seed for the random validation batches', () => {
    const seed = randomBatchSeed('ns/run', 5n, hashes);
    const a = randomBatches(seed, { batchSize: 4, seqLen: 16, tokens: 100_000, batches: 2 });
    expect(randomBatches(seed, { batchSize: 4, seqLen: 16, tokens: 100_000, batches: 2 })).toEqual(a);
    expect(randomBatches(randomBatchSeed('ns/run', 6n, hashes), { batchSize: 4, seqLen: 16, tokens: 100_000, batches: 2 })).not.toEqual(a);
  });

  it('refuses hashes of the wrong length and rounds outside uint64', () => {
    expect(() => randomBatchSeed('ns/run', 5n, [Buffer.alloc(31)])).toThrow(/32 bytes/);
    expect(() => randomBatchSeed('ns/run', -1n, hashes)).toThrow(/uint64/);
  });
});

describe('scaling a score to the round', () => {
  const scored = (own: number, random: number) => gauntletScore({ ownLossBefore: 5, ownLossAfter: 5 - own, randomLossBefore: 5, randomLossAfter: 5 - random });
  it('rejects an update that barely moves its own data against the round, however specific', () => {
    // Noise of an honest update's norm: own 1e-3, random ≈ 0, so specificity ≈ 1 and score 1 alone.
    const noise = scored(0.001, 0.00001);
    expect(noise.score).toBe(1);
    const scaled = scaleToRound(noise, 0.03);
    expect(scaled.score).toBe(0);
    expect(scaled.reason).toBe('NoImprovement');
    expect(scaled.detail).toMatch(/under 0.25 of the round's median 0.0300/);
  });

  it('scales by the share of the median up to 1, and leaves rejections and empty rounds alone', () => {
    expect(scaleToRound(scored(0.03, 0.02), 0.03).score).toBeCloseTo(scored(0.03, 0.02).score, 12);
    expect(scaleToRound(scored(0.06, 0.04), 0.03).score).toBeCloseTo(scored(0.06, 0.04).score, 12);
    expect(scaleToRound(scored(0.015, 0.01), 0.03).score).toBeCloseTo(0.5 * scored(0.015, 0.01).score, 12);
    const rejected = scored(0.03, 0.04);
    expect(scaleToRound(rejected, 0.03)).toEqual(rejected);
    expect(scaleToRound(scored(0.001, 0), 0)).toEqual(scored(0.001, 0));
  });
});
