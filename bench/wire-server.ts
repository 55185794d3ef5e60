// The far side of `bench wire`'s streaming test, in its own process as a peer cluster would be:
// one FederationServer per chunk size (all serving the same 64 MiB random payload from one
// MemoryBlobStore) and a raw TCP server that writes the same bytes to whoever connects.
// Started by bench/wire.ts with an IPC channel; it answers with one ReadyMessage and exits
// when the channel closes, so it cannot outlive the benchmark even if the parent is killed.
import { randomFillSync } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { Registry } from 'prom-client';
import { MemoryBlobStore } from '../operator/src/federation/blob-store.js';
import { generateIdentity } from '../operator/src/federation/identity.js';
import { PeerDirectory } from '../operator/src/federation/peers.js';
import { FederationServer } from '../operator/src/federation/server.js';
import { createFederationMetrics } from '../operator/src/metrics/federation.js';

/** Passed as the one command-line argument, as JSON (nothing in it is secret). */
export interface WireServerConfig {
  runId: string;
  /** Base64 of the benchmark client's public key: the only peer allowed in. */
  clientKey: string;
  payloadBytes: number;
  chunkBytes: number[];
}

/** Sent once over IPC when everything listens. */
export type ReadyMessage =
  | { ready: true; serverKey: string; payloadHash: string; grpcPorts: number[]; tcpPort: number }
  | { ready: false; error: string };

const send = (message: ReadyMessage) => process.send?.(message);

async function serve(config: WireServerConfig): Promise<() => Promise<void>> {
  const identity = generateIdentity();
  // Random bytes, so that nothing on the way (none today) could compress them.
  const payload = randomFillSync(Buffer.allocUnsafe(config.payloadBytes));
  const store = new MemoryBlobStore();
  const payloadHash = store.put(payload);
  const peers = new PeerDirectory([{ name: 'bench-client', publicKey: Buffer.from(config.clientKey, 'base64') }]);
  const metrics = createFederationMetrics(new Registry()); // one set shared: names may be registered once

  const servers = config.chunkBytes.map((chunkBytes) => new FederationServer({
    identity, runId: config.runId, peers, metrics, contributions: store, chunkBytes,
    status: () => ({}), // GetStatus is not part of this benchmark
  }));
  const grpcPorts = await Promise.all(servers.map((server) => server.listen('127.0.0.1', 0)));

  // Raw baseline: the whole payload in one write; the kernel and libuv split it as they like.
  const sockets = new Set<Socket>();
  const tcp: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {}); // a client that goes away early is not our problem
    socket.on('close', () => sockets.delete(socket));
    socket.end(payload);
  });
  await new Promise<void>((resolve, reject) => tcp.once('error', reject).listen(0, '127.0.0.1', resolve));
  const address = tcp.address();
  if (address === null || typeof address === 'string') throw new Error('raw TCP server has no port');

  send({ ready: true, serverKey: identity.publicKey.toString('base64'), payloadHash: payloadHash.toString('hex'), grpcPorts, tcpPort: address.port });
  return async () => {
    for (const socket of sockets) socket.destroy();
    tcp.close();
    await Promise.all(servers.map((server) => server.close(100)));
  };
}

try {
  const config = JSON.parse(process.argv[2] ?? '') as WireServerConfig;
  const stop = await serve(config);
  const quit = () => void stop().finally(() => process.exit(0));
  if (process.connected) process.once('disconnect', quit);
  else quit(); // the parent left while we were starting
} catch (error) {
  send({ ready: false, error: error instanceof Error ? error.stack ?? error.message : String(error) });
  process.exit(1);
}
