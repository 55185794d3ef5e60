import { Registry } from 'prom-client';
import { createFederationMetrics, type FederationMetrics } from '../../operator/src/metrics/federation.js';
import { PeerClient } from '../../operator/src/federation/client.js';
import { generateIdentity, type Identity } from '../../operator/src/federation/identity.js';
import { PeerDirectory } from '../../operator/src/federation/peers.js';
import { FederationServer, type AcceptedMessage, type FederationServerOptions } from '../../operator/src/federation/server.js';
import { MemoryBlobStore } from '../../operator/src/federation/blob-store.js';
import { countsOf } from '../../operator/src/metrics/read.js';

export const RUN_ID = 'team-a/gpt-small';

/** One coordinator's federation endpoint on loopback, with its own metrics registry. */
export interface TestServer {
  identity: Identity;
  server: FederationServer;
  address: string;
  registry: Registry;
  metrics: FederationMetrics;
  accepted: AcceptedMessage[];
  contributions: MemoryBlobStore;
  /** concord_rejected_messages_total by reason. */
  rejected(): Promise<Record<string, number>>;
  close(): Promise<void>;
}

export async function startServer(peers: Identity[], options: Partial<FederationServerOptions> = {}): Promise<TestServer> {
  const identity = generateIdentity();
  const registry = new Registry();
  const metrics = createFederationMetrics(registry);
  const accepted: AcceptedMessage[] = [];
  const contributions = new MemoryBlobStore();
  const server = new FederationServer({
    identity,
    runId: RUN_ID,
    peers: new PeerDirectory(peers.map((p, i) => ({ name: `peer-${i}`, publicKey: p.publicKey }))),
    metrics,
    status: () => ({ round: 4n, phase: 'Training', modelHash: Buffer.alloc(32, 1) }),
    checkRound: (round) => (round + 1n < 4n || round > 5n ? `round ${round} is outside 3..5` : undefined),
    contributions,
    onAccepted: (message) => accepted.push(message),
    ...options,
  });
  const port = await server.listen('127.0.0.1', 0);
  return {
    identity, server, registry, metrics, accepted, contributions,
    address: `127.0.0.1:${port}`,
    rejected: () => countsOf(registry, 'concord_rejected_messages_total', 'reason'),
    close: () => server.close(100),
  };
}

export function connect(server: TestServer, identity: Identity, options: { runId?: string; round?: bigint; serverKey?: Uint8Array; datasetHash?: Uint8Array } = {}): PeerClient {
  const registry = new Registry();
  return new PeerClient({
    identity,
    runId: options.runId ?? RUN_ID,
    address: server.address,
    serverKey: options.serverKey ?? server.identity.publicKey,
    metrics: createFederationMetrics(registry),
    round: () => options.round ?? 4n,
    ...(options.datasetHash ? { datasetHash: options.datasetHash } : {}),
  });
}
