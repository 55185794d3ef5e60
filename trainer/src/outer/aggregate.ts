import type { SparseUpdate } from '../codec/index.js';
import { boundedWeights, type WeightBounds } from './weights.js';

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
 *   4. weights tokens × score, normalised by their sum (in canonical order), with the claims
 *      bounded as `bounds` says (weights.ts: token caps, a largest share per contribution);
 *   5. Σ weight · clip · update accumulated into one float32 buffer in canonical order: each
 *      addition is computed in double and rounded to float32 when stored.
 * JavaScript arithmetic is IEEE-754 double without fused operations, and the rounding on store
 * is IEEE too, so the same inputs give the same bits everywhere. A float32 accumulator (rather
 * than float64) keeps the apply step at one model-sized buffer; the sum has at most a few
 * hundred terms per coordinate, so its rounding error stays far below the 2-bit codec's.
 */
export function aggregate(contributions: readonly Contribution[], length: number, bounds: WeightBounds = {}): Aggregate {
  const ordered = canonical(contributions, length);
  for (const c of ordered) {
    if (c.update.length !== length) throw new Error(`contribution of ${c.peerId} has ${c.update.length} values, the model ${length}`);
  }
  const plan = planOf(ordered, ordered.map((c) => l2(c.update.values)), bounds);
  const sum = new Float32Array(length);
  ordered.forEach((c, i) => accumulate(sum, c.update, plan.factors[i]!));
  return { delta: sum, peers: plan.peers, medianNorm: plan.medianNorm };
}

/** An agreed contribution whose update is decoded on demand (from its payload). */
export interface ContributionSource {
  peerId: string;
  tokens: number;
  score: number;
  /** Decodes the update; called twice (norm pass, sum pass), never with another update held. */
  load: () => Promise<SparseUpdate> | SparseUpdate;
}

/**
 * The same aggregate, bit for bit, holding one decoded update at a time: a first pass computes
 * the norms, a second accumulates. Memory: the float32 sum plus one update, whatever the number
 * of contributions (the coordinator's apply step; its peak RSS is a benchmark goal). `into`, if
 * given, is that sum (overwritten): a buffer reused round after round.
 */
export async function aggregateStreaming(sources: readonly ContributionSource[], length: number, into?: Float32Array, bounds: WeightBounds = {}): Promise<Aggregate> {
  if (into !== undefined && into.length !== length) throw new Error(`the aggregate buffer holds ${into.length} values, the model ${length}`);
  const ordered = canonical(sources, length);
  const load = async (source: ContributionSource) => {
    const update = await source.load();
    if (update.length !== length) throw new Error(`contribution of ${source.peerId} has ${update.length} values, the model ${length}`);
    return update;
  };
  const norms: number[] = [];
  for (const source of ordered) norms.push(l2((await load(source)).values));
  const plan = planOf(ordered, norms, bounds);
  const sum = into?.fill(0) ?? new Float32Array(length);
  for (const [i, source] of ordered.entries()) {
    if (plan.factors[i] !== 0) accumulate(sum, await load(source), plan.factors[i]!);
  }
  return { delta: sum, peers: plan.peers, medianNorm: plan.medianNorm };
}

type Weighed = Pick<Contribution, 'peerId' | 'tokens' | 'score'>;

/** Sorted by peer id, each peer once, tokens and score in range. */
function canonical<T extends Weighed>(contributions: readonly T[], length: number): T[] {
  if (!Number.isSafeInteger(length) || length < 0) throw new Error(`model length must be a non-negative integer, got ${length}`);
  const ordered = [...contributions].sort((a, b) => (a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0));
  for (let i = 1; i < ordered.length; i++) {
    if (ordered[i]!.peerId === ordered[i - 1]!.peerId) throw new Error(`peer ${ordered[i]!.peerId} contributes twice`);
  }
  for (const c of ordered) {
    if (!(Number.isFinite(c.tokens) && c.tokens >= 0)) throw new Error(`contribution of ${c.peerId} has bad tokens ${c.tokens}`);
    if (!(c.score >= 0 && c.score <= 1)) throw new Error(`contribution of ${c.peerId} has a score outside [0, 1]: ${c.score}`);
  }
  return ordered;
}

/** Steps 3 and 4: clip factors to the median norm and normalised tokens × score weights. */
function planOf(ordered: readonly Weighed[], norms: readonly number[], bounds: WeightBounds): { factors: number[]; peers: Aggregate['peers']; medianNorm: number } {
  const medianNorm = median(norms);
  const clips = norms.map((norm) => (norm > medianNorm ? medianNorm / norm : 1));
  const weights = boundedWeights(ordered, bounds).shares;
  return {
    factors: weights.map((w, i) => w * clips[i]!),
    peers: ordered.map((c, i) => ({ peerId: c.peerId, norm: norms[i]!, clip: clips[i]!, weight: weights[i]! })),
    medianNorm,
  };
}

/** Step 5 for one update. */
function accumulate(sum: Float32Array, update: SparseUpdate, factor: number): void {
  if (factor === 0) return;
  const { indices, values } = update;
  for (let j = 0; j < indices.length; j++) sum[indices[j]!]! += factor * values[j]!;
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
