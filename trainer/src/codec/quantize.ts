/**
 * The value quantiser shared by encoder and decoder: a kept value is a sign and one of
 * L = 2^(bits−1) magnitude levels spread evenly over [lo, hi], the range of kept magnitudes in its
 * chunk. Both sides compute levels with the same float64 operations and round to float32, so a
 * decoded value is bitwise the same on every machine.
 */

/** lo as the decoder rebuilds it from hi and the 8-bit ratio. */
export function lowFromRatio(hi: number, ratio: number): number {
  return Math.fround((hi * ratio) / 255);
}

/** The largest 8-bit ratio whose rebuilt lo does not exceed the true smallest magnitude. */
export function ratioFor(hi: number, lo: number): number {
  if (hi === 0) return 0;
  let ratio = Math.min(255, Math.floor((255 * lo) / hi));
  while (ratio > 0 && lowFromRatio(hi, ratio) > lo) ratio--;
  return ratio;
}

/** Fills `levels` (length ≥ L) with the L magnitude levels of a chunk. */
export function fillLevels(levels: Float64Array, hi: number, lo: number, levelCount: number): void {
  const width = (hi - lo) / levelCount;
  for (let t = 0; t < levelCount; t++) levels[t] = Math.fround(lo + (t + 0.5) * width);
}

/** The level index of magnitude m in [lo, hi]. */
export function levelOf(m: number, hi: number, lo: number, levelCount: number): number {
  if (hi <= lo) return 0;
  const t = Math.floor(((m - lo) / (hi - lo)) * levelCount);
  return t < 0 ? 0 : t >= levelCount ? levelCount - 1 : t;
}
