import type { MessageInitShape } from '@bufbuild/protobuf';
import type { FinishRequest, FinishResponseSchema, HelloRequest, HelloResponseSchema } from '../../../proto/gen/concord/v1/federation_pb.js';
import { clip } from './envelope.js';
import { freshNonce, handshakeTranscript, sessionIdOf, signTranscript, verifyTranscript } from './handshake.js';
import type { Identity } from './identity.js';
import { Limits, PROTOCOL } from './limits.js';
import type { PeerDirectory } from './peers.js';
import { refuse } from './refusal.js';
import type { Session, SessionTable } from './sessions.js';

interface PendingHandshake {
  clientKey: Buffer;
  transcript: Buffer;
  expiresAtMs: number;
}

export interface HandshakeResponderOptions {
  /** How long a Hello waits for its Finish (default 30 s). */
  pendingTtlMs?: number;
  /** Pending handshakes kept per client key (default 4) and in all (default 1024). */
  maxPendingPerPeer?: number;
  maxPending?: number;
  now?: () => number;
  /** The run's dataset hash (32 bytes); empty or absent: the bundled corpus. */
  datasetHash?: Uint8Array;
}

/**
 * The server side of the handshake. State is bounded: only keys on the allow-list get a pending
 * entry, a key can hold only a few, and entries expire.
 */
export class HandshakeResponder {
  private readonly pending = new Map<string, PendingHandshake>();
  /** Server nonces whose handshake completed, kept until they would have expired, to name replays. */
  private readonly completed = new Map<string, number>();
  private readonly pendingTtlMs: number;
  private readonly maxPendingPerPeer: number;
  private readonly maxPending: number;
  private readonly now: () => number;
  private readonly datasetHash: Buffer;

  constructor(
    private readonly identity: Identity,
    private readonly runId: string,
    private readonly peers: PeerDirectory,
    private readonly sessions: SessionTable,
    options: HandshakeResponderOptions = {},
  ) {
    this.pendingTtlMs = options.pendingTtlMs ?? 30_000;
    this.maxPendingPerPeer = options.maxPendingPerPeer ?? 4;
    this.maxPending = options.maxPending ?? 1024;
    this.now = options.now ?? Date.now;
    this.datasetHash = Buffer.from(options.datasetHash ?? new Uint8Array(0));
  }

  hello(request: HelloRequest): MessageInitShape<typeof HelloResponseSchema> {
    if (request.protocol !== PROTOCOL) throw refuse('Malformed', `unsupported protocol "${clip(request.protocol)}", this server speaks ${PROTOCOL}`);
    if (request.runId.length > Limits.runIdChars) throw refuse('TooLarge', `run id of ${request.runId.length} characters exceeds ${Limits.runIdChars}`);
    if (request.clientKey.length !== Limits.publicKeyBytes) throw refuse('Malformed', `client key must be ${Limits.publicKeyBytes} bytes, got ${request.clientKey.length}`);
    if (request.clientNonce.length !== Limits.nonceBytes) throw refuse('Malformed', `client nonce must be ${Limits.nonceBytes} bytes, got ${request.clientNonce.length}`);
    if (request.datasetHash.length !== 0 && request.datasetHash.length !== Limits.hashBytes) throw refuse('Malformed', `dataset hash must be empty or ${Limits.hashBytes} bytes, got ${request.datasetHash.length}`);
    if (request.runId !== this.runId) throw refuse('WrongRun', `this server serves run "${this.runId}", not "${clip(request.runId)}"`);
    if (!this.datasetHash.equals(request.datasetHash)) throw refuse('WrongDataset', `run "${this.runId}" trains on ${datasetName(this.datasetHash)}, the client on ${datasetName(request.datasetHash)}`);
    const clientKey = Buffer.from(request.clientKey);
    if (!this.peers.has(clientKey)) throw refuse('UnknownPeer', `key ${clientKey.toString('base64')} is not a peer of run ${this.runId}`);

    this.expire();
    const serverNonce = freshNonce();
    const transcript = handshakeTranscript({
      runId: this.runId, clientKey, serverKey: this.identity.publicKey, clientNonce: request.clientNonce, serverNonce, datasetHash: this.datasetHash,
    });
    this.remember(serverNonce.toString('hex'), { clientKey, transcript, expiresAtMs: this.now() + this.pendingTtlMs });
    return { serverKey: this.identity.publicKey, serverNonce, serverSignature: signTranscript(this.identity, 'server', transcript) };
  }

  finish(request: FinishRequest): { session: Session; response: MessageInitShape<typeof FinishResponseSchema> } {
    if (request.serverNonce.length !== Limits.nonceBytes) throw refuse('Malformed', `server nonce must be ${Limits.nonceBytes} bytes, got ${request.serverNonce.length}`);
    if (request.clientSignature.length !== Limits.signatureBytes) throw refuse('Malformed', `client signature must be ${Limits.signatureBytes} bytes, got ${request.clientSignature.length}`);
    this.expire();
    const nonce = Buffer.from(request.serverNonce).toString('hex');
    if (this.completed.has(nonce)) throw refuse('Replay', 'this handshake was already finished');
    const pending = this.pending.get(nonce);
    if (pending === undefined) throw refuse('UnknownSession', 'no pending handshake for this nonce (expired or never started): send Hello again');
    // One attempt per Hello: a wrong signature ends the handshake.
    this.pending.delete(nonce);
    const peer = this.peers.get(pending.clientKey);
    if (peer === undefined) throw refuse('UnknownPeer', `key ${pending.clientKey.toString('base64')} is no longer a peer of run ${this.runId}`);
    if (!verifyTranscript(peer.key, 'client', pending.transcript, request.clientSignature)) {
      throw refuse('BadSignature', 'the client signature over the handshake transcript does not verify');
    }
    this.completed.set(nonce, pending.expiresAtMs);
    const session = this.sessions.open(sessionIdOf(pending.transcript), pending.clientKey, peer.name);
    return { session, response: { sessionId: session.id, idleTimeoutSeconds: this.sessions.idleTimeoutSeconds } };
  }

  private remember(nonce: string, entry: PendingHandshake): void {
    const ofPeer = [...this.pending].filter(([, p]) => p.clientKey.equals(entry.clientKey));
    if (ofPeer.length >= this.maxPendingPerPeer) this.pending.delete(ofPeer[0]![0]);
    if (this.pending.size >= this.maxPending) this.pending.delete(this.pending.keys().next().value!);
    this.pending.set(nonce, entry);
  }

  private expire(): void {
    const now = this.now();
    for (const [nonce, entry] of this.pending) if (entry.expiresAtMs < now) this.pending.delete(nonce);
    for (const [nonce, expiresAtMs] of this.completed) if (expiresAtMs < now) this.completed.delete(nonce);
  }
}

/** A dataset hash as people compare it: the first 16 hex digits, or the bundled corpus. */
function datasetName(hash: Uint8Array): string {
  return hash.length === 0 ? 'the bundled corpus' : `dataset ${Buffer.from(hash).toString('hex').slice(0, 16)}…`;
}
