import { describe, expect, it } from '@jest/globals';
import { generateIdentity } from '../../operator/src/federation/identity.js';
import { judge, pairedImprovement, sampleSeed, scoreToPpm, specificity, type EvaluationLosses } from '../../operator/src/rounds/score.js';

/** Losses before 5 and after 5 − improvement, per sequence. */
const paired = (improvements: readonly number[]) => ({ before: improvements.map(() => 5), after: improvements.map((d) => 5 - d) });
const losses = (own: readonly number[], control: readonly number[]): EvaluationLosses => ({ own: paired(own), control: paired(control) });

describe('paired statistics', () => {
  it('measure the mean improvement, its spread and its t statistic pair by pair', () => {
    const stats = pairedImprovement({ before: [5, 6, 7, 8], after: [4.9, 5.8, 6.9, 7.8] });
    expect(stats.n).toBe(4);
    expect(stats.mean).toBeCloseTo(0.15, 12);
    expect(stats.sd).toBeCloseTo(Math.sqrt(((0.05 ** 2) * 4) / 3), 12);
    expect(stats.t).toBeCloseTo(0.15 / (stats.sd / 2), 9);
    // The level of each sequence's loss does not matter, only its change: that is the point of pairing.
    expect(pairedImprovement({ before: [1, 9], after: [0.5, 8.5] }).t).toBe(Infinity);
    expect(() => pairedImprovement({ before: [1, 2], after: [1] })).toThrow(/equal lengths/);
  });

  it('measure specificity as own minus control improvement in standard errors', () => {
    const own = pairedImprovement(paired([0.3, 0.1, 0.3, 0.1]));
    const control = pairedImprovement(paired([0.2, 0, 0.2, 0]));
    expect(specificity(own, control)).toBeCloseTo(0.1 / Math.sqrt((own.sd ** 2) / 4 + (control.sd ** 2) / 4), 9);
    expect(specificity(control, own)).toBeLessThan(0);
  });
});

describe('the per-round gate', () => {
  it('passes a step that helps own and control data, with score 1 whatever its specificity', () => {
    const verdict = judge(losses([0.03, 0.02, 0.04, 0.03, 0.02, 0.05], [0.01, 0.02, 0.015, 0.01, 0.02, 0.01]));
    expect(verdict).toMatchObject({ score: 1 });
    expect(verdict.specificity).toBeGreaterThan(0);
    expect(judge(losses([0.01, 0.02, 0.015, 0.01, 0.02, 0.01], [0.03, 0.02, 0.04, 0.03, 0.02, 0.05])).score).toBe(1);
  });

  it('rejects an empty step, a non-finite loss and what it cannot evaluate, naming why', () => {
    expect(judge(losses([0, 0, 0], [0, 0, 0]))).toMatchObject({ score: 0, reason: 'NoImprovement', detail: expect.stringMatching(/changes no loss/) });
    expect(judge({ own: { before: [5, Number.NaN], after: [4, 4] }, control: paired([0.1, 0.1]) })).toMatchObject({ score: 0, detail: 'a loss is not finite' });
    expect(judge(losses([], []))).toMatchObject({ score: 0, detail: expect.stringMatching(/no sequences/) });
  });

  it('rejects a step that makes control data or its own data confidently worse', () => {
    expect(judge(losses([0.2, 0.3, 0.25, 0.2], [-0.05, -0.04, -0.06, -0.05]))).toMatchObject({ score: 0, detail: expect.stringMatching(/control data worse/) });
    expect(judge(losses([-0.05, -0.04, -0.06, -0.05], [0.2, 0.3, 0.25, 0.2]))).toMatchObject({ score: 0, detail: expect.stringMatching(/its own data worse/) });
  });

  it('rejects a step whose improvement cannot be told from none', () => {
    expect(judge(losses([0.01, -0.012, 0.008, -0.01], [0.005, -0.006, 0.004, -0.003]))).toMatchObject({ score: 0, detail: expect.stringMatching(/t = .* \(needs more than 2\)/) });
  });
});

describe('the sample seed', () => {
  it('is fixed by the evaluator and the header, and differs between evaluators and headers', () => {
    const [a, b] = [generateIdentity(), generateIdentity()];
    const header = Buffer.alloc(32, 1);
    expect(sampleSeed(a, header)).toEqual(sampleSeed(a, header));
    expect(sampleSeed(a, header)).toHaveLength(32);
    expect(sampleSeed(b, header)).not.toEqual(sampleSeed(a, header));
    expect(sampleSeed(a, Buffer.alloc(32, 2))).not.toEqual(sampleSeed(a, header));
  });
});

describe('scoreToPpm', () => {
  it('turns a score into integer millionths, 0 for anything not above 0', () => {
    expect([1, 0.5, 0.1234567, 0, -1, Number.NaN, 2].map(scoreToPpm)).toEqual([1_000_000, 500_000, 123_457, 0, 0, 0, 1_000_000]);
  });
});
