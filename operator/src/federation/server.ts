import * as grpc from '@grpc/grpc-js';
import type { DescMessage, MessageInitShape } from '@bufbuild/protobuf';
import { EnvelopeSchema, type Envelope } from '../../../proto/gen/concord/v1/envelope_pb.js';
import {
  AnnouncementReceiptSchema, AnnouncementSchema, CheckpointQuerySchema, ManifestSetSchema, ContributionQuerySchema, FederationService, PeerStatusSchema, RelayedManifestSchema, StatusQuerySchema,
  type PeerStatus, type RelayedManifest,
} from '../../../proto/gen/concord/v1/federation_pb.js';
import { addService, encodeChunkMessage, listen, RpcError, shutdown, type ServiceImplementation } from '../../../proto/grpc/index.js';
import { countRefusal, type FederationMetrics } from '../metrics/federation.js';
import type { BlobStore } from './blob-store.js';
import { openEnvelope, sealEnvelope } from './envelope.js';
import { HandshakeResponder, type HandshakeResponderOptions } from './handshake-responder.js';
import type { Identity } from './identity.js';
import { Limits } from './limits.js';
import type { PeerDirectory } from './peers.js';
import { isRefusalReason, refuse, type RefusalReason } from './refusal.js';
import { SessionTable, type Session, type SessionTableOptions } from './sessions.js';

/** Manifest statements in one ManifestSet (federation.proto). */
export const MAX_MANIFESTS = 1024;

/** A message that passed every check, for logs and tests. */
export interface AcceptedMessage {
  method: string;
  peerName: string;
  round: bigint;
  sequence: bigint;
}

/** Who sent a round message (an authenticated session's peer) and for which round. */
export interface RoundMessageSource {
  peerName: string;
  peerKey: Buffer;
  round: bigint;
}

/** What the round driver does with round messages; the server has authenticated them. */
export interface RoundHandlers {
  /**
   * A peer announces contribution statements (envelopes without session, body
   * ContributionHeader, signed by their authors: its own or relayed). Returns the payload hashes
   * this coordinator wants to fetch.
   */
  announced(statements: readonly Envelope[], from: RoundMessageSource): Promise<Uint8Array[]> | Uint8Array[];
  /**
   * A peer sends a manifest statement of a round (its own, or passed on with relay signatures);
   * returns every manifest of that round this coordinator holds (its own first), or none yet.
   */
  manifestReceived(manifest: RelayedManifest, from: RoundMessageSource): Promise<RelayedManifest[]> | RelayedManifest[];
}

export interface FederationServerOptions {
  identity: Identity;
  runId: string;
  peers: PeerDirectory;
  metrics: FederationMetrics;
  /** What GetStatus answers. */
  status: () => MessageInitShape<typeof PeerStatusSchema>;
  /** Why a round is not accepted now (→ StaleRound), or undefined. Default: any round. */
  checkRound?: (round: bigint) => string | undefined;
  /** Contribution payloads by hash (FetchContribution). */
  contributions?: BlobStore;
  /** Checkpoints by model hash (FetchCheckpoint). */
  checkpoints?: BlobStore;
  /** Data per streamed chunk, 1 byte to 4 MiB (default 4 MiB: fewer, larger messages stream fastest). */
  chunkBytes?: number;
  /** The round driver; without it, Announce and ExchangeManifest are declined (UNIMPLEMENTED). */
  rounds?: RoundHandlers;
  onAccepted?: (message: AcceptedMessage) => void;
  onRefused?: (reason: RefusalReason, detail: string, method: string) => void;
  sessions?: SessionTableOptions;
  handshake?: HandshakeResponderOptions;
}

/**
 * The federation endpoint of one coordinator: handshakes, then session messages whose every
 * request is a signed envelope checked before its handler runs, and whose every response is
 * signed in turn. Refusals are counted in concord_rejected_messages_total{reason}.
 */
export class FederationServer {
  private readonly server: grpc.Server;
  private readonly sessions: SessionTable;
  private readonly handshake: HandshakeResponder;
  private readonly chunkBytes: number;

  constructor(private readonly options: FederationServerOptions) {
    this.chunkBytes = options.chunkBytes ?? Limits.chunkBytes;
    if (!(this.chunkBytes >= 1 && this.chunkBytes <= Limits.chunkBytes)) throw new Error(`chunkBytes must be 1 to ${Limits.chunkBytes}`);
    this.sessions = new SessionTable(options.sessions);
    this.handshake = new HandshakeResponder(options.identity, options.runId, options.peers, this.sessions, options.handshake);
    this.server = new grpc.Server({
      'grpc.max_receive_message_length': Limits.transportMessageBytes,
      'grpc.max_send_message_length': Limits.transportMessageBytes,
    });
    addService(this.server, FederationService, this.implementation(), {
      maxRequestBytes: Limits.unaryMessageBytes,
      // The adapter refuses undecodable and oversized requests itself (Malformed, TooLarge):
      // count those like the refusals thrown by Concord's checks.
      onError: (error, method) => {
        if (isRefusalReason(error.reason)) {
          countRefusal(options.metrics, error.reason);
          options.onRefused?.(error.reason, error.detail, method);
        }
      },
      onInternalError: (error, method) => console.error(`internal error in ${method}:`, error),
    });
  }

  /** Starts listening; returns the bound port (pass 0 for any free port). */
  listen(host: string, port: number): Promise<number> {
    return listen(this.server, host, port);
  }

  /** Stops accepting calls, lets running ones finish for up to `graceMs`, then cuts them. */
  async close(graceMs = 2000): Promise<void> {
    await shutdown(this.server, graceMs);
  }

  private implementation(): ServiceImplementation<(typeof FederationService)['method']> {
    const { options } = this;
    return {
      hello: async (request) => {
        try {
          return this.handshake.hello(request);
        } catch (error) {
          options.metrics.handshakes.inc({ role: 'server', result: 'refused' });
          throw error;
        }
      },
      finish: async (request) => {
        try {
          const { response } = this.handshake.finish(request);
          options.metrics.handshakes.inc({ role: 'server', result: 'ok' });
          return response;
        } catch (error) {
          options.metrics.handshakes.inc({ role: 'server', result: 'refused' });
          throw error;
        }
      },
      getStatus: async (request, context) => {
        const { session, round } = this.admit(request.envelope, StatusQuerySchema, context.method, false);
        return { envelope: this.reply(session, round, PeerStatusSchema, options.status()) };
      },
      // Round messages are authenticated here like any other; what they mean is the round
      // driver's to decide (options.rounds). Without one the coordinator takes no part in rounds.
      announce: async (request, context) => {
        const { session, round, body } = this.admit(request.envelope, AnnouncementSchema, context.method);
        if (body.contributions.length > Limits.announcedContributions) throw refuse('TooLarge', `announcement of ${body.contributions.length} contributions exceeds ${Limits.announcedContributions}`);
        const wanted = await this.rounds().announced(body.contributions, { peerName: session.peerName, peerKey: session.peerKey, round });
        return { envelope: this.reply(session, round, AnnouncementReceiptSchema, { wanted }) };
      },
      exchangeManifest: async (request, context) => {
        const { session, round, body } = this.admit(request.envelope, RelayedManifestSchema, context.method);
        if (body.relays.length > Limits.relaysPerManifest) throw refuse('TooLarge', `${body.relays.length} relay signatures exceed ${Limits.relaysPerManifest}`);
        const held = await this.rounds().manifestReceived(body, { peerName: session.peerName, peerKey: session.peerKey, round });
        return { envelope: this.reply(session, round, ManifestSetSchema, { manifests: held.slice(0, MAX_MANIFESTS) }) };
      },
      fetchContribution: (request, context) => {
        const { body } = this.admit(request.envelope, ContributionQuerySchema, context.method);
        return this.streamBlob(options.contributions, 'contribution', body.payloadHash, body.offset);
      },
      fetchCheckpoint: (request, context) => {
        const { body } = this.admit(request.envelope, CheckpointQuerySchema, context.method, false);
        return this.streamBlob(options.checkpoints, 'checkpoint', body.modelHash, body.offset);
      },
    };
  }

  private rounds(): RoundHandlers {
    if (this.options.rounds === undefined) throw new RpcError(grpc.status.UNIMPLEMENTED, 'this coordinator does not take part in rounds yet');
    return this.options.rounds;
  }

  /**
   * Every check of a session message, in order; returns the session and decoded body. `roundBound`
   * messages (announcements, manifests, payloads) must be for a round the receiver accepts now;
   * the status and checkpoints are how a peer that is behind catches up, so any round may ask.
   */
  private admit<Desc extends DescMessage>(envelope: Envelope | undefined, schema: Desc, method: string, roundBound = true) {
    const { options } = this;
    const opened = openEnvelope(envelope, {
      kind: 'session', runId: options.runId, schema, keyFor: options.peers.keyFor, ...(roundBound && options.checkRound ? { checkRound: options.checkRound } : {}),
    });
    const session = this.sessions.admit(opened.header.sessionId, opened.signer, opened.header.sequence);
    options.onAccepted?.({ method, peerName: session.peerName, round: opened.header.round, sequence: opened.header.sequence });
    return { session, round: opened.header.round, body: opened.body };
  }

  private reply<Desc extends DescMessage>(session: Session, round: bigint, schema: Desc, body: MessageInitShape<Desc>): Envelope {
    const sequence = session.nextOutbound++;
    return sealEnvelope(this.options.identity, { runId: this.options.runId, round, schema, body, session: { id: session.id, sequence } });
  }

  private async *streamBlob(store: BlobStore | undefined, what: string, hash: Uint8Array, offset: bigint) {
    if (hash.length !== Limits.hashBytes) throw refuse('Malformed', `${what} hash must be ${Limits.hashBytes} bytes, got ${hash.length}`);
    const blob = store?.get(hash);
    if (blob === undefined) throw new RpcError(grpc.status.NOT_FOUND, `no ${what} ${Buffer.from(hash).toString('hex')} here`);
    const { bytes } = blob;
    if (offset > BigInt(bytes.length)) throw refuse('Malformed', `offset ${offset} is beyond the ${bytes.length}-byte ${what}`);
    const chunk = this.chunkBytes;
    let at = Number(offset);
    if (at % chunk !== 0) {
      // A resumed transfer starts with the rest of a chunk, encoded for this call.
      const end = Math.min(bytes.length, (Math.floor(at / chunk) + 1) * chunk);
      this.options.metrics.payloadBytes.inc({ direction: 'sent' }, end - at);
      yield encodeChunkMessage(at, bytes.length, bytes.subarray(at, end));
      at = end;
    }
    // Whole chunks come from the blob's encoding (made once and shared by every peer that asks,
    // for a cached blob).
    for await (const message of blob.chunkMessages(chunk, at / chunk)) {
      this.options.metrics.payloadBytes.inc({ direction: 'sent' }, message.dataBytes);
      yield message;
    }
  }
}

export type { PeerStatus };
