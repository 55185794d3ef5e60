/**
 * Top-k by magnitude in one chunk, deterministic: larger magnitude first, ties to the lower index.
 * A radix select on the float32 bit patterns (for |x| the bits order like the values): one
 * histogram pass over the top 11 bits finds the bucket holding the k-th largest, only that
 * bucket's values are sorted, and a last pass collects the indices in ascending order. Three
 * linear passes over a chunk that sits in L1 cache; no allocation.
 */
const BUCKET_SHIFT = 20; // 31 magnitude bits → 11-bit buckets
const BUCKETS = 1 << 11;

export class TopKSelector {
  private readonly magnitudes: Uint32Array;
  private readonly histogram = new Uint32Array(BUCKETS);
  private readonly candidates: Uint32Array;

  constructor(maxChunk: number) {
    this.magnitudes = new Uint32Array(maxChunk);
    this.candidates = new Uint32Array(maxChunk);
  }

  /**
   * Writes the indices (relative to the chunk, ascending) of the k largest |values| into `out`;
   * returns the position of the first non-finite value, or −1 if all are finite.
   */
  select(values: Float32Array, k: number, out: Uint32Array): number {
    const n = values.length;
    const bits = new Uint32Array(values.buffer, values.byteOffset, n);
    const magnitudes = this.magnitudes;
    const histogram = this.histogram;
    histogram.fill(0);
    for (let i = 0; i < n; i++) {
      const m = bits[i]! & 0x7fffffff;
      if (m >= 0x7f800000) return i; // Inf or NaN
      magnitudes[i] = m;
      histogram[m >>> BUCKET_SHIFT]!++;
    }
    // The bucket that holds the k-th largest magnitude, and how many to take from it.
    let above = 0;
    let bucket = BUCKETS - 1;
    for (; bucket > 0; bucket--) {
      const count = histogram[bucket]!;
      if (above + count >= k) break;
      above += count;
    }
    const need = k - above;
    // Sort that bucket's candidates (magnitude descending, index ascending); the need-th one is
    // the threshold.
    let count = 0;
    for (let i = 0; i < n; i++) if (magnitudes[i]! >>> BUCKET_SHIFT === bucket) this.candidates[count++] = i;
    const candidates = this.candidates.subarray(0, count);
    candidates.sort((a, b) => magnitudes[b]! - magnitudes[a]! || a - b);
    const thresholdIndex = candidates[need - 1]!;
    const threshold = magnitudes[thresholdIndex]!;
    let taken = 0;
    for (let i = 0; i < n; i++) {
      const m = magnitudes[i]!;
      if (m > threshold || (m === threshold && i <= thresholdIndex)) out[taken++] = i;
    }
    return -1;
  }
}
