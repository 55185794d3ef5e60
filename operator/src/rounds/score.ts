// Gauntlet-style scoring, paired: a contribution is judged by what its step does to the loss of
// the same sequences before and after, measured by a trainer (EvaluateTask → EvaluateResult in
// proto/concord/v1/trainer.proto) on a sample of the data the contributor trained on and on
// control data. Pure: the round's validation phase feeds it per-sequence losses.
import { createHash } from 'node:crypto';
import { signBytes, type Identity } from '../federation/identity.js';
import { medianOf } from './norms.js';
import { RejectionReason } from './reasons.js';

/** Per-sequence losses before and after a step, pair by pair. */
export interface PairedLosses {
  before: ArrayLike<number>;
  after: ArrayLike<number>;
}

/** What one evaluation measured: on a sample of the contributor's trained data, and on control data. */
export interface EvaluationLosses {
  own: PairedLosses;
  control: PairedLosses;
}

/** The improvement (before − after) of a paired sample: its mean, spread and t statistic. */
export interface PairedStats {
  n: number;
  /** Mean improvement, nats per sequence (> 0: the step lowers the loss). */
  mean: number;
  /** Sample standard deviation of the per-sequence improvements. */
  sd: number;
  /** mean ÷ (sd / √n): how many standard errors the improvement is from none. */
  t: number;
}

/** Mean, spread and t statistic of before − after, pair by pair. Throws on unequal lengths. */
export function pairedImprovement(losses: PairedLosses): PairedStats {
  const n = losses.before.length;
  if (losses.after.length !== n) throw new Error(`paired losses need equal lengths, got ${n} before and ${losses.after.length} after`);
  if (n === 0) return { n, mean: 0, sd: 0, t: 0 };
  let sum = 0;
  for (let i = 0; i < n; i++) sum += losses.before[i]! - losses.after[i]!;
  const mean = sum / n;
  let squares = 0;
  for (let i = 0; i < n; i++) squares += (losses.before[i]! - losses.after[i]! - mean) ** 2;
  const sd = n > 1 ? Math.sqrt(squares / (n - 1)) : 0;
  return { n, mean, sd, t: tStatistic(mean, sd / Math.sqrt(n)) };
}

/**
 * How much more the step helps the contributor's own data than control data, in standard errors
 * (Welch): (own.mean − control.mean) / √(own.sd²/n + control.sd²/n). An update trained on its own
 * assignment fits those sequences better than others; one trained elsewhere (or copied) does not.
 */
export function specificity(own: PairedStats, control: PairedStats): number {
  if (own.n === 0 || control.n === 0) return 0;
  return tStatistic(own.mean - control.mean, Math.sqrt(own.sd ** 2 / own.n + control.sd ** 2 / control.n));
}

function tStatistic(mean: number, standardError: number): number {
  if (standardError > 0) return mean / standardError;
  return mean === 0 ? 0 : Math.sign(mean) * Infinity;
}

/** The thresholds of the per-round gate (docs/rounds.md, "Score"). */
export interface Gate {
  /** A step whose control (or own) data gets worse by more than this many standard errors is harmful. */
  harm: number;
  /** The step must improve own and control data together by more than this many standard errors. */
  help: number;
  /**
   * The step's improvement per unit of step must be at least this fraction of the round's median
   * (relativeWork). Significance alone cannot reject noise: a random direction of an honest
   * norm really does help or hurt every sequence a little, and half the time it helps.
   */
  relative: number;
}

/** The shipped thresholds; docs/rounds.md has their measured false-rejection and detection rates. */
export const DEFAULT_GATE: Gate = { harm: 3, help: 2, relative: 0.4 };

export interface Verdict {
  /** 1 when it passes the gate, 0 when rejected (NoImprovement). */
  score: number;
  own: PairedStats;
  control: PairedStats;
  /** Own and control together. */
  all: PairedStats;
  /** specificity(own, control): reported, not judged (docs/rounds.md, "Why no specificity in the gate"). */
  specificity: number;
  reason?: typeof RejectionReason.NoImprovement;
  detail?: string;
}

/**
 * The per-round gate. It rejects only what it is confident about:
 *   - a loss that is not finite, or a step that changes no loss at all (an empty update);
 *   - a step that makes control data, or its own, worse by more than `harm` standard errors;
 *   - a step whose improvement over own and control sequences together is under `help`
 *     standard errors.
 * The round's validation then applies relativeWork() to what passed. Everything else passes
 * with score 1: among contributions that help, a graded per-round score would only add noise to
 * the aggregate's weights. Whether a peer trains on its own assignment
 * (`specificity`) did not separate honest peers from others in any measurement, so it is only
 * reported.
 */
export function judge(losses: EvaluationLosses, gate: Pick<Gate, 'harm' | 'help'> = DEFAULT_GATE): Verdict {
  const own = pairedImprovement(losses.own);
  const control = pairedImprovement(losses.control);
  const all = pairedImprovement({ before: [...Array.from(losses.own.before), ...Array.from(losses.control.before)], after: [...Array.from(losses.own.after), ...Array.from(losses.control.after)] });
  const base = { own, control, all, specificity: specificity(own, control) };
  const reject = (detail: string): Verdict => ({ ...base, score: 0, reason: RejectionReason.NoImprovement, detail });
  const values = [losses.own.before, losses.own.after, losses.control.before, losses.control.after].flatMap((v) => Array.from(v));
  if (values.length === 0) return reject('no sequences were evaluated');
  if (!values.every(Number.isFinite)) return reject('a loss is not finite');
  if (all.mean === 0 && all.sd === 0) return reject('its step changes no loss (an empty update)');
  if (control.t < -gate.harm) return reject(`makes control data worse by ${(-control.mean).toPrecision(3)} nats a sequence (t = ${control.t.toFixed(1)})`);
  if (own.t < -gate.harm) return reject(`makes its own data worse by ${(-own.mean).toPrecision(3)} nats a sequence (t = ${own.t.toFixed(1)})`);
  if (!(all.t > gate.help)) return reject(`improves the loss by ${all.mean.toPrecision(3)} nats a sequence, t = ${all.t.toFixed(2)} (needs more than ${gate.help})`);
  return { ...base, score: 1 };
}

/** One contribution's evaluation in a round, for relativeWork. */
export interface RoundEvaluation {
  peerId: string;
  /** The step it was evaluated at (outer lr × share × clip). */
  step: number;
  /** Its improvement over own and control data together. */
  all: PairedStats;
}

/** Fewer evaluations than this in a round have no median to judge against. */
export const RELATIVE_WORK_MIN_EVALUATIONS = 3;

/**
 * The round-relative part of the gate: work = all.mean ÷ step, the loss a contribution removes
 * per unit of step; a contribution whose work is under `relative` × the median work of the
 * round's evaluations is rejected. Honest updates of a round do comparable work (measured in
 * docs/rounds.md); noise of an honest norm does a small fraction of it, however significant.
 * The median is over every evaluated contribution: with a dishonest minority it lies between two
 * honest values, so colluders can raise the bar at most to the best honest update's work. No
 * verdict with fewer than RELATIVE_WORK_MIN_EVALUATIONS or a median that is not positive.
 */
export function relativeWork(evaluations: readonly RoundEvaluation[], relative: number): Array<{ peerId: string; detail: string }> {
  const works = evaluations.filter((e) => e.step > 0 && Number.isFinite(e.all.mean)).map((e) => ({ peerId: e.peerId, work: e.all.mean / e.step }));
  if (works.length < RELATIVE_WORK_MIN_EVALUATIONS) return [];
  const median = medianOf(works.map((w) => w.work));
  if (!(median > 0)) return [];
  return works.filter((w) => w.work < relative * median).map((w) => ({
    peerId: w.peerId,
    detail: `removes ${w.work.toPrecision(3)} nats a sequence per unit of step, under ${relative} × the round's median ${median.toPrecision(3)}`,
  }));
}

/** A score in [0, 1] as integer millionths, as a manifest carries it. */
export function scoreToPpm(score: number): number {
  if (!(score > 0)) return 0;
  return Math.min(1_000_000, Math.round(score * 1_000_000));
}

const SAMPLE_DOMAIN = Buffer.from('concord.v1.sample-seed\0');

/**
 * The seed that draws a contribution's evaluation samples (EvaluateTask.sample_seed): SHA-256 of
 * this coordinator's Ed25519 signature over the contribution's header hash. Ed25519 signatures
 * are deterministic, so the seed is fixed by the header — and nobody without this coordinator's
 * private key can compute it. A contributor therefore cannot predict which of its sequences, or
 * which control sequences, it will be judged on, and cannot grind its header for a favourable
 * draw (it cannot evaluate the draw). Each coordinator draws its own samples for each
 * contribution: one easy draw does not sink or carry a round everywhere at once.
 */
export function sampleSeed(identity: Identity, headerHash: Uint8Array): Buffer {
  return createHash('sha256').update(signBytes(identity, Buffer.concat([SAMPLE_DOMAIN, headerHash]))).digest();
}
