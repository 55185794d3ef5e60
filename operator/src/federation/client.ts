import type { DescMessage, MessageInitShape, MessageShape } from '@bufbuild/protobuf';
import type { KeyObject } from 'node:crypto';
import { EnvelopeSchema, type Envelope } from '../../../proto/gen/concord/v1/envelope_pb.js';
import { AnnouncementReceiptSchema, AnnouncementSchema, CheckpointQuerySchema, ContributionQuerySchema, FederationService, ManifestSetSchema, PeerStatusSchema, RelayedManifestSchema, type RelayedManifest, StatusQuerySchema } from '../../../proto/gen/concord/v1/federation_pb.js';
import { createClient, RpcError, type ClientOptions, type ServiceClient } from '../../../proto/grpc/index.js';
import { countRefusal, type FederationMetrics } from '../metrics/federation.js';
import { sha256 } from './blob-store.js';
import { openEnvelope, sealEnvelope } from './envelope.js';
import { freshNonce, handshakeTranscript, sessionIdOf, signTranscript, verifyTranscript } from './handshake.js';
import { encodePublicKey, publicKeyObject, type Identity } from './identity.js';
import { Limits, PROTOCOL } from './limits.js';
import { isRefusalReason, Refusal, refuse } from './refusal.js';
import { ReplayWindow } from './replay-window.js';

/** A checkpoint transfer in progress: what arrived so far, kept to resume from another donor. */
export interface PartialTransfer {
  buffer: Buffer | undefined;
  received: number;
}

export interface PeerClientOptions {
  identity: Identity;
  runId: string;
  /** `host:port` of the peer's federation endpoint. */
  address: string;
  /** The key the peer's `Peer` resource names: the server must prove it holds it. */
  serverKey: Uint8Array;
  metrics: FederationMetrics;
  /** The round this side is in, stamped on every request. */
  round?: () => bigint;
  /** The run's dataset hash (32 bytes), sent and signed in the handshake; absent: the bundled corpus. */
  datasetHash?: Uint8Array;
  grpc?: ClientOptions;
}

interface ClientSession {
  id: Buffer;
  nextOutbound: bigint;
  inbound: ReplayWindow;
}

/**
 * This coordinator's connection to one peer: handshakes (again, when the peer forgot the
 * session), signs every request and checks every response as strictly as the server checks
 * requests. A refused response is counted like a refused request.
 */
/**
 * What this coordinator knows of its link to one peer, for the Peer resource's conditions: an
 * unreachable endpoint (transport failures) and a misconfigured one (refusals: wrong key, not
 * allowed, other run) are told apart.
 */
export interface PeerLink {
  /** Last time a call to the peer succeeded (a verified answer), Unix ms. */
  lastSeenMs: number | undefined;
  lastHandshakeMs: number | undefined;
  /** Round trip of the last handshake's first exchange. */
  rttMs: number | undefined;
  /**
   * The last call's failure, if the last call failed: `unreachable` (transport, deadline),
   * `refused` (the peer refused this coordinator: not on its list, another run…) or `rejected`
   * (this coordinator refused the peer's answer: another key, a bad signature).
   */
  lastError: { kind: LinkErrorKind; reason: string; message: string; atMs: number } | undefined;
}

export type LinkErrorKind = 'unreachable' | 'refused' | 'rejected';

export class PeerClient {
  private readonly linkState: PeerLink = { lastSeenMs: undefined, lastHandshakeMs: undefined, rttMs: undefined, lastError: undefined };
  private readonly rpc: ServiceClient<(typeof FederationService)['method']> & { close(): void };
  private readonly serverKey: Buffer;
  private readonly serverKeyObject: KeyObject;
  private session: ClientSession | undefined;
  private handshaking: Promise<Buffer> | undefined;

  constructor(private readonly options: PeerClientOptions) {
    this.serverKey = Buffer.from(options.serverKey);
    this.serverKeyObject = publicKeyObject(this.serverKey);
    this.rpc = createClient(FederationService, options.address, {
      unaryTimeoutMs: 10_000,
      maxResponseBytes: Limits.transportMessageBytes,
      ...options.grpc,
      // grpc-js waits 1 s (and more, growing) before redialling a peer that refused a connection;
      // peers come and go, and the caller has its own backoff, so redial sooner.
      channelOptions: { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 5_000, ...options.grpc?.channelOptions },
    });
  }

  /** Runs the handshake and keeps the session; returns its id. Concurrent callers share one. */
  handshake(timeoutMs?: number): Promise<Buffer> {
    this.handshaking ??= this.runHandshake(timeoutMs).finally(() => {
      this.handshaking = undefined;
    });
    return this.handshaking;
  }

  private async runHandshake(timeoutMs: number | undefined): Promise<Buffer> {
    const { identity, runId, metrics } = this.options;
    try {
      const clientNonce = freshNonce();
      const sent = performance.now();
      const datasetHash = this.options.datasetHash ?? new Uint8Array(0);
      const hello = await this.rpc.hello({ protocol: PROTOCOL, runId, clientKey: identity.publicKey, clientNonce, datasetHash }, { timeoutMs });
      this.linkState.rttMs = Math.round(performance.now() - sent);
      if (hello.serverKey.length !== Limits.publicKeyBytes || !this.serverKey.equals(hello.serverKey)) {
        throw this.refused(refuse('UnknownPeer', `the server at ${this.options.address} presented key ${Buffer.from(hello.serverKey).toString('base64')}, expected ${encodePublicKey(this.serverKey)}`));
      }
      if (hello.serverNonce.length !== Limits.nonceBytes) throw this.refused(refuse('Malformed', `server nonce must be ${Limits.nonceBytes} bytes`));
      const transcript = handshakeTranscript({ runId, clientKey: identity.publicKey, serverKey: this.serverKey, clientNonce, serverNonce: hello.serverNonce, datasetHash });
      if (!verifyTranscript(this.serverKeyObject, 'server', transcript, hello.serverSignature)) {
        throw this.refused(refuse('BadSignature', 'the server signature over the handshake transcript does not verify'));
      }
      const finish = await this.rpc.finish({ serverNonce: hello.serverNonce, clientSignature: signTranscript(identity, 'client', transcript) }, { timeoutMs });
      const sessionId = sessionIdOf(transcript);
      if (!sessionId.equals(finish.sessionId)) throw this.refused(refuse('Malformed', 'the server confirmed another session id'));
      this.session = { id: sessionId, nextOutbound: 1n, inbound: new ReplayWindow() };
      metrics.handshakes.inc({ role: 'client', result: 'ok' });
      this.linkState.lastHandshakeMs = Date.now();
      this.succeeded();
      return sessionId;
    } catch (error) {
      // `refused`: one side refused the other; `failed`: the transport or a deadline failed.
      const refused = error instanceof RpcError && isRefusalReason(error.reason);
      metrics.handshakes.inc({ role: 'client', result: refused ? 'refused' : 'failed' });
      this.failed(error);
      throw error;
    }
  }

  /** The link's state (a copy). */
  link(): PeerLink {
    return { ...this.linkState, lastError: this.linkState.lastError && { ...this.linkState.lastError } };
  }

  private succeeded(): void {
    this.linkState.lastSeenMs = Date.now();
    this.linkState.lastError = undefined;
  }

  private failed(error: unknown): void {
    const refused = error instanceof RpcError && isRefusalReason(error.reason);
    this.linkState.lastError = {
      // A Refusal is raised here, by this side's checks; the peer's refusals arrive as RpcErrors.
      kind: error instanceof Refusal ? 'rejected' : refused ? 'refused' : 'unreachable',
      reason: refused ? (error as RpcError).reason! : error instanceof RpcError ? `grpc:${error.code}` : 'Error',
      message: error instanceof Error ? error.message.slice(0, 300) : String(error).slice(0, 300),
      atMs: Date.now(),
    };
  }

  /** Asks the peer for its status: one signed message each way. */
  async status(note = ''): Promise<{ status: MessageShape<typeof PeerStatusSchema>; round: bigint; sequence: bigint }> {
    return this.withSession(async () => {
      const request = this.seal(StatusQuerySchema, { note });
      const response = await this.rpc.getStatus({ envelope: request });
      const opened = this.openResponse(response.envelope, PeerStatusSchema);
      return { status: opened.body, round: opened.header.round, sequence: opened.header.sequence };
    });
  }

  /**
   * Announces contribution statements (signed by their authors) for the current round; returns
   * the payload hashes the peer wants to fetch.
   */
  async announce(statements: readonly Envelope[]): Promise<Uint8Array[]> {
    return this.withSession(async () => {
      const response = await this.rpc.announce({ envelope: this.seal(AnnouncementSchema, { contributions: [...statements] }) });
      const receipt = this.openResponse(response.envelope, AnnouncementReceiptSchema).body;
      if (receipt.wanted.length > statements.length || receipt.wanted.some((hash) => hash.length !== Limits.hashBytes)) {
        throw this.refused(refuse('Malformed', `the receipt wants ${receipt.wanted.length} payloads of ${statements.length} announced, or a hash that is not ${Limits.hashBytes} bytes`));
      }
      return receipt.wanted;
    });
  }

  /**
   * Sends a manifest statement of a round (this coordinator's own, or one it passes on with its
   * relay signature) and returns the manifests of the round the peer holds (its own first; none
   * yet is an empty list), as received: the caller verifies each (their signatures are their
   * authors' and relayers', not the session's).
   */
  async exchangeManifest(manifest: RelayedManifest): Promise<RelayedManifest[]> {
    return this.withSession(async () => {
      const response = await this.rpc.exchangeManifest({ envelope: this.seal(RelayedManifestSchema, manifest) });
      const { manifests } = this.openResponse(response.envelope, ManifestSetSchema).body;
      if (manifests.length > 1024) throw this.refused(refuse('TooLarge', `the peer sent ${manifests.length} manifests, at most 1024`));
      if (manifests.some((m) => m.relays.length > Limits.relaysPerManifest)) throw this.refused(refuse('TooLarge', `the peer sent a manifest with more than ${Limits.relaysPerManifest} relay signatures`));
      return manifests;
    });
  }

  /**
   * Streams a contribution payload by hash, at most `maxBytes`, and checks the hash of what
   * arrived. Chunks must be contiguous and agree on the total length. `pace` is awaited before
   * each chunk is taken (a bandwidth cap); `timeoutMs` bounds the whole transfer (DEADLINE_EXCEEDED).
   */
  async fetchContribution(payloadHash: Uint8Array, maxBytes: number, pace?: (bytes: number) => Promise<void>, timeoutMs?: number): Promise<Buffer> {
    return this.withSession(async () => {
      const request = this.seal(ContributionQuerySchema, { payloadHash, offset: 0n });
      const buffer = await this.assemble(this.rpc.fetchContribution({ envelope: request }, timeoutMs !== undefined ? { timeoutMs } : undefined), 'payload', maxBytes, undefined, pace);
      if (!sha256(buffer).equals(payloadHash)) throw this.refused(refuse('BadSignature', 'payload does not match its hash'));
      return buffer;
    });
  }

  /**
   * Streams a checkpoint by model hash into `into` from `into.received` on (a transfer resumed
   * from another donor continues where the last one stopped). The caller checks the model hash
   * of the whole file: a checkpoint is named by its parameters' hash, not its bytes'.
   */
  async fetchCheckpoint(modelHash: Uint8Array, into: PartialTransfer, maxBytes: number, pace?: (bytes: number) => Promise<void>): Promise<Buffer> {
    return this.withSession(async () => {
      const request = this.seal(CheckpointQuerySchema, { modelHash, offset: BigInt(into.received) });
      return this.assemble(this.rpc.fetchCheckpoint({ envelope: request }), 'checkpoint', maxBytes, into, pace);
    });
  }

  /** Assembles contiguous chunks (offset, total_bytes, data) into one buffer. */
  private async assemble(
    stream: AsyncIterable<{ offset: bigint; totalBytes: bigint; data: Uint8Array }>, what: string, maxBytes: number,
    partial: PartialTransfer = { buffer: undefined, received: 0 }, pace?: (bytes: number) => Promise<void>,
  ): Promise<Buffer> {
    for await (const chunk of stream) {
      const total = Number(chunk.totalBytes);
      if (partial.buffer === undefined) {
        if (total > maxBytes) throw this.refused(refuse('TooLarge', `${what} of ${total} bytes exceeds the limit of ${maxBytes}`));
        partial.buffer = Buffer.allocUnsafe(total);
      }
      const { buffer, received } = partial;
      if (total !== buffer.length || Number(chunk.offset) !== received || chunk.data.length === 0 ||
          chunk.data.length > Limits.chunkBytes || received + chunk.data.length > total) {
        throw this.refused(refuse('Malformed', `chunk at offset ${chunk.offset} (${chunk.data.length} bytes, total ${chunk.totalBytes}) does not continue the ${what} at ${received}`));
      }
      await pace?.(chunk.data.length);
      buffer.set(chunk.data, received);
      partial.received = received + chunk.data.length;
      this.options.metrics.payloadBytes.inc({ direction: 'received' }, chunk.data.length);
    }
    if (partial.buffer === undefined || partial.received !== partial.buffer.length) throw this.refused(refuse('Malformed', `${what} ended after ${partial.received} bytes`));
    return partial.buffer;
  }

  close(): void {
    this.rpc.close();
  }

  /** Runs `call` in a session; handshakes first if needed, and once more if the peer forgot it. */
  private async withSession<T>(call: () => Promise<T>): Promise<T> {
    if (this.session === undefined) await this.handshake();
    try {
      const result = await this.tracked(call);
      return result;
    } catch (error) {
      if (!(error instanceof RpcError) || error.reason !== 'UnknownSession') throw error;
      await this.handshake();
      return this.tracked(call);
    }
  }

  private async tracked<T>(call: () => Promise<T>): Promise<T> {
    try {
      const result = await call();
      this.succeeded();
      return result;
    } catch (error) {
      this.failed(error);
      throw error;
    }
  }

  private seal<Desc extends DescMessage>(schema: Desc, body: MessageInitShape<Desc>): Envelope {
    const session = this.session!;
    const sequence = session.nextOutbound++;
    return sealEnvelope(this.options.identity, {
      runId: this.options.runId, round: this.options.round?.() ?? 0n, schema, body, session: { id: session.id, sequence },
    });
  }

  private openResponse<Desc extends DescMessage>(envelope: Envelope | undefined, schema: Desc) {
    try {
      const opened = openEnvelope(envelope, {
        kind: 'session', runId: this.options.runId, schema,
        keyFor: (signer) => (this.serverKey.equals(signer) ? this.serverKeyObject : undefined),
      });
      const session = this.session!;
      if (!session.id.equals(opened.header.sessionId)) throw refuse('UnknownSession', 'the response belongs to another session');
      const problem = session.inbound.check(opened.header.sequence);
      if (problem !== undefined) throw refuse('Replay', problem);
      session.inbound.accept(opened.header.sequence);
      return opened;
    } catch (error) {
      if (error instanceof Refusal) throw this.refused(error);
      throw error;
    }
  }

  private refused(refusal: Refusal): Refusal {
    countRefusal(this.options.metrics, refusal.reason);
    return refusal;
  }
}
