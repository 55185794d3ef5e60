// A cheap filter on update norms, run before the expensive scoring.

export interface NormOptions {
  /**
   * An update whose norm is more than `multiple` × the round's median norm is an outlier.
   * Default 10: honest norms differ with the inner steps a cluster managed in the window (fast
   * hardware does several times more) and with its error-feedback history, so a tight bound
   * would reject honest fast peers. Anything between 1× and 10× is harmless anyway: the
   * aggregate scales every update down to the median norm (trainer/src/outer/aggregate.ts),
   * and scoring rejects what hurts. This catches the grossly scaled update before it costs an
   * evaluation.
   */
  multiple?: number;
  /**
   * Fewer norms than this: no verdict. With one or two contributions the median is not robust (of
   * two, it is their mean, half of it an attacker's), so clipping and scoring must do.
   * Default 3.
   */
  minCount?: number;
}

export interface NormOutlier {
  peerId: string;
  norm: number;
  median: number;
}

/**
 * The contributions whose norm exceeds `multiple` × the median of all norms of the round
 * (the median as aggregate.ts takes it: the middle value, or the mean of the two middle values).
 * With honest contributions a strict majority, the median lies between two honest norms, so it
 * cannot be pulled up or down by the others. A median of 0 (most updates empty) gives no verdict.
 * Returned sorted by peer id.
 */
export function normOutliers(norms: ReadonlyArray<{ peerId: string; norm: number }>, options: NormOptions = {}): NormOutlier[] {
  const multiple = options.multiple ?? 10;
  const minCount = options.minCount ?? 3;
  if (!(multiple >= 1)) throw new Error(`norm outlier multiple must be at least 1, got ${multiple}`);
  if (norms.length < minCount) return [];
  const median = medianOf(norms.map((n) => n.norm));
  if (!(median > 0)) return [];
  return norms
    .filter((n) => !(n.norm <= multiple * median))
    .map((n) => ({ peerId: n.peerId, norm: n.norm, median }))
    .sort((a, b) => (a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0));
}

/** The median as aggregate.ts takes it: the middle value, or the mean of the two middle values. */
export function medianOf(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}
