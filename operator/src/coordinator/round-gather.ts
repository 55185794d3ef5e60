// The gather phase of a round (round-driver.ts): announcing headers to peers, relaying every
// header held to those not yet sent it, and fetching and checking each contribution's payload,
// until the round's payloads are in or its time is up. It is separate because it is the round's
// transport: it needs peers, clients and the transfer limiter, not the model or the trainers. The
// driver's inbound handler (announced()) and the start of each round use relay() and fetch() too:
// a header is relayed, and its payload fetched, on receipt in every phase.
import * as grpc from '@grpc/grpc-js';
import type { Envelope } from '../../../proto/gen/concord/v1/envelope_pb.js';
import { RpcError } from '../../../proto/grpc/errors.js';
import type { CodecParams } from '../../../trainer/src/codec/index.js';
import { sha256 } from '../federation/blob-store.js';
import type { PeerClient } from '../federation/client.js';
import type { PeerDirectory } from '../federation/peers.js';
import { Refusal } from '../federation/refusal.js';
import type { Logger } from '../log.js';
import { checkPayload } from '../rounds/contribution.js';
import { RejectionReason } from '../rounds/reasons.js';
import type { Reputation } from '../rounds/reputation.js';
import { sleep } from '../runtime/backoff.js';
import type { Misbehaviour } from './misbehaviour.js';
import type { Commit, RoundBook } from './round-book.js';
import { describe, POLL_MS } from './round-common.js';
import type { RoundSettings } from './round-settings.js';
import type { TransferLimiter } from './transfer-limiter.js';

/** The least time a payload transfer gets, whatever its size (a round trip and a loaded peer). */
const MIN_TRANSFER_MS = 2000;

/** What gathering needs from the coordinator: nothing else of the round driver. */
export interface GatherDeps {
  settings: Pick<RoundSettings, 'graceMs' | 'quorum' | 'transfer'>;
  /** The remote peers: whom headers are announced to. */
  peers: PeerDirectory;
  /** Peers and this coordinator: a signer's peer name. */
  members: PeerDirectory;
  /** Their peer ids: who is expected to contribute. */
  memberIds: readonly string[];
  /** Bans: a banned member is not waited for. */
  reputation: Reputation;
  /** Paces payload transfers per peer (shared with the driver's checkpoint and apply fetches). */
  limiter: TransferLimiter;
  client(name: string): PeerClient;
  log: Logger;
  /** Parameters of the model, and the run's codec: to check a payload on arrival. */
  modelLength: number;
  codec: CodecParams;
  /** A dishonest coordinator's announce hook: when set, it announces by its plan only. */
  misbehaviour: Pick<Misbehaviour, 'announce'> | undefined;
  /** Serves a checked payload to peers and trainers. */
  serve(payload: Uint8Array): void;
}

export class RoundGather {
  private readonly deps: GatherDeps;

  constructor(deps: GatherDeps) {
    this.deps = deps;
  }

  /**
   * Announces (first the plan, then every verified header held, to each peer once) and waits
   * for payloads until every active peer is settled, or the quorum is in after the deadline
   * (`deadlineMs`, the round's training deadline), or the deadline plus grace has passed.
   */
  async gather(book: RoundBook, plan: Map<string, Envelope[]>, deadlineMs: number, signal: AbortSignal): Promise<void> {
    const { settings } = this.deps;
    const hardStop = deadlineMs + settings.graceMs;
    const active = this.deps.memberIds.filter((id) => this.deps.reputation.banOf(id) === undefined);
    const quorum = Math.min(settings.quorum ?? active.length, active.length);
    await this.announce(book, plan);
    let lastRelay = 0;
    while (!signal.aborted) {
      const settled = book.settled();
      const ready = book.ready().length;
      if (active.every((id) => settled.has(id))) break;
      const now = Date.now();
      if (now >= hardStop) break;
      if (ready >= quorum && now >= deadlineMs) break;
      // Headers are relayed on receipt; this pass retries what a peer could not be sent.
      if (now - lastRelay >= 500) {
        lastRelay = now;
        this.relay(book);
      }
      for (const commit of book.commits.values()) if (commit.payload === undefined && !book.rejected(commit.peerId)) void this.fetch(book, commit);
      await sleep(POLL_MS, signal).catch(() => undefined);
    }
    for (const id of active) {
      if (!book.settled().has(id)) book.reject(id, RejectionReason.Unavailable, book.commits.has(id) ? 'its payload could not be fetched in time' : 'sent no contribution in time');
    }
  }

  /** Sends every peer the headers it has not been sent yet (an honest coordinator only; a
   * dishonest one announces whatever its plan says). */
  relay(book: RoundBook): void {
    if (this.deps.misbehaviour?.announce === undefined) void this.announce(book, new Map());
  }

  /** Fetches a commit's payload from the peers that announced it, checking it on arrival. */
  async fetch(book: RoundBook, commit: Commit): Promise<void> {
    if (commit.fetching || commit.payload !== undefined || Date.now() < commit.retryAt) return;
    commit.fetching = true;
    commit.retryAt = Date.now() + 500;
    const { header } = commit.signed;
    const signer = this.deps.members.get(commit.signed.signer)?.name;
    // The slowest the signed size may arrive: a trickle is cut here, not at the round's grace. This
    // cluster's own pacing (transfer.bytesPerSecond, shared by a peer's concurrent transfers) is
    // never held against the signer.
    const { minBytesPerSecond, bytesPerSecond, concurrency } = this.deps.settings.transfer;
    const rate = bytesPerSecond > 0 ? Math.min(minBytesPerSecond, bytesPerSecond / concurrency) : minBytesPerSecond;
    const timeoutMs = Math.max(MIN_TRANSFER_MS, Math.ceil((1000 * Number(header.payloadBytes)) / rate));
    try {
      for (const source of [...commit.sources]) {
        let bytes: Buffer;
        try {
          bytes = await this.deps.limiter.run(source, (pace) => this.deps.client(source).fetchContribution(header.payloadHash, Number(header.payloadBytes), pace, timeoutMs));
        } catch (error) {
          this.deps.log.warn('fetch-failed', { round: book.round, from: source, of: commit.peerId, error: describe(error) });
          // The signer's own stream broke the transfer's rules — ended short of the signed size,
          // a total other than signed, or slower than the run's minimum rate: its doing, charged
          // at once, so that a trickling signer cannot hold the round to its grace period for
          // free. A relay's bad stream is not the signer's fault.
          if (source === signer && error instanceof Refusal && (error.reason === 'Malformed' || error.reason === 'TooLarge')) {
            book.reject(commit.peerId, RejectionReason.Malformed, `its own stream of the payload: ${error.message}`);
            return;
          }
          if (source === signer && error instanceof RpcError && error.code === grpc.status.DEADLINE_EXCEEDED) {
            book.reject(commit.peerId, RejectionReason.TooSlow, `its own stream of ${header.payloadBytes} bytes took more than ${timeoutMs} ms (the run's minimum is ${this.deps.settings.transfer.minBytesPerSecond} bytes/s)`);
            return;
          }
          continue;
        }
        const check = checkPayload(header, bytes, this.deps.modelLength, this.deps.codec);
        if (!check.ok) {
          // A hash mismatch is the relay's doing (BadSignature); anything else the signer signed.
          if (check.reason === RejectionReason.BadSignature) continue;
          book.reject(commit.peerId, check.reason, check.detail);
          return;
        }
        commit.payload = bytes;
        commit.norm = check.norm;
        this.deps.serve(bytes);
        return;
      }
    } finally {
      commit.fetching = false;
    }
  }

  /** Sends each peer the statements it has not been sent: `extra` first, then every held header. */
  private async announce(book: RoundBook, extra: Map<string, Envelope[]>): Promise<void> {
    const held = this.deps.misbehaviour?.announce === undefined ? [...book.commits.values()].sort((a, b) => a.order - b.order).map((c) => c.signed.envelope) : [];
    await Promise.all(this.deps.peers.list().map(async (peer) => {
      let sent = book.announcedTo.get(peer.name);
      if (sent === undefined) book.announcedTo.set(peer.name, (sent = new Set()));
      const statements = [...(extra.get(peer.name) ?? []), ...held].filter((envelope) => {
        const key = sha256(envelope.signature).toString('hex');
        if (sent.has(key)) return false;
        sent.add(key);
        return true;
      });
      if (statements.length === 0) return;
      try {
        await this.deps.client(peer.name).announce(statements);
      } catch (error) {
        // Try again on the next relay pass.
        for (const envelope of statements) sent.delete(sha256(envelope.signature).toString('hex'));
        this.deps.log.warn('announce-failed', { round: book.round, peer: peer.name, error: describe(error) });
      }
    }));
  }
}
