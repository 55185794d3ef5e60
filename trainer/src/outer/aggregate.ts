import type { SparseUpdate } from '../codec/index.js';

/** One agreed contribution of a round, decoded. */
export interface Contribution {
  peerId: string;
  /** Tokens the contributor trained on in the round. */
  tokens: number;
  /** Agreed score in [0, 1]. */
  score: number;
  update: SparseUpdate;
}

export interface Aggregate {
  /** The combined pseudo-gradient, float32. */
  delta: Float32Array;
  /** Per contribution, in canonical order (by peer id). */
  peers: Array<{ peerId: string; norm: number; clip: number; weight: number }>;
  medianNorm: number;
}

/**
 * Combines the agreed contributions of a round into one pseudo-gradient, the same bits on every
 * machine:
 *   1. canonical order: sorted by peer id (code-unit order), whatever order they arrived in;
 *   2. each update's L2 norm, summed in index order in float64;
 *   3. each update scaled down to the median norm (mean of the two middle norms for an even count),
 *      so one huge update cannot dominate: clip = min(1, median / norm);
 *   4. weights tokens × score, normalised by their sum (in canonical order);
 *   5. Σ weight · clip · update accumulated in float64 in canonical order, rounded to float32 once.
 * JavaScript arithmetic is IEEE-754 double without fused operations, so the same inputs give the
 * same bits everywhere.
 */
export function aggregate(contributions: readonly Contribution[], length: number): Aggregate {
  const ordered = [...contributions].sort((a, b) => (a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0));
  for (let i = 1; i < ordered.length; i++) {
    if (ordered[i]!.peerId === ordered[i - 1]!.peerId) throw new Error(`peer ${ordered[i]!.peerId} contributes twice`);
  }
  for (const c of ordered) {
    if (c.update.length !== length) throw new Error(`contribution of ${c.peerId} has ${c.update.length} values, the model ${length}`);
    if (!(Number.isFinite(c.tokens) && c.tokens >= 0)) throw new Error(`contribution of ${c.peerId} has bad tokens ${c.tokens}`);
    if (!(c.score >= 0 && c.score <= 1)) throw new Error(`contribution of ${c.peerId} has a score outside [0, 1]: ${c.score}`);
  }
  const norms = ordered.map((c) => l2(c.update.values));
  const medianNorm = median(norms);
  const clips = norms.map((norm) => (norm > medianNorm ? medianNorm / norm : 1));
  const raw = ordered.map((c) => c.tokens * c.score);
  let total = 0;
  for (const w of raw) total += w;
  const weights = raw.map((w) => (total > 0 ? w / total : 0));

  const sum = new Float64Array(length);
  ordered.forEach((c, i) => {
    const factor = weights[i]! * clips[i]!;
    if (factor === 0) return;
    const { indices, values } = c.update;
    for (let j = 0; j < indices.length; j++) sum[indices[j]!]! += factor * values[j]!;
  });
  return {
    delta: Float32Array.from(sum),
    peers: ordered.map((c, i) => ({ peerId: c.peerId, norm: norms[i]!, clip: clips[i]!, weight: weights[i]! })),
    medianNorm,
  };
}

function l2(values: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i]! * values[i]!;
  return Math.sqrt(sum);
}

function median(values: readonly number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}
