/**
 * Top-k by magnitude in one chunk, deterministic: larger magnitude first, ties to the lower index.
 * A radix select on float32 bit patterns (for |x| they order like the values):
 *   1. one pass builds a histogram of the top 11 magnitude bits (four interleaved tables, so
 *      runs of equal buckets do not serialise on one counter) and finds the largest magnitude;
 *   2. a scan down from the largest bucket finds the bucket that holds the k-th largest;
 *   3. one pass collects, in index order, every position at or above that bucket;
 *   4. of those, the ones in the boundary bucket are ranked (few), the rest are kept.
 * No allocation per call; the chunk is read twice while it sits in L1 cache.
 *
 * Fast path, tried first when k is a small part of the chunk: a threshold guessed from a sample of
 * 128 values keeps about 3.5·k candidates in one pass that also adds the delta into the error
 * buffer (the chunk is read from memory once), and only those candidates are ranked. If
 * the guess keeps fewer than k or more than 8·k (ties, odd distributions), the exact histogram
 * path above runs instead. Both paths return the same positions: the top-k is defined exactly.
 */
const BUCKET_SHIFT = 20; // 31 magnitude bits → 11-bit buckets
const BUCKETS = 1 << 11;
const SAMPLE = 128;
/** accumulateAndSelectBySample's answer when its guess did not work out. */
const FALLBACK = -2;
/** Positions in a chunk are below 2^24 (the largest chunk). */
const POSITION_SPAN = 2 ** 24;

export class TopKSelector {
  private readonly histograms = new Uint32Array(4 * BUCKETS);
  private readonly collected: Uint32Array;
  private readonly ranked: Uint32Array;
  private readonly sampleTop = new Float64Array(SAMPLE);
  private readonly keys: Float64Array;
  private readonly f32 = new Float32Array(1);
  private readonly u32 = new Uint32Array(this.f32.buffer);

  constructor(maxChunk: number) {
    this.collected = new Uint32Array(maxChunk);
    this.ranked = new Uint32Array(maxChunk);
    this.keys = new Float64Array(maxChunk);
  }

  /**
   * Adds the delta into the error buffer over [start, end), e ← decay·e + Δ, and writes the
   * positions (relative to `start`, ascending) of the k largest |e| there into `out`. `errorBits`
   * is a Uint32Array over the error buffer's memory. Returns the relative position of the first
   * non-finite value, or −1.
   */
  accumulateAndSelect(error: Float32Array, errorBits: Uint32Array, delta: Float32Array, decay: number, start: number, end: number, k: number, out: Uint32Array): number {
    const n = end - start;
    if (k * 8 <= n && n >= SAMPLE * 4) {
      const result = this.accumulateAndSelectBySample(error, errorBits, delta, decay, start, end, k, out);
      if (result !== FALLBACK) return result;
    } else {
      for (let i = start; i < end; i++) error[i] = decay * error[i]! + delta[i]!;
    }
    return this.selectByHistogram(errorBits, start, end, k, out);
  }

  /** The fast path; always finishes the accumulation, returns FALLBACK if its guess failed. */
  private accumulateAndSelectBySample(error: Float32Array, errorBits: Uint32Array, delta: Float32Array, decay: number, start: number, end: number, k: number, out: Uint32Array): number {
    const n = end - start;
    const stride = Math.floor(n / SAMPLE);
    // The j-th largest of the sample: about j·stride values of the chunk lie above it.
    const j = Math.min(SAMPLE, Math.ceil((3.5 * k) / stride));
    const top = this.sampleTop;
    let held = 0;
    for (let s = 0; s < SAMPLE; s++) {
      const at = start + s * stride;
      const m = Math.abs(Math.fround(decay * error[at]! + delta[at]!));
      if (held === j && !(m > top[j - 1]!)) continue;
      let p = held < j ? held++ : j - 1;
      while (p > 0 && top[p - 1]! < m) {
        top[p] = top[p - 1]!;
        p--;
      }
      top[p] = m;
    }
    // The filter below compares the unrounded sum (rounding it to float32 first makes this loop
    // 5× slower in V8). Rounding is monotonic, so comparing against the float32 just below the
    // threshold still collects every value whose stored float32 magnitude reaches the threshold.
    const threshold = top[j - 1]!;
    this.f32[0] = threshold;
    if (this.u32[0]! > 0) this.u32[0]!--;
    const below = this.f32[0]!;

    // One pass: accumulate, and collect every position at or above the threshold. `poison`
    // stays 0 unless a value is NaN or ±Inf (x·0 is NaN for those), without a branch per value.
    const collected = this.collected;
    const limit = 8 * k;
    let count = 0;
    let overflow = false;
    let poison = 0;
    for (let i = start; i < end; i++) {
      const v = decay * error[i]! + delta[i]!;
      error[i] = v;
      poison += v * 0;
      if (Math.abs(v) >= below) {
        if (count < limit) collected[count++] = i - start;
        else overflow = true;
      }
    }
    if (poison !== 0) {
      for (let i = start; i < end; i++) if (!Number.isFinite(error[i]!)) return i - start;
    }
    if (overflow || count < k) return FALLBACK;

    // Rank by one number per candidate, magnitude bits·2^24 + (2^24 − 1 − position) (exact in a
    // double: < 2^55, and distinct), so the order is by magnitude, then by lower position.
    const keys = this.keys;
    for (let c = 0; c < count; c++) {
      const position = collected[c]!;
      keys[c] = (errorBits[start + position]! & 0x7fffffff) * POSITION_SPAN + (POSITION_SPAN - 1 - position);
    }
    const cutoff = kthLargest(keys, count, k);
    let o = 0;
    for (let c = 0; c < count; c++) {
      const position = collected[c]!;
      if ((errorBits[start + position]! & 0x7fffffff) * POSITION_SPAN + (POSITION_SPAN - 1 - position) >= cutoff) out[o++] = position;
    }
    return -1;
  }

  private selectByHistogram(bits: Uint32Array, start: number, end: number, k: number, out: Uint32Array): number {
    const h = this.histograms;
    h.fill(0);
    let largest = 0;
    let i = start;
    for (; i + 3 < end; i += 4) {
      const m0 = bits[i]! & 0x7fffffff;
      const m1 = bits[i + 1]! & 0x7fffffff;
      const m2 = bits[i + 2]! & 0x7fffffff;
      const m3 = bits[i + 3]! & 0x7fffffff;
      h[m0 >>> BUCKET_SHIFT]!++;
      h[BUCKETS + (m1 >>> BUCKET_SHIFT)]!++;
      h[2 * BUCKETS + (m2 >>> BUCKET_SHIFT)]!++;
      h[3 * BUCKETS + (m3 >>> BUCKET_SHIFT)]!++;
      const m01 = m0 > m1 ? m0 : m1;
      const m23 = m2 > m3 ? m2 : m3;
      const m = m01 > m23 ? m01 : m23;
      if (m > largest) largest = m;
    }
    for (; i < end; i++) {
      const m = bits[i]! & 0x7fffffff;
      h[m >>> BUCKET_SHIFT]!++;
      if (m > largest) largest = m;
    }
    if (largest >= 0x7f800000) {
      for (let j = start; j < end; j++) if ((bits[j]! & 0x7fffffff) >= 0x7f800000) return j - start;
    }

    let above = 0;
    let bucket = largest >>> BUCKET_SHIFT;
    for (; bucket > 0; bucket--) {
      const count = h[bucket]! + h[BUCKETS + bucket]! + h[2 * BUCKETS + bucket]! + h[3 * BUCKETS + bucket]!;
      if (above + count >= k) break;
      above += count;
    }
    const need = k - above;
    const floor = bucket << BUCKET_SHIFT;

    // Every position at or above the boundary bucket, in index order.
    const collected = this.collected;
    let count = 0;
    for (let j = start; j < end; j++) if ((bits[j]! & 0x7fffffff) >= floor) collected[count++] = j - start;
    if (count === k) {
      for (let c = 0; c < k; c++) out[c] = collected[c]!;
      return -1;
    }
    // Rank the boundary bucket's positions; keep the best `need` of them.
    const ranked = this.ranked;
    let rankedCount = 0;
    for (let c = 0; c < count; c++) {
      const position = collected[c]!;
      if ((bits[start + position]! & 0x7fffffff) >>> BUCKET_SHIFT === bucket) ranked[rankedCount++] = position;
    }
    sortByMagnitude(ranked, rankedCount, bits, start);
    const cutoff = ranked[need - 1]!;
    const cutoffMagnitude = bits[start + cutoff]! & 0x7fffffff;
    let o = 0;
    for (let c = 0; c < count; c++) {
      const position = collected[c]!;
      const m = bits[start + position]! & 0x7fffffff;
      if (m >>> BUCKET_SHIFT !== bucket || m > cutoffMagnitude || (m === cutoffMagnitude && position <= cutoff)) out[o++] = position;
    }
    return -1;
  }
}

/** Insertion sort of positions by magnitude descending, position ascending (a bucket is small). */
function sortByMagnitude(positions: Uint32Array, count: number, bits: Uint32Array, start: number): void {
  for (let i = 1; i < count; i++) {
    const position = positions[i]!;
    const m = bits[start + position]! & 0x7fffffff;
    let j = i - 1;
    while (j >= 0) {
      const other = positions[j]!;
      const om = bits[start + other]! & 0x7fffffff;
      if (om > m || (om === m && other < position)) break;
      positions[j + 1] = other;
      j--;
    }
    positions[j + 1] = position;
  }
}

/**
 * The k-th largest of keys[0..count), which must be distinct: quickselect in place (Hoare
 * partition, median-of-three pivot), no allocation. Reorders keys.
 */
function kthLargest(keys: Float64Array, count: number, k: number): number {
  let lo = 0;
  let hi = count - 1;
  const target = count - k; // its index in ascending order
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const a = keys[lo]!;
    const b = keys[mid]!;
    const c = keys[hi]!;
    const pivot = a < b ? (b < c ? b : a < c ? c : a) : a < c ? a : b < c ? c : b;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (keys[i]! < pivot) i++;
      while (keys[j]! > pivot) j--;
      if (i <= j) {
        const t = keys[i]!;
        keys[i] = keys[j]!;
        keys[j] = t;
        i++;
        j--;
      }
    }
    if (target <= j) hi = j;
    else if (target >= i) lo = i;
    else break;
  }
  return keys[target]!;
}
