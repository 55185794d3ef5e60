// The coordinator's status report: what GET /status on its metrics port answers, and how the
// operator learns a run's progress and its peers' state (docs/operator.md: the operator polls
// it; the coordinator, which faces other organisations over the network, holds no Kubernetes
// credentials at all). Plain JSON, versioned by `apiVersion`.
import type { LinkErrorKind, PeerLink } from '../federation/client.js';
import type { PeerReputation } from '../rounds/reputation.js';
import type { RoundSummary } from './round-driver.js';

export const REPORT_VERSION = 'concord.dev/coordinator-report/v1';

export interface PeerReport {
  /** The Peer resource's name (the coordinator config's peer name). */
  name: string;
  peerId: string;
  lastSeen: string | undefined;
  lastHandshake: string | undefined;
  rttMs: number | undefined;
  /** The last call's failure (PeerLink.lastError): unreachable, refused by the peer, or rejected here. */
  lastError: { kind: LinkErrorKind; reason: string; message: string; at: string } | undefined;
  reputation: number | undefined;
  excluded: string | undefined;
  ban: { round: number; evidence: readonly string[] } | undefined;
  /** Contributions of this peer accepted and rejected (by reason) since the coordinator started. */
  accepted: number;
  rejected: Record<string, number>;
}

export interface CoordinatorReport {
  apiVersion: typeof REPORT_VERSION;
  runId: string;
  peerId: string;
  publicKey: string;
  phase: string;
  /** Rounds applied: the next round to train. */
  round: number;
  rounds: number;
  modelHash: string;
  /** Training loss of the last round, if any trained since the coordinator started. */
  loss: number | undefined;
  /** Tokens this cluster trained since the coordinator started. */
  tokens: number;
  /** Whether the last round's hash matched the majority's. */
  agreed: boolean | undefined;
  /** Mean wall time of the rounds since the coordinator started (for an ETA). */
  meanRoundSeconds: number | undefined;
  lastRoundAt: string | undefined;
  trainers: number;
  peers: PeerReport[];
}

/** Per-peer tallies of accepted and rejected contributions, fed with each round's summary. */
export class ContributionTally {
  private readonly accepted = new Map<string, number>();
  private readonly rejected = new Map<string, Map<string, number>>();
  private roundSeconds = 0;
  private roundCount = 0;
  tokens = 0;
  last: RoundSummary | undefined;
  lastAtMs: number | undefined;

  record(summary: RoundSummary): void {
    for (const { peerId } of summary.accepted) this.accepted.set(peerId, (this.accepted.get(peerId) ?? 0) + 1);
    for (const { peerId, reason } of summary.rejected) {
      const reasons = this.rejected.get(peerId) ?? new Map<string, number>();
      reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
      this.rejected.set(peerId, reasons);
    }
    this.tokens += Number(summary.tokens);
    this.roundSeconds += summary.wallSeconds;
    this.roundCount++;
    this.last = summary;
    this.lastAtMs = Date.now();
  }

  acceptedOf(peerId: string): number {
    return this.accepted.get(peerId) ?? 0;
  }

  rejectedOf(peerId: string): Record<string, number> {
    return Object.fromEntries(this.rejected.get(peerId) ?? []);
  }

  get meanRoundSeconds(): number | undefined {
    return this.roundCount === 0 ? undefined : this.roundSeconds / this.roundCount;
  }
}

const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());

/** Builds the report (pure: everything it needs is passed in). */
export function buildReport(input: {
  runId: string; peerId: string; publicKey: string; phase: string; round: bigint; rounds: number; modelHash: string;
  trainers: number; tally: ContributionTally;
  peers: Array<{ name: string; peerId: string; link: PeerLink }>;
  reputations: readonly PeerReputation[];
}): CoordinatorReport {
  const { tally } = input;
  const reputationOf = new Map(input.reputations.map((r) => [r.peerId, r]));
  return {
    apiVersion: REPORT_VERSION,
    runId: input.runId, peerId: input.peerId, publicKey: input.publicKey, phase: input.phase,
    round: Number(input.round), rounds: input.rounds, modelHash: input.modelHash,
    loss: tally.last !== undefined && Number.isFinite(tally.last.loss) ? tally.last.loss : undefined,
    tokens: tally.tokens, agreed: tally.last?.agreed, meanRoundSeconds: tally.meanRoundSeconds, lastRoundAt: iso(tally.lastAtMs),
    trainers: input.trainers,
    peers: input.peers.map(({ name, peerId, link }) => {
      const reputation = reputationOf.get(peerId);
      return {
        name, peerId,
        lastSeen: iso(link.lastSeenMs), lastHandshake: iso(link.lastHandshakeMs), rttMs: link.rttMs,
        lastError: link.lastError && { kind: link.lastError.kind, reason: link.lastError.reason, message: link.lastError.message, at: new Date(link.lastError.atMs).toISOString() },
        reputation: reputation?.reputation, excluded: reputation?.excluded,
        ban: reputation?.ban && { round: reputation.ban.round, evidence: reputation.ban.evidence },
        accepted: tally.acceptedOf(peerId), rejected: tally.rejectedOf(peerId),
      };
    }),
  };
}
