/**
 * Why a contribution (or a manifest) was not accepted in a round. Every check in
 * operator/src/rounds/ names one of these, and the coordinator counts them in
 * `concord_contributions_rejected_total{reason}` and writes them into its report. The set is
 * closed, so the metric's label is bounded; add a reason here, nowhere else.
 *
 * Listed in the order the checks run: the first failing check names the reason.
 */
export const RejectionReason = {
  // ---- the signed header (operator/src/rounds/contribution.ts) ----
  /** The signer is not one of this run's Peers. */
  UnknownPeer: 'UnknownPeer',
  /** A signature does not verify over the bytes received, or a payload's SHA-256 is not the signed one. */
  BadSignature: 'BadSignature',
  /** The statement is bound to another run. */
  WrongRun: 'WrongRun',
  /** The statement is for another round than the one being validated (e.g. a replayed old header). */
  WrongRound: 'WrongRound',
  /** A declared or actual size exceeds its limit (payload bytes, claimed tokens, manifest entries). */
  TooLarge: 'TooLarge',
  /** Something does not decode or has the wrong shape: header fields, the payload (a CodecError), a manifest. */
  Malformed: 'Malformed',
  /** The contribution was computed from other parameters than this round's base: the signer is out of sync. */
  StaleBase: 'StaleBase',
  // ---- the payload (contribution.ts, norms.ts) ----
  /** The signed header was committed but its payload could not be fetched before the gather deadline. */
  Unavailable: 'Unavailable',
  /** The signer's own stream of its payload fell below the run's minimum transfer rate. */
  TooSlow: 'TooSlow',
  /** A decoded value is NaN or infinite. */
  NonFinite: 'NonFinite',
  /** The update's L2 norm is above a configured multiple of the round's median norm. */
  NormOutlier: 'NormOutlier',
  // ---- against the other contributions (duplicates.ts) ----
  /** The same payload hash as a contribution another peer committed earlier. */
  Duplicate: 'Duplicate',
  /** Its kept positions overlap those of an earlier contribution above the threshold. */
  NearCopy: 'NearCopy',
  // ---- scoring (score.ts) ----
  /** Gauntlet score 0: it does not help its own assigned data more than random data, or it hurts. */
  NoImprovement: 'NoImprovement',
  // ---- the signer (reputation.ts, equivocation.ts, agreement.ts) ----
  /** The signer's reputation is below the floor. */
  LowReputation: 'LowReputation',
  /** The signer is banned for the rest of the run. */
  Banned: 'Banned',
  /** The signer signed two different statements of one kind for one run and round. */
  Equivocation: 'Equivocation',
  /** A manifest from a signer that is not an active peer of the round. */
  NotActive: 'NotActive',
  // ---- this cluster's own settings for the signer (its Peer resource) ----
  /** This cluster does not vote for the signer's contribution: its Peer has weight 0, or caps
   * the signer's payloads below this one's size (spec.maxContributionBytes). */
  PeerPolicy: 'PeerPolicy',
} as const;

export type RejectionReason = (typeof RejectionReason)[keyof typeof RejectionReason];

export const REJECTION_REASONS: readonly RejectionReason[] = Object.values(RejectionReason);

export function isRejectionReason(value: unknown): value is RejectionReason {
  return typeof value === 'string' && Object.hasOwn(RejectionReason, value);
}

/** A failed check: the reason (metric label) and a message for logs and the report. */
export interface Rejection {
  ok: false;
  reason: RejectionReason;
  detail: string;
}

export function reject(reason: RejectionReason, detail: string): Rejection {
  return { ok: false, reason, detail };
}

/**
 * Whether a rejection counts against the signer's reputation (as a score of 0 for the round).
 * It applies only where the rejected content is proven to be the signer's: a header whose
 * signature verified (checkContributionHeader's result carries `signed`) or a payload whose
 * SHA-256 matched the signed one (every checkPayload rejection but BadSignature). Anyone may
 * relay a statement, so a bad signature, a corrupted payload, a replay into another run or round,
 * or a payload that did not arrive may be a relay's or the network's doing. A stale base means
 * the signer is out of sync and will resync; it is not punished. Exclusions (LowReputation,
 * Banned) are already the consequence of a penalty, and equivocation is punished by a ban.
 */
export const PENALISES_SIGNER: Readonly<Record<RejectionReason, boolean>> = {
  UnknownPeer: false,
  BadSignature: false,
  WrongRun: false,
  WrongRound: false,
  TooLarge: true,
  Malformed: true,
  StaleBase: false,
  Unavailable: false,
  TooSlow: true, // the signer's own stream, measured against the deadline its signed size sets
  NonFinite: true,
  NormOutlier: true,
  Duplicate: true,
  NearCopy: true,
  NoImprovement: true,
  LowReputation: false,
  Banned: false,
  Equivocation: false,
  NotActive: false,
  PeerPolicy: false, // a local choice, not the signer's fault
};
