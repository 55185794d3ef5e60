import { ReplayWindow } from './replay-window.js';
import { refuse } from './refusal.js';

/** One authenticated session with a peer, from a completed handshake. */
export interface Session {
  readonly id: Buffer;
  readonly peerKey: Buffer;
  readonly peerName: string;
  /** Sequence numbers the peer used in this session. */
  readonly inbound: ReplayWindow;
  /** The next sequence number for a message this side sends. */
  nextOutbound: bigint;
  lastUsedMs: number;
}

export interface SessionTableOptions {
  /** A session unused this long is forgotten (default 10 min). */
  idleTimeoutMs?: number;
  /** Sessions kept per peer; the oldest goes first (default 4). */
  maxPerPeer?: number;
  now?: () => number;
}

/**
 * The sessions a receiver knows. Bounded: per peer (a peer that handshakes in a loop only
 * replaces its own sessions) and in time. Sessions live in memory only, so a restarted receiver
 * knows none and its peers handshake again; that is what keeps replays out across restarts.
 */
export class SessionTable {
  private readonly sessions = new Map<string, Session>();
  private readonly idleTimeoutMs: number;
  private readonly maxPerPeer: number;
  private readonly now: () => number;

  constructor(options: SessionTableOptions = {}) {
    this.idleTimeoutMs = options.idleTimeoutMs ?? 10 * 60_000;
    this.maxPerPeer = options.maxPerPeer ?? 4;
    this.now = options.now ?? Date.now;
  }

  get idleTimeoutSeconds(): number {
    return Math.floor(this.idleTimeoutMs / 1000);
  }

  open(id: Buffer, peerKey: Buffer, peerName: string): Session {
    this.expire();
    const ofPeer = [...this.sessions.values()].filter((s) => s.peerKey.equals(peerKey)).sort((a, b) => a.lastUsedMs - b.lastUsedMs);
    while (ofPeer.length >= this.maxPerPeer) this.sessions.delete(ofPeer.shift()!.id.toString('hex'));
    const session: Session = { id, peerKey, peerName, inbound: new ReplayWindow(), nextOutbound: 1n, lastUsedMs: this.now() };
    this.sessions.set(id.toString('hex'), session);
    return session;
  }

  /**
   * The session a verified message claims, checked against its signer and sequence number.
   * Records the sequence number: call once the rest of the message was accepted.
   */
  admit(sessionId: Uint8Array, signer: Buffer, sequence: bigint): Session {
    const session = this.sessions.get(Buffer.from(sessionId).toString('hex'));
    if (session === undefined || this.now() - session.lastUsedMs > this.idleTimeoutMs) {
      throw refuse('UnknownSession', 'no such session (expired, or this coordinator restarted): handshake again');
    }
    if (!session.peerKey.equals(signer)) throw refuse('UnknownSession', 'the session belongs to another peer');
    const problem = session.inbound.check(sequence);
    if (problem !== undefined) throw refuse('Replay', problem);
    session.inbound.accept(sequence);
    session.lastUsedMs = this.now();
    return session;
  }

  /** Drops every session of a peer, e.g. when its Peer resource is deleted. */
  forget(peerKey: Buffer): void {
    for (const [id, session] of this.sessions) if (session.peerKey.equals(peerKey)) this.sessions.delete(id);
  }

  get size(): number {
    return this.sessions.size;
  }

  private expire(): void {
    const now = this.now();
    for (const [id, session] of this.sessions) if (now - session.lastUsedMs > this.idleTimeoutMs) this.sessions.delete(id);
  }
}
