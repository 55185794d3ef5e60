// What one coordinator knows about one round: the contribution headers it holds (its own and
// everyone else's, however they arrived), their payloads, the rejections, and the manifests.
// No I/O: the round driver feeds it and reads decisions out of it.
import type { Envelope } from '../../../proto/gen/concord/v1/envelope_pb.js';
import type { SignedContribution } from '../rounds/contribution.js';
import type { RelaySignature } from '../rounds/acceptance.js';
import type { SignedManifest } from '../rounds/agreement.js';
import type { EquivocationEvidence } from '../rounds/equivocation.js';
import type { RejectionReason } from '../rounds/reasons.js';
import type { PairedStats } from '../rounds/score.js';

export interface Commit {
  peerId: string;
  signed: SignedContribution;
  /** Order in which this coordinator first held the header (findCopies' `committed`). */
  order: number;
  /** Names of the peers that announced it to us: where its payload can be fetched. */
  sources: Set<string>;
  /** The verified payload, once fetched and checked. */
  payload: Uint8Array | undefined;
  /** L2 norm of the decoded update (checkPayload). */
  norm: number;
  fetching: boolean;
  /** No new fetch attempt before this time (Unix ms) after one failed. */
  retryAt: number;
}

/** One contribution's evaluation: the step measured, and the statistics of score.ts. */
export interface ContributionEvaluation {
  step: number;
  own: PairedStats;
  control: PairedStats;
  all: PairedStats;
  specificity: number;
}

export interface RoundRejection {
  peerId: string;
  reason: RejectionReason;
  detail: string;
}

export class RoundBook {
  readonly commits = new Map<string, Commit>();
  /** At most one rejection per peer and reason, in the order they happened. */
  readonly rejections: RoundRejection[] = [];
  /**
   * Statements of earlier rounds received in this one (a replay, or a slow peer's late relay):
   * refused and reported (WrongRound), but they do not settle the signer's contribution of this
   * round — an honest peer that is a round behind must still be able to contribute once it
   * catches up.
   */
  readonly stale: RoundRejection[] = [];
  /**
   * Verified manifests accepted inside their windows, by statement hash, with the relay
   * signatures they were accepted with: every distinct one, so that a signer's second, different
   * manifest is seen by agree() (which then counts neither).
   */
  readonly manifests = new Map<string, SignedManifest & { peerId: string; relays: RelaySignature[] }>();
  /** This coordinator's signed manifest, once it has one. */
  ourManifest: Envelope | undefined;
  /** This coordinator's relay signature on each manifest it passes on, by statement hash. */
  readonly vouched = new Map<string, RelaySignature>();
  /** The round's training deadline (Unix ms) once this coordinator knows it: the windows count from it. */
  trainDeadlineMs: number | undefined;
  /** Set once the coordinator decided: nothing accepted later counts. */
  decided = false;
  /** Contributors seen signing two different headers this round, with the proof (for the manifest). */
  readonly equivocations = new Map<string, EquivocationEvidence>();
  /** What this coordinator's evaluation measured, by contributor peer id (score.ts): for the round's summary. */
  readonly evaluations = new Map<string, ContributionEvaluation>();
  /** Statement hashes already announced to each peer (by name), so each is sent once. */
  readonly announcedTo = new Map<string, Set<string>>();
  private nextOrder = 0;

  constructor(readonly round: bigint, readonly baseHash: Buffer) {}

  /** Adds a verified header; returns the commit, and whether it is new. */
  commit(signed: SignedContribution, peerId: string, source: string | undefined): { commit: Commit; fresh: boolean } {
    const existing = this.commits.get(peerId);
    if (existing !== undefined) {
      if (source !== undefined) existing.sources.add(source);
      return { commit: existing, fresh: false };
    }
    const commit: Commit = { peerId, signed, order: this.nextOrder++, sources: new Set(source === undefined ? [] : [source]), payload: undefined, norm: 0, fetching: false, retryAt: 0 };
    this.commits.set(peerId, commit);
    return { commit, fresh: true };
  }

  /** Peer ids that have a manifest here. */
  manifestSigners(): Set<string> {
    return new Set([...this.manifests.values()].map((m) => m.peerId));
  }

  reject(peerId: string, reason: RejectionReason, detail: string): boolean {
    if (this.rejections.some((r) => r.peerId === peerId && r.reason === reason)) return false;
    this.rejections.push({ peerId, reason, detail });
    return true;
  }

  noteStale(peerId: string, reason: RejectionReason, detail: string): boolean {
    if (this.stale.some((r) => r.peerId === peerId)) return false;
    this.stale.push({ peerId, reason, detail });
    return true;
  }

  rejected(peerId: string): boolean {
    return this.rejections.some((r) => r.peerId === peerId);
  }

  /** Commits whose payload arrived and checked out, and that nothing rejected. */
  ready(): Commit[] {
    return [...this.commits.values()].filter((c) => c.payload !== undefined && !this.rejected(c.peerId));
  }

  /** Peers that are settled: a checked payload, or a rejection. */
  settled(): Set<string> {
    const done = new Set(this.ready().map((c) => c.peerId));
    for (const r of this.rejections) done.add(r.peerId);
    return done;
  }
}
