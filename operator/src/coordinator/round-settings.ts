// How a coordinator runs outer rounds: the `outer`, `compression`, `validation` and transfer
// parts of a TrainingRun, as the round driver uses them. Defaults follow docs/rounds.md.
import { ConfigError, configFields } from '../../../trainer/src/config-error.js';

export interface RoundSettings {
  /** The run's seed: initial parameters (round 0) and assign(). Equal at every peer. */
  runSeed: bigint;
  /** Rounds to run; the coordinator stops after round `rounds − 1` is applied. */
  rounds: number;
  /** Length of each round's training window, milliseconds. */
  windowMs: number;
  /**
   * How long after the window a round waits for late contributions, and then for manifests,
   * before it goes on without them (a silent peer costs at most this, twice).
   */
  graceMs: number;
  /**
   * Δ: how long a message between honest coordinators takes at most (with their clocks' skew).
   * A manifest is accepted until the manifest deadline plus one Δ per relay signature it carries
   * beyond the first (docs/protocol.md, "Acceptance windows"). Less than the grace, which must
   * also cover validation.
   */
  deliveryBoundMs: number;
  /**
   * Contributions (this cluster's included) after which gathering stops early; default every
   * active peer. Lower it to cut stragglers off sooner.
   */
  quorum: number | undefined;
  compression: { chunk: number; k: number; bits: number; errorDecay: number };
  validation: {
    /** Batches on each side (the contributor's trained data, control data) of an evaluation, 1 to 64. */
    batches: number;
    /**
     * The per-round gate (rounds/score.ts): a step that makes control or its own data worse by
     * more than `harm` standard errors is rejected, and so is one whose improvement over both
     * is not more than `help` standard errors. Defaults 3 and 2 (docs/rounds.md has their
     * measured false-rejection and detection rates).
     */
    harm: number;
    help: number;
    /**
     * A contribution whose improvement per unit of step is under this fraction of the round's
     * median is rejected (rounds/score.ts, relativeWork): noise of an honest norm can pass the
     * significance test, not this one. Default 0.4.
     */
    relative: number;
    /**
     * Contributions this coordinator evaluates per round at most (default: all). The others are
     * checked like every contribution (structure, copies, norms) and carry the contributor's
     * reputation as their score. Evaluation is the costly part of a round (four forward passes
     * per batch and contribution, on the cluster's trainers); Templar, too, scores a subset of
     * its peers per window. Which ones: a shuffle seeded by this coordinator's key and the round,
     * so that coordinators sample different peers and a contributor cannot know who checks it.
     */
    sample: number | undefined;
    /**
     * Reputation (EMA of the per-round verdicts, 1 passed and 0 rejected or penalised) below which
     * a peer's contributions are excluded. Default 0.3: a peer rejected every round falls below it
     * in its third round; an honest peer, which passed 100% of 160 evaluations in `npm start`,
     * would need six rejections in a row.
     */
    reputationFloor: number;
  };
  transfer: {
    /** Payload transfers from one peer at a time. */
    concurrency: number;
    /** Bytes per second from one peer (payloads and checkpoints); 0 = no cap. */
    bytesPerSecond: number;
    /**
     * The slowest a signer may stream its own payload: a transfer from the signer gets
     * max(2 s, signed size / this) and is then cut and charged (TooSlow), so a trickling signer
     * cannot hold the round to its grace period. Default 256 KiB/s.
     */
    minBytesPerSecond: number;
  };
  /** The largest payload accepted from a peer (its `maxContributionBytes`). */
  maxContributionBytes: number;
  /**
   * Bounds on what a contribution's self-reported claims weigh (trainer/src/outer/weights.ts):
   * tokens count up to `maxTokensPerRound` (absent: no absolute cap) and up to
   * `relativeTokenCap` × the round's lower median claim; no contribution has more than
   * `maxShare` of the update. Every peer of a run must use the same values (they decide the
   * model's bits).
   */
  claims: { maxTokensPerRound: number | undefined; relativeTokenCap: number; maxShare: number };
}

export const DEFAULT_ROUND_SETTINGS: Omit<RoundSettings, 'runSeed'> = {
  rounds: 10,
  windowMs: 20_000,
  graceMs: 10_000,
  deliveryBoundMs: 2_000,
  quorum: undefined,
  compression: { chunk: 4096, k: 64, bits: 2, errorDecay: 0.95 },
  validation: { batches: 2, harm: 3, help: 2, relative: 0.4, sample: undefined, reputationFloor: 0.3 },
  transfer: { concurrency: 2, bytesPerSecond: 0, minBytesPerSecond: 256 * 1024 },
  maxContributionBytes: 64 * 1024 * 1024,
  claims: { maxTokensPerRound: undefined, relativeTokenCap: 2, maxShare: 0.5 },
};

/** Parses the `rounds` mapping of a coordinator's config file; every field is optional but runSeed. */
export function parseRoundSettings(raw: unknown, field = 'rounds'): RoundSettings {
  const root = configFields(raw, field, ['runSeed', 'rounds', 'windowSeconds', 'graceSeconds', 'deliveryBoundSeconds', 'quorum', 'compression', 'validation', 'transfer', 'maxContributionBytes', 'claims']);
  const d = DEFAULT_ROUND_SETTINGS;
  const compression = configFields(root.compression ?? {}, `${field}.compression`, ['chunk', 'topk', 'bits', 'errorDecay']);
  const validation = configFields(root.validation ?? {}, `${field}.validation`, ['batches', 'harm', 'help', 'relative', 'sample', 'reputationFloor']);
  const transfer = configFields(root.transfer ?? {}, `${field}.transfer`, ['concurrency', 'bytesPerSecond', 'minBytesPerSecond']);
  const claims = configFields(root.claims ?? {}, `${field}.claims`, ['maxTokensPerRound', 'relativeTokenCap', 'maxShare']);
  if (root.runSeed === undefined) throw new ConfigError(`${field}.runSeed`, 'is required (the same at every peer of the run)');
  const settings: RoundSettings = {
    runSeed: BigInt(integer(root.runSeed, `${field}.runSeed`, 0, Number.MAX_SAFE_INTEGER)),
    rounds: integer(root.rounds ?? d.rounds, `${field}.rounds`, 1, 1_000_000),
    windowMs: Math.round(1000 * number(root.windowSeconds ?? d.windowMs / 1000, `${field}.windowSeconds`, 0.1, 86_400)),
    graceMs: Math.round(1000 * number(root.graceSeconds ?? d.graceMs / 1000, `${field}.graceSeconds`, 0.1, 86_400)),
    deliveryBoundMs: Math.round(1000 * number(root.deliveryBoundSeconds ?? d.deliveryBoundMs / 1000, `${field}.deliveryBoundSeconds`, 0.01, 3600)),
    quorum: root.quorum === undefined ? undefined : integer(root.quorum, `${field}.quorum`, 1, 1024),
    compression: {
      chunk: integer(compression.chunk ?? d.compression.chunk, `${field}.compression.chunk`, 1, 1 << 24),
      k: integer(compression.topk ?? d.compression.k, `${field}.compression.topk`, 1, 1 << 24),
      bits: integer(compression.bits ?? d.compression.bits, `${field}.compression.bits`, 1, 8),
      errorDecay: number(compression.errorDecay ?? d.compression.errorDecay, `${field}.compression.errorDecay`, 0, 1),
    },
    validation: {
      batches: integer(validation.batches ?? d.validation.batches, `${field}.validation.batches`, 1, 64),
      harm: number(validation.harm ?? d.validation.harm, `${field}.validation.harm`, 0, 100),
      help: number(validation.help ?? d.validation.help, `${field}.validation.help`, 0, 100),
      relative: number(validation.relative ?? d.validation.relative, `${field}.validation.relative`, 0, 1),
      sample: validation.sample === undefined ? undefined : integer(validation.sample, `${field}.validation.sample`, 1, 1024),
      reputationFloor: number(validation.reputationFloor ?? d.validation.reputationFloor, `${field}.validation.reputationFloor`, 0, 1),
    },
    transfer: {
      concurrency: integer(transfer.concurrency ?? d.transfer.concurrency, `${field}.transfer.concurrency`, 1, 64),
      bytesPerSecond: integer(transfer.bytesPerSecond ?? d.transfer.bytesPerSecond, `${field}.transfer.bytesPerSecond`, 0, Number.MAX_SAFE_INTEGER),
      minBytesPerSecond: integer(transfer.minBytesPerSecond ?? d.transfer.minBytesPerSecond, `${field}.transfer.minBytesPerSecond`, 1, Number.MAX_SAFE_INTEGER),
    },
    maxContributionBytes: integer(root.maxContributionBytes ?? d.maxContributionBytes, `${field}.maxContributionBytes`, 1024, 2 ** 32),
    claims: {
      maxTokensPerRound: claims.maxTokensPerRound === undefined ? undefined : integer(claims.maxTokensPerRound, `${field}.claims.maxTokensPerRound`, 1, Number.MAX_SAFE_INTEGER),
      relativeTokenCap: number(claims.relativeTokenCap ?? d.claims.relativeTokenCap, `${field}.claims.relativeTokenCap`, 1, 1000),
      maxShare: number(claims.maxShare ?? d.claims.maxShare, `${field}.claims.maxShare`, 0.01, 1),
    },
  };
  if (settings.deliveryBoundMs >= settings.graceMs) throw new ConfigError(`${field}.deliveryBoundSeconds`, `must be less than graceSeconds (${settings.graceMs / 1000}): the grace covers a delivery and a validation`);
  if (settings.compression.k > settings.compression.chunk) throw new ConfigError(`${field}.compression.topk`, `must be at most chunk (${settings.compression.chunk})`);
  return settings;
}

function integer(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) throw new ConfigError(field, `must be an integer, got ${JSON.stringify(value)}`);
  if (value < min || value > max) throw new ConfigError(field, `must be ${min} to ${max}, got ${value}`);
  return value;
}

function number(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new ConfigError(field, `must be a number, got ${JSON.stringify(value)}`);
  if (value < min || value > max) throw new ConfigError(field, `must be ${min} to ${max}, got ${value}`);
  return value;
}
