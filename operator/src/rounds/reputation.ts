// Per-peer reputation: what a coordinator has learned about each peer over the rounds. One
// round's score is noisy (score.ts); an exponential moving average of them is not, and it is
// what decides whether a peer's contributions are considered at all.
import { RejectionReason } from './reasons.js';

export interface ReputationOptions {
  /** Weight of the newest score: r ← (1 − alpha)·r + alpha·score. Default 0.2 (about the last 5–10 rounds count). */
  alpha?: number;
  /**
   * Reputation of a peer before its first score. Default 0.5: neither trusted nor suspect. A
   * peer rejected every round falls below the default floor after 3 rounds (0.5 → 0.4 → 0.32 →
   * 0.256); an honest peer's verdicts (1, but for a rare false rejection) lift it towards 1.
   */
  initial?: number;
  /** Below this the peer is excluded (LowReputation). Default 0.3. */
  floor?: number;
}

export interface Ban {
  reason: RejectionReason;
  detail: string;
  /** The round in which it was banned (a number, so that a snapshot is plain JSON). */
  round: number;
  /** Proof anyone can check, e.g. encodeEvidence() of an equivocation's two statements. */
  evidence: readonly string[];
}

export interface PeerReputation {
  peerId: string;
  reputation: number;
  /** Scores recorded so far. */
  scored: number;
  /** Why its contributions are not considered now, if they are not. */
  excluded?: typeof RejectionReason.LowReputation | typeof RejectionReason.Banned;
  ban?: Ban;
}

/**
 * Reputations of the peers of one run, as seen by this coordinator (not agreed with anyone: each
 * coordinator judges for itself, and the manifests' majority combines the judgements).
 * Deterministic: the same scores in the same order give the same bits. A ban is permanent for
 * the run; a low reputation is not — the coordinator may keep scoring an excluded peer's
 * contributions (without accepting them) so that it can climb back over the floor.
 */
export class Reputation {
  private readonly alpha: number;
  private readonly initial: number;
  private readonly floor: number;
  private readonly peers = new Map<string, { reputation: number; scored: number; ban?: Ban }>();

  constructor(options: ReputationOptions = {}) {
    this.alpha = options.alpha ?? 0.2;
    this.initial = options.initial ?? 0.5;
    this.floor = options.floor ?? 0.3;
    if (!(this.alpha > 0 && this.alpha <= 1)) throw new Error(`reputation alpha must be in (0, 1], got ${this.alpha}`);
    if (!(this.initial >= 0 && this.initial <= 1)) throw new Error(`initial reputation must be in [0, 1], got ${this.initial}`);
    if (!(this.floor >= 0 && this.floor <= 1)) throw new Error(`reputation floor must be in [0, 1], got ${this.floor}`);
  }

  /** Records one round's score in [0, 1] (0 for a rejection that PENALISES_SIGNER); returns the new reputation. */
  update(peerId: string, score: number): number {
    if (!(score >= 0 && score <= 1)) throw new Error(`score must be in [0, 1], got ${score}`);
    const peer = this.entry(peerId);
    peer.reputation = (1 - this.alpha) * peer.reputation + this.alpha * score;
    peer.scored++;
    return peer.reputation;
  }

  value(peerId: string): number {
    return this.peers.get(peerId)?.reputation ?? this.initial;
  }

  /** Why the peer's contributions are not considered, or undefined if they are. */
  excluded(peerId: string): typeof RejectionReason.LowReputation | typeof RejectionReason.Banned | undefined {
    const peer = this.peers.get(peerId);
    if (peer?.ban !== undefined) return RejectionReason.Banned;
    return (peer?.reputation ?? this.initial) < this.floor ? RejectionReason.LowReputation : undefined;
  }

  /** Bans a peer for the rest of the run. A second ban keeps the first (its evidence stays). */
  ban(peerId: string, ban: Ban): void {
    const peer = this.entry(peerId);
    if (peer.ban === undefined) peer.ban = { ...ban, evidence: [...ban.evidence] };
  }

  banOf(peerId: string): Ban | undefined {
    return this.peers.get(peerId)?.ban;
  }

  /** Every known peer, sorted by peer id: for the status, the metrics and a checkpoint. */
  snapshot(): PeerReputation[] {
    return [...this.peers.keys()].sort().map((peerId) => {
      const peer = this.peers.get(peerId)!;
      const excluded = this.excluded(peerId);
      return {
        peerId, reputation: peer.reputation, scored: peer.scored,
        ...(excluded !== undefined ? { excluded } : {}),
        ...(peer.ban !== undefined ? { ban: { ...peer.ban, evidence: [...peer.ban.evidence] } } : {}),
      };
    });
  }

  /** Rebuilds the state from a snapshot (a restarted coordinator resuming from its checkpoint). */
  static fromSnapshot(snapshot: readonly PeerReputation[], options: ReputationOptions = {}): Reputation {
    const reputation = new Reputation(options);
    for (const peer of snapshot) {
      reputation.peers.set(peer.peerId, {
        reputation: peer.reputation, scored: peer.scored,
        ...(peer.ban !== undefined ? { ban: { ...peer.ban, evidence: [...peer.ban.evidence] } } : {}),
      });
    }
    return reputation;
  }

  private entry(peerId: string): { reputation: number; scored: number; ban?: Ban } {
    let peer = this.peers.get(peerId);
    if (peer === undefined) {
      peer = { reputation: this.initial, scored: 0 };
      this.peers.set(peerId, peer);
    }
    return peer;
  }
}
