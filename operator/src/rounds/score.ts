// Gauntlet-style scoring (after Templar's validator): a contribution is worth what it does to the
// loss, measured by a trainer (EvaluateTask → EvaluateResult in proto/concord/v1/trainer.proto)
// on the contributor's assigned batches and on random batches, before and after θ − λ·decode(c).
import { createHash } from 'node:crypto';
import { Limits } from '../federation/limits.js';
import { RejectionReason } from './reasons.js';

/** The four losses of an EvaluateResult. */
export interface LossReport {
  ownLossBefore: number;
  ownLossAfter: number;
  randomLossBefore: number;
  randomLossAfter: number;
}

export interface ScoreOptions {
  /**
   * Specificity at or below which the score is 0. Default 0.05: a contribution that improves
   * its own data hardly more than any data was not trained on its own data.
   */
  margin?: number;
  /** Specificity at and above which the score is 1. Default 0.25. */
  full?: number;
  /**
   * Improvement on its own batches (nats) that counts as an improvement at all; below it the
   * update cannot be told from nothing. Default 1e-4: float32 losses of a few nats carry about
   * 1e-6 of rounding, honest improvements were 0.01–0.35 nats in the measurement below.
   */
  minImprovement?: number;
}

export interface Score {
  /** In [0, 1]; 0 means rejected (NoImprovement). */
  score: number;
  /** ownLossBefore − ownLossAfter. */
  own: number;
  /** randomLossBefore − randomLossAfter. */
  random: number;
  /** (own − random) / own, when own > 0. */
  specificity: number;
  reason?: typeof RejectionReason.NoImprovement;
  detail?: string;
}

/**
 * The score of one contribution:
 *
 *   own         = ownLossBefore − ownLossAfter        (improvement on its assigned batches)
 *   random      = randomLossBefore − randomLossAfter  (improvement on random batches)
 *   score       = 0  if a loss is not finite, own ≤ minImprovement, or random < 0
 *   specificity = (own − random) / own                (≤ 1: the share of the gain that is its own data's)
 *   score       = clamp((specificity − margin) / (full − margin), 0, 1)
 *
 * Why. A real contribution was trained on its assigned data, so it helps that data more than
 * data in general: specificity > 0. One trained on other data (or copied from a peer) helps its
 * assigned data no more than random data: specificity ≈ 0. A zero or tiny update (free-riding)
 * does not improve anything measurably; a sign-flipped, scaled-up or noise update makes its own
 * data worse; an update that makes random data worse hurts the model: all score 0.
 *
 * Measured with the real trainer (4 peers, the 0.93M GPT of `npm run study`, 10 inner steps,
 * SparseLoCo 64/4096 2-bit, 4 own + 4 random batches of 8×64 tokens, 12 rounds) at λ = 0.5:
 * honest specificity 0.09–0.55 (median 0.33), own and random > 0 every time, mean score 0.83 with
 * the defaults; a peer's update scored on another peer's assigned data (a copy, or training on
 * data other than its assignment) −1.27–0.28 (median 0.02), mean score 0.17; sign-flipped: own < 0
 * every time. The distributions touch at the low end — one round's score is noisy — which is why
 * scores feed an EMA reputation (reputation.ts) rather than decide alone.
 * At λ = 1 a single contribution overshot in late rounds (random < 0 for honest peers 5 times of
 * 12): the evaluation step λ must be small enough that an honest update alone helps random data.
 */
export function gauntletScore(loss: LossReport, options: ScoreOptions = {}): Score {
  const margin = options.margin ?? 0.05;
  const full = options.full ?? 0.25;
  const minImprovement = options.minImprovement ?? 1e-4;
  if (!(margin >= 0 && full > margin && full <= 1)) throw new Error(`score needs 0 ≤ margin < full ≤ 1, got margin ${margin}, full ${full}`);
  const own = loss.ownLossBefore - loss.ownLossAfter;
  const random = loss.randomLossBefore - loss.randomLossAfter;
  const zero = (detail: string, specificity = Number.NaN): Score => ({ score: 0, own, random, specificity, reason: RejectionReason.NoImprovement, detail });
  if (![loss.ownLossBefore, loss.ownLossAfter, loss.randomLossBefore, loss.randomLossAfter].every(Number.isFinite)) return zero('a loss is not finite');
  if (!(own > minImprovement)) return zero(`improves its own data by ${own.toPrecision(3)} nats (needs more than ${minImprovement})`);
  if (random < 0) return zero(`makes random data worse by ${(-random).toPrecision(3)} nats`);
  const specificity = (own - random) / own;
  const score = Math.min(1, Math.max(0, (specificity - margin) / (full - margin)));
  if (score === 0) return zero(`helps its own data no more than random data (specificity ${specificity.toFixed(3)}, needs more than ${margin})`, specificity);
  return { score, own, random, specificity };
}

/**
 * A score against the round's scale: a contribution must improve its own data by at least
 * `minShare` (default ¼) of the round's median own-data improvement, and its score is scaled by
 * that share (capped at 1). Why: specificity is a ratio, so an update that barely moves the loss
 * — random noise of an honest update's norm, measured at own ≈ 1e-3 against honest 1e-2 to 5e-2
 * — can show a large specificity by chance (own tiny, random ≈ 0) and score 1. `medianOwn`: the
 * median of (own before − own after) over the contributions this coordinator evaluated in the
 * round; with honest contributions a majority, it is an honest one's.
 */
export function scaleToRound(score: Score, medianOwn: number, options: { minShare?: number } = {}): Score {
  const minShare = options.minShare ?? 0.25;
  if (score.score === 0 || !(medianOwn > 0)) return score;
  const share = score.own / medianOwn;
  if (share < minShare) {
    return { ...score, score: 0, reason: RejectionReason.NoImprovement, detail: `improves its own data by ${score.own.toPrecision(3)} nats, under ${minShare} of the round's median ${medianOwn.toPrecision(3)}` };
  }
  return { ...score, score: score.score * Math.min(1, share) };
}

/** A score in [0, 1] as integer millionths, as a manifest carries it. */
export function scoreToPpm(score: number): number {
  if (!(score > 0)) return 0;
  return Math.min(1_000_000, Math.round(score * 1_000_000));
}

const SEED_DOMAIN = Buffer.from('concord.v1.random-batches\0');

/**
 * The seed of a round's random evaluation batches (EvaluateTask.random_seed, uint64):
 *
 *   first 8 bytes, big-endian, of SHA-256("concord.v1.random-batches" 0x00 || u32be(len run) || run
 *     || u64be(round) || u32be(n) || the n distinct header hashes in ascending byte order || salt)
 *
 * `committedHeaderHashes` are statementHash() of every contribution header of the round this
 * coordinator accepted as committed (call it after the commit deadline). A contributor cannot
 * predict the seed when it commits: it depends on the other contributors' headers, fixed only
 * afterwards. Sorting and de-duplicating make it independent of arrival order, so coordinators
 * that hold the same headers evaluate on the same batches.
 *
 * Caveat: the last to commit, having seen everyone else's headers, could try many variants of its
 * own (tokens, a re-encoded payload) to pick a seed it likes. `salt` closes that: a value the
 * contributors cannot know (e.g. this coordinator's signature over the sorted hashes) makes the
 * seed unpredictable to all of them, at the price of other coordinators not reproducing it.
 */
export function randomBatchSeed(runId: string, round: bigint, committedHeaderHashes: readonly Uint8Array[], salt?: Uint8Array): bigint {
  if (round < 0n || round >= 1n << 64n) throw new Error(`round ${round} is not a uint64`);
  const distinct = new Map<string, Buffer>();
  for (const hash of committedHeaderHashes) {
    if (hash.length !== Limits.hashBytes) throw new Error(`header hash must be ${Limits.hashBytes} bytes, got ${hash.length}`);
    const bytes = Buffer.from(hash);
    distinct.set(bytes.toString('hex'), bytes);
  }
  const sorted = [...distinct.values()].sort(Buffer.compare);
  const run = Buffer.from(runId, 'utf8');
  const fixed = Buffer.alloc(4 + run.length + 8 + 4);
  fixed.writeUInt32BE(run.length, 0);
  run.copy(fixed, 4);
  fixed.writeBigUInt64BE(round, 4 + run.length);
  fixed.writeUInt32BE(sorted.length, 4 + run.length + 8);
  const hash = createHash('sha256').update(SEED_DOMAIN).update(fixed);
  for (const h of sorted) hash.update(h);
  if (salt !== undefined) hash.update(salt);
  return hash.digest().readBigUInt64BE(0);
}
