import { describe, expect, it } from '@jest/globals';
import { boundedWeights, capShares, lowerMedian } from '../../trainer/src/outer/weights.js';

const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);

describe('bounded weights of a round\'s contributions', () => {
  it('without bounds, shares are tokens × score normalised', () => {
    const { shares } = boundedWeights([{ tokens: 100, score: 1 }, { tokens: 300, score: 1 }, { tokens: 100, score: 0.5 }]);
    expect(shares).toEqual([100 / 450, 300 / 450, 50 / 450]);
  });

  it('an inflated token claim counts only up to the relative cap over the lower median', () => {
    const honest = [{ tokens: 1000, score: 0.3 }, { tokens: 1200, score: 0.3 }, { tokens: 900, score: 0.3 }];
    const inflated = { tokens: 1_000_000, score: 0.3 };
    const { shares, countedTokens, tokenCap } = boundedWeights([...honest, inflated], { relativeTokenCap: 2 });
    // Claims sorted: 900, 1000, 1200, 1e6: the lower median is 1000.
    expect(tokenCap).toBe(2000);
    expect(countedTokens).toEqual([1000, 1200, 900, 2000]);
    expect(shares[3]).toBeCloseTo(2000 / 5100, 12);
  });

  it('two inflated claims of five cannot move the lower median past an honest claim', () => {
    const claims = [{ tokens: 1e9, score: 1 }, { tokens: 1e9, score: 1 }, { tokens: 500, score: 1 }, { tokens: 700, score: 1 }, { tokens: 600, score: 1 }];
    expect(boundedWeights(claims, { relativeTokenCap: 2 }).tokenCap).toBe(1400);
  });

  it('the absolute cap applies before the relative one can', () => {
    const { countedTokens } = boundedWeights([{ tokens: 50, score: 1 }, { tokens: 5000, score: 1 }], { maxTokens: 100, relativeTokenCap: 1000 });
    expect(countedTokens).toEqual([50, 100]);
  });

  it('no share exceeds maxShare; what is cut goes to the others in proportion', () => {
    const shares = capShares([8, 1, 1], 0.5);
    expect(shares).toEqual([0.5, 0.25, 0.25]);
    // A second pass: capping the first pushes the second over the cap too.
    const second = capShares([10, 6, 1, 1], 0.4);
    expect(second[0]).toBe(0.4);
    expect(second[1]).toBe(0.4);
    expect(second[2]).toBeCloseTo(0.1, 12);
    expect(second[3]).toBeCloseTo(0.1, 12);
    expect(sum(second)).toBeCloseTo(1, 12);
  });

  it('with too few contributions to place the whole update under the cap, the update is smaller', () => {
    expect(capShares([3], 0.5)).toEqual([0.5]);
    expect(capShares([3, 1], 0.3)).toEqual([0.3, 0.3]);
  });

  it('zero weights stay zero and the shares never sum past 1', () => {
    expect(capShares([0, 0], 0.5)).toEqual([0, 0]);
    for (let seed = 1; seed <= 200; seed++) {
      let x = seed;
      const next = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
      const raw = Array.from({ length: 1 + (seed % 9) }, () => next() * (next() < 0.2 ? 1000 : 1));
      const cap = 0.1 + 0.9 * next();
      const shares = capShares(raw, cap);
      expect(Math.max(...shares)).toBeLessThanOrEqual(cap + 1e-12);
      expect(sum(shares)).toBeLessThanOrEqual(1 + 1e-12);
      // Uncapped shares keep their proportions.
      const free = shares.map((s, i) => [s, raw[i]!] as const).filter(([s]) => s < cap - 1e-12 && s > 0);
      for (const [s, w] of free) expect(s / w).toBeCloseTo(free[0]![0] / free[0]![1], 9);
    }
  });

  it('the lower median takes the lower middle of an even count', () => {
    expect(lowerMedian([4, 1, 3, 2])).toBe(2);
    expect(lowerMedian([5, 1, 3])).toBe(3);
    expect(() => lowerMedian([])).toThrow(/median of no values/);
  });

  it('refuses bounds outside their range, naming them', () => {
    expect(() => boundedWeights([], { maxShare: 0 })).toThrow(/maxShare/);
    expect(() => boundedWeights([], { relativeTokenCap: 0.5 })).toThrow(/relativeTokenCap/);
    expect(() => boundedWeights([], { maxTokens: -1 })).toThrow(/maxTokens/);
  });
});
