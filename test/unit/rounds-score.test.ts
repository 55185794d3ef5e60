import { describe, expect, it } from '@jest/globals';
import { generateIdentity } from '../../operator/src/federation/identity.js';
import { DEFAULT_GATE, judge, pairedImprovement, relativeWork, sampleSeed, scoreToPpm, specificity, type EvaluationLosses, type RoundEvaluation } from '../../operator/src/rounds/score.js';
import { seededRandom } from '../../trainer/src/random.js';

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

describe('relative work', () => {
  const evaluation = (peerId: string, step: number, mean: number): RoundEvaluation => ({ peerId, step, all: { n: 96, mean, sd: 0.05, t: 10 } });

  it('rejects a contribution that removes under `relative` × the median loss per unit of step, naming both', () => {
    const round = [evaluation('a', 0.25, 0.1), evaluation('b', 0.25, 0.08), evaluation('c', 0.2, 0.07), evaluation('noise', 0.25, 0.006)];
    // Works 0.4, 0.32, 0.35, 0.024: median 0.335, bar 0.1005.
    expect(relativeWork(round, 0.3)).toEqual([{ peerId: 'noise', detail: expect.stringMatching(/removes 0\.0240 nats a sequence per unit of step, under 0\.3 × the round's median 0\.335/) }]);
    expect(relativeWork(round, 0.05)).toEqual([]);
  });

  it('judges per unit of step: a small share that does its share of work passes', () => {
    const round = [evaluation('a', 0.25, 0.1), evaluation('b', 0.25, 0.1), evaluation('small', 0.02, 0.008)];
    expect(relativeWork(round, 0.3)).toEqual([]);
  });

  it('gives no verdict with fewer than three evaluations or a median that is not positive', () => {
    expect(relativeWork([evaluation('a', 0.25, 0.1), evaluation('noise', 0.25, 0.001)], 0.3)).toEqual([]);
    expect(relativeWork([evaluation('a', 0.25, -0.1), evaluation('b', 0.25, -0.05), evaluation('c', 0.25, 0.01)], 0.3)).toEqual([]);
    // A step of 0 (nothing counted) or a loss that is not finite is left out of the median.
    expect(relativeWork([evaluation('a', 0.25, 0.1), evaluation('b', 0, 0.1), evaluation('c', 0.25, Number.NaN), evaluation('d', 0.25, 0.001)], 0.3)).toEqual([]);
  });

  it('a dishonest minority raises the bar at most to the best honest work', () => {
    // Two colluders of five report work far above everyone: the median is the best honest one's.
    const round = [evaluation('h1', 0.25, 0.1), evaluation('h2', 0.25, 0.06), evaluation('h3', 0.25, 0.04), evaluation('x', 0.25, 10), evaluation('y', 0.25, 10)];
    expect(relativeWork(round, 0.3).map((r) => r.peerId)).toEqual([]);
    expect(relativeWork(round, 0.5).map((r) => r.peerId)).toEqual(['h3']);
  });
});

describe('the gate on synthetic rounds (calibrated to docs/rounds.md, "Score")', () => {
  // Per-sequence improvements drawn as measured in `npm start` (4 clusters, 6 batches a side, 48
  // sequences of own and of control data): honest steps remove 0.02–0.2 nats a sequence with a
  // spread of about half that between sequences; within a round their work differs by e^±0.65 at
  // worst (the first round). Noise of an honest norm removed 0.15–0.2× the honest median in the
  // first round and added 0.3–0.8× of it in every later one: modelled as −0.3 ± 0.25 of it.
  const SEQUENCES = 48;
  const normal = (random: () => number) => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  const sequences = (random: () => number, mean: number, sd: number) => Array.from({ length: SEQUENCES }, () => mean + sd * normal(random));
  const evaluate = (random: () => number, mean: number, sd: number) => judge(losses(sequences(random, mean, sd), sequences(random, mean, sd)), DEFAULT_GATE);
  const ROUNDS = 3000;
  const STEP = 0.25;

  /** Fractions of honest and of noise contributions rejected over ROUNDS rounds of 3 honest + 1 noise. */
  const rates = (relative: number) => {
    const random = seededRandom(15);
    let honestRejected = 0;
    let noiseRejected = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const typical = 0.08 * Math.exp(0.5 * normal(random));
      const honest = [0, 1, 2].map(() => typical * Math.exp(0.65 * normal(random)));
      const noise = typical * (-0.3 + 0.25 * normal(random));
      const verdicts = [...honest.map((mean) => evaluate(random, mean, 0.5 * typical)), evaluate(random, noise, 0.25 * typical)];
      const peers = ['h0', 'h1', 'h2', 'noise'];
      const weak = new Set(relativeWork(verdicts.map((v, i) => ({ peerId: peers[i]!, step: STEP, all: v.all })), relative).map((r) => r.peerId));
      const rejected = peers.map((peerId, i) => verdicts[i]!.score === 0 || weak.has(peerId));
      honestRejected += rejected.slice(0, 3).filter(Boolean).length;
      if (rejected[3]) noiseRejected++;
    }
    return { falseRejection: honestRejected / (3 * ROUNDS), detection: noiseRejected / ROUNDS };
  };

  it(`at the shipped thresholds (harm ${DEFAULT_GATE.harm}, help ${DEFAULT_GATE.help}, relative ${DEFAULT_GATE.relative}) rejects ≤ 3% of honest work and ≥ 97% of noise`, () => {
    const shipped = rates(DEFAULT_GATE.relative);
    expect({ falseRejection: shipped.falseRejection <= 0.03, detection: shipped.detection >= 0.97, shipped }).toEqual({ falseRejection: true, detection: true, shipped });
    // Significance alone (no relative bar) lets through the noise that happens to help.
    expect(rates(0).detection).toBeLessThan(0.97);
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
