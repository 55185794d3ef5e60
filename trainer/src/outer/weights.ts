// The weight each agreed contribution gets in a round's update, with every claim bounded.
//
// A contribution's tokens are its author's claim: nobody can check how many tokens a peer really
// trained on. So a claim counts only up to
//   - `maxTokens`, what the run's spec allows in one window (when the spec bounds it), and
//   - `relativeTokenCap` × the round's lower median claim (the lower of the two middle claims for
//     an even count): with fewer than half of the round's contributions dishonest, the lower
//     median is at most the largest honest claim, so no inflated claim can raise it;
// and then no single contribution gets more than `maxShare` of the update: shares above it are
// cut to it and the rest is shared out among the others in proportion (water-filling). When
// there are too few contributions to place all of the update under the cap (one contribution
// and maxShare 0.5), the update is smaller instead: the shares sum to less than 1.
//
// Pure and deterministic: float64 arithmetic in the caller's (canonical) order, so every honest
// coordinator computes the same bits.

export interface WeightBounds {
  /** The most tokens one contribution may claim in a round; absent: no absolute cap. */
  maxTokens?: number;
  /** Claims count up to this multiple of the round's lower median claim; absent: no relative cap. */
  relativeTokenCap?: number;
  /** The largest share of the update one contribution may have, (0, 1]; absent: 1. */
  maxShare?: number;
}

/** The defaults a coordinator uses (docs/rounds.md, "Claims and shares"). */
export const DEFAULT_WEIGHT_BOUNDS = { relativeTokenCap: 2, maxShare: 0.5 } as const satisfies WeightBounds;

export interface Claim {
  tokens: number;
  /** Agreed score in [0, 1]. */
  score: number;
}

export interface Weighting {
  /** Per claim, in the order given: its share of the update, in [0, maxShare]; the sum is at most 1. */
  shares: number[];
  /** Per claim: the tokens that counted after the caps. */
  countedTokens: number[];
  /** The cap the claims met (Infinity: none). */
  tokenCap: number;
}

export function boundedWeights(claims: readonly Claim[], bounds: WeightBounds = {}): Weighting {
  const maxShare = bounds.maxShare ?? 1;
  if (!(maxShare > 0 && maxShare <= 1)) throw new Error(`maxShare must be in (0, 1], got ${maxShare}`);
  if (bounds.maxTokens !== undefined && !(bounds.maxTokens >= 0)) throw new Error(`maxTokens must be ≥ 0, got ${bounds.maxTokens}`);
  if (bounds.relativeTokenCap !== undefined && !(bounds.relativeTokenCap >= 1)) throw new Error(`relativeTokenCap must be ≥ 1, got ${bounds.relativeTokenCap}`);
  const relative = bounds.relativeTokenCap === undefined || claims.length === 0 ? Infinity : bounds.relativeTokenCap * lowerMedian(claims.map((c) => c.tokens));
  const tokenCap = Math.min(bounds.maxTokens ?? Infinity, relative);
  const countedTokens = claims.map((c) => Math.min(c.tokens, tokenCap));
  const raw = claims.map((c, i) => countedTokens[i]! * c.score);
  return { shares: capShares(raw, maxShare), countedTokens, tokenCap };
}

/**
 * Normalised weights with no share above `maxShare`: each pass fixes the shares that exceed the
 * cap at the cap and divides what is left among the others in proportion to their raw weights.
 * At most n passes (each fixes at least one more).
 */
export function capShares(raw: readonly number[], maxShare: number): number[] {
  const shares = raw.map(() => 0);
  const capped = raw.map(() => false);
  let budget = 1;
  for (;;) {
    let free = 0;
    raw.forEach((w, i) => { if (!capped[i]) free += w; });
    if (!(free > 0) || budget <= 0) break;
    let changed = false;
    raw.forEach((w, i) => {
      if (capped[i]) return;
      const share = (budget * w) / free;
      if (share > maxShare) {
        capped[i] = true;
        shares[i] = maxShare;
        changed = true;
      }
    });
    if (!changed) {
      raw.forEach((w, i) => { if (!capped[i]) shares[i] = (budget * w) / free; });
      break;
    }
    budget = 1;
    shares.forEach((s, i) => { if (capped[i]) budget -= s; });
  }
  return shares;
}

/** The lower of the two middle values for an even count, the middle one for an odd count. */
export function lowerMedian(values: readonly number[]): number {
  if (values.length === 0) throw new Error('median of no values');
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[(sorted.length - 1) >> 1]!;
}
