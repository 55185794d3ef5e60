import { Registry } from 'prom-client';
import { RpcError } from '../../../proto/grpc/index.js';
import { PeerClient } from '../federation/client.js';
import type { Identity } from '../federation/identity.js';
import { PeerDirectory } from '../federation/peers.js';
import { FederationServer } from '../federation/server.js';
import type { Logger } from '../log.js';
import { createFederationMetrics, type FederationMetrics } from '../metrics/federation.js';
import { backoffDelayMs, sleep } from '../runtime/backoff.js';
import type { CoordinatorConfig, PeerConfig } from './config.js';

/**
 * A cluster's federation endpoint for one run. For now it authenticates its peers and exchanges
 * signed status messages with them; outer rounds build on this.
 */
export class Coordinator {
  readonly registry = new Registry();
  readonly metrics: FederationMetrics;
  private readonly server: FederationServer;
  private readonly clients = new Map<string, PeerClient>();
  private round = 0n;

  constructor(private readonly config: CoordinatorConfig, private readonly identity: Identity, private readonly log: Logger) {
    this.metrics = createFederationMetrics(this.registry);
    this.server = new FederationServer({
      identity,
      runId: config.runId,
      peers: new PeerDirectory(config.peers),
      metrics: this.metrics,
      status: () => ({ round: this.round, phase: 'Idle', note: `${config.name} has no rounds yet` }),
      onAccepted: (message) => log.info('message-accepted', { from: message.peerName, method: message.method, round: message.round, sequence: message.sequence }),
      onRefused: (reason, detail, method) => log.warn('message-refused', { reason, detail, method }),
    });
  }

  /** Starts the federation endpoint; returns `host:port`. */
  async start(): Promise<string> {
    const { host, port } = this.config.listen;
    const bound = await this.server.listen(host, port);
    const address = `${host}:${bound}`;
    this.log.info('listening', { address, runId: this.config.runId, peerId: this.identity.peerId, publicKey: this.identity.publicKey.toString('base64') });
    return address;
  }

  /**
   * Handshakes with every configured peer and exchanges one signed status message, retrying
   * with exponential backoff (0.1 s · 2^n, at most 5 s) until it succeeds or `signal` aborts.
   */
  async greetPeers(signal: AbortSignal): Promise<void> {
    await Promise.all(this.config.peers.map((peer) => this.greet(peer, signal)));
  }

  private async greet(peer: PeerConfig, signal: AbortSignal): Promise<void> {
    const client = new PeerClient({
      identity: this.identity, runId: this.config.runId, address: peer.endpoint, serverKey: peer.publicKey,
      metrics: this.metrics, round: () => this.round, grpc: { unaryTimeoutMs: 5_000 },
    });
    this.clients.set(peer.name, client);
    for (let attempt = 0; !signal.aborted; attempt++) {
      try {
        const started = performance.now();
        const sessionId = await client.handshake();
        this.log.info('handshake-ok', { peer: peer.name, sessionId, ms: round2(performance.now() - started) });
        const reply = await client.status(`hello from ${this.config.name}`);
        this.log.info('status-received', { peer: peer.name, round: reply.status.round, phase: reply.status.phase, sequence: reply.sequence, note: reply.status.note });
        return;
      } catch (error) {
        const refusal = error instanceof RpcError ? { code: error.codeName, reason: error.reason, detail: error.detail } : { detail: String(error) };
        this.log.warn('peer-unavailable', { peer: peer.name, attempt, ...refusal });
        await sleep(backoffDelayMs(attempt, 100, 5_000), signal).catch(() => undefined);
      }
    }
  }

  async stop(): Promise<void> {
    for (const client of this.clients.values()) client.close();
    await this.server.close();
  }
}

function round2(value: number): number {
  return Math.round(value * 100) / 100;
}
