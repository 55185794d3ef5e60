// `npm run bench -- wire [--runs N] [--seconds S] [--json FILE]`
//
// (a) Envelopes: sealEnvelope + openEnvelope of a small StatusQuery per second, against bare
//     Ed25519 sign + verify of the same signed bytes with node:crypto.
// (b) Streaming: a 64 MiB payload served by a FederationServer in 1, 2 and 4 MiB messages and
//     pulled through the gRPC adapter, (1) counting bytes only and (2) with
//     PeerClient.fetchContribution (chunks checked, reassembled, SHA-256 compared), against raw
//     TCP on loopback moving the same bytes. The servers run in a child process, as a peer
//     cluster would.
//
// The machine is shared and noisy, so every figure has its baseline measured in the same run,
// interleaved with it, and the result that matters is the ratio.
import { spawn, type ChildProcess } from 'node:child_process';
import { createPublicKey, randomBytes, sign, verify } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Registry } from 'prom-client';
import { ContributionQuerySchema, FederationService, StatusQuerySchema } from '../proto/gen/concord/v1/federation_pb.js';
import { createClient } from '../proto/grpc/index.js';
import { PeerClient } from '../operator/src/federation/client.js';
import { envelopeSigningBytes, openEnvelope, sealEnvelope } from '../operator/src/federation/envelope.js';
import { generateIdentity, type Identity } from '../operator/src/federation/identity.js';
import { Limits } from '../operator/src/federation/limits.js';
import { PeerDirectory } from '../operator/src/federation/peers.js';
import { createFederationMetrics } from '../operator/src/metrics/federation.js';
import { fmt, median, progress, progressDone, table } from './report.js';
import type { ReadyMessage, WireServerConfig } from './wire-server.js';

const MiB = 1024 * 1024;
const PAYLOAD_BYTES = 64 * MiB;
const CHUNK_BYTES = [1 * MiB, 2 * MiB, 4 * MiB];
/** Streaming throughput over raw TCP that the adapter should reach (issue acceptance). */
const GOAL = 0.5;
const RUN_ID = 'bench/wire';

const USAGE = 'usage: npm run bench -- wire [--runs N (≥ 1, default 5)] [--seconds S (per envelope test, default 2)] [--json FILE]';

export async function main(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: { runs: { type: 'string', default: '5' }, seconds: { type: 'string', default: '2' }, json: { type: 'string' } },
    }));
  } catch (error) {
    console.error(`${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  const runs = Number(values.runs);
  const seconds = Number(values.seconds);
  if (!Number.isInteger(runs) || runs < 1 || !(seconds > 0)) {
    console.error(USAGE);
    return 2;
  }

  const envelopes = measureEnvelopes(seconds);
  console.log(envelopeTable(envelopes));
  const streaming = await measureStreaming(runs);
  console.log(`\n${streamingTable(streaming, runs)}`);

  if (values.json !== undefined) {
    const machine = { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', node: process.version, platform: process.platform };
    writeFileSync(values.json, `${JSON.stringify({ benchmark: 'wire', date: new Date().toISOString(), machine, envelopes, streaming }, null, 2)}\n`);
    console.error(`results written to ${values.json}`);
  }
  return 0;
}

// ---- (a) envelopes ---------------------------------------------------------------------------

interface EnvelopeResult {
  signedBytes: number;
  envelopesPerSecond: number;
  rawSignVerifyPerSecond: number;
  ratio: number;
}

function measureEnvelopes(seconds: number): EnvelopeResult {
  const identity = generateIdentity();
  const peers = new PeerDirectory([{ name: 'bench', publicKey: identity.publicKey }]);
  const session = { id: randomBytes(16), sequence: 0n };
  const body = { note: 'wire benchmark' };
  const open = { kind: 'session', runId: RUN_ID, schema: StatusQuerySchema, keyFor: peers.keyFor } as const;

  const envelope = (): void => {
    const sealed = sealEnvelope(identity, { runId: RUN_ID, round: 1n, schema: StatusQuerySchema, body, session: { id: session.id, sequence: ++session.sequence } });
    openEnvelope(sealed, open);
  };
  // The baseline signs exactly the bytes an envelope signs, with a KeyObject as PeerDirectory holds.
  const sample = sealEnvelope(identity, { runId: RUN_ID, round: 1n, schema: StatusQuerySchema, body, session: { id: session.id, sequence: 1n } });
  const signed = envelopeSigningBytes(sample.header, sample.body);
  const publicKey = createPublicKey(identity.privateKey);
  const raw = (): void => {
    if (!verify(null, signed, publicKey, sign(null, signed, identity.privateKey))) throw new Error('raw Ed25519 signature does not verify');
  };

  // Alternate short slices of both, so that a noisy neighbour hits both alike.
  const slices = 4;
  const sliceMs = (seconds * 1000) / slices;
  timed(envelope, 100);
  timed(raw, 100);
  const totals = { envelope: { ops: 0, ms: 0 }, raw: { ops: 0, ms: 0 } };
  for (let slice = 1; slice <= slices; slice++) {
    progress(`envelopes: slice ${slice}/${slices}`);
    add(totals.envelope, timed(envelope, sliceMs));
    add(totals.raw, timed(raw, sliceMs));
  }
  progressDone();
  const envelopesPerSecond = (totals.envelope.ops * 1000) / totals.envelope.ms;
  const rawSignVerifyPerSecond = (totals.raw.ops * 1000) / totals.raw.ms;
  return { signedBytes: signed.length, envelopesPerSecond, rawSignVerifyPerSecond, ratio: envelopesPerSecond / rawSignVerifyPerSecond };
}

/** Runs `op` in batches for at least `ms`; returns how many ran and how long it took. */
function timed(op: () => void, ms: number): { ops: number; ms: number } {
  const start = performance.now();
  let ops = 0;
  let now = start;
  do {
    for (let i = 0; i < 16; i++) op();
    ops += 16;
    now = performance.now();
  } while (now - start < ms);
  return { ops, ms: now - start };
}

function add(total: { ops: number; ms: number }, part: { ops: number; ms: number }): void {
  total.ops += part.ops;
  total.ms += part.ms;
}

function envelopeTable(result: EnvelopeResult): string {
  return [
    `wire (a): envelopes of a StatusQuery, ${result.signedBytes} signed bytes`,
    '',
    table(['what', 'per second'], [
      ['Ed25519 sign + verify, node:crypto (baseline)', fmt(result.rawSignVerifyPerSecond, 0)],
      ['sealEnvelope + openEnvelope', fmt(result.envelopesPerSecond, 0)],
      ['ratio envelope / baseline', fmt(result.ratio, 2)],
    ]),
  ].join('\n');
}

// ---- (b) streaming ---------------------------------------------------------------------------

/** What a gRPC sample measured: the bare stream, or the coordinator's whole fetch. */
type GrpcPath = 'adapter' | 'fetchContribution';

interface StreamingResult {
  payloadBytes: number;
  runs: number;
  raw: { mibPerSecond: number; samples: number[] };
  grpc: { path: GrpcPath; chunkBytes: number; mibPerSecond: number; samples: number[]; ratio: number; goalMet: boolean }[];
}

async function measureStreaming(runs: number): Promise<StreamingResult> {
  const identity = generateIdentity();
  const server = await startServer({ runId: RUN_ID, clientKey: identity.publicKey.toString('base64'), payloadBytes: PAYLOAD_BYTES, chunkBytes: CHUNK_BYTES });
  const closers: (() => void)[] = [];
  try {
    const { ready } = server;
    const payloadHash = Buffer.from(ready.payloadHash, 'hex');
    const serverKey = Buffer.from(ready.serverKey, 'base64');
    const metrics = createFederationMetrics(new Registry());
    const peerClient = (address: string) => {
      // Default gRPC options on purpose: what this measures is what a coordinator gets.
      const client = new PeerClient({ identity, runId: RUN_ID, address, serverKey, metrics });
      closers.push(() => client.close());
      return client;
    };

    // Per chunk size two gRPC paths against the same server:
    // - fetchContribution: PeerClient as a coordinator uses it (signed request, chunks checked
    //   and reassembled into one Buffer, SHA-256 compared);
    // - adapter: the same RPC through createClient, only counting bytes, which separates the
    //   transport and the adapter from the client's reassembly and hashing.
    const paths: { label: string; path?: GrpcPath; chunkBytes?: number; measure: () => Promise<number> }[] = [
      { label: 'raw TCP', measure: () => rawFetch(ready.tcpPort, PAYLOAD_BYTES) },
    ];
    for (const [i, chunkBytes] of CHUNK_BYTES.entries()) {
      const address = `127.0.0.1:${ready.grpcPorts[i]!}`;
      const fetcher = peerClient(address);
      await fetcher.handshake();
      const adapterSession = await peerClient(address).handshake();
      const adapter = adapterStream(identity, address, adapterSession, closers);
      const label = `streaming ${chunkBytes / MiB} MiB chunks`;
      paths.push(
        { label: `${label} (adapter)`, path: 'adapter', chunkBytes, measure: () => adapter(payloadHash) },
        { label: `${label} (fetchContribution)`, path: 'fetchContribution', chunkBytes, measure: () => grpcFetch(fetcher, payloadHash, PAYLOAD_BYTES) },
      );
    }

    // One sample per path and run, interleaved (raw, 1 MiB, …, 4 MiB, raw, …), so that a noisy
    // neighbour slows all paths alike instead of one of them.
    const samples = paths.map(() => [] as number[]);
    for (let run = 0; run <= runs; run++) {
      for (const [i, path] of paths.entries()) {
        progress(run === 0 ? `${path.label}: warm-up` : `${path.label}: run ${run}/${runs}`);
        const ms = await path.measure();
        if (run > 0) samples[i]!.push(PAYLOAD_BYTES / MiB / (ms / 1000));
      }
    }
    progressDone();

    const raw = { mibPerSecond: median(samples[0]!), samples: samples[0]! };
    const grpc = paths.slice(1).map(({ path, chunkBytes }, i) => {
      const mibPerSecond = median(samples[i + 1]!);
      const ratio = mibPerSecond / raw.mibPerSecond;
      return { path: path!, chunkBytes: chunkBytes!, mibPerSecond, samples: samples[i + 1]!, ratio, goalMet: ratio >= GOAL };
    });
    return { payloadBytes: PAYLOAD_BYTES, runs, raw, grpc };
  } finally {
    for (const close of closers) close();
    server.stop();
  }
}

/** One fetchContribution of the whole payload; returns ms. */
async function grpcFetch(client: PeerClient, payloadHash: Buffer, payloadBytes: number): Promise<number> {
  const start = performance.now();
  const payload = await client.fetchContribution(payloadHash, payloadBytes);
  const ms = performance.now() - start;
  if (payload.length !== payloadBytes) throw new Error(`fetchContribution returned ${payload.length} bytes, expected ${payloadBytes}`);
  return ms;
}

/**
 * The FetchContribution RPC through the adapter alone, in a session of its own (opened by a
 * PeerClient that is not used afterwards, so this side owns the sequence numbers). Returns a
 * function that streams the payload once, counting bytes, and returns ms.
 */
function adapterStream(identity: Identity, address: string, sessionId: Buffer, closers: (() => void)[]): (payloadHash: Buffer) => Promise<number> {
  const rpc = createClient(FederationService, address, { maxResponseBytes: Limits.transportMessageBytes });
  closers.push(() => rpc.close());
  let sequence = 0n;
  return async (payloadHash: Buffer): Promise<number> => {
    const start = performance.now();
    const envelope = sealEnvelope(identity, {
      runId: RUN_ID, round: 0n, schema: ContributionQuerySchema, body: { payloadHash, offset: 0n }, session: { id: sessionId, sequence: ++sequence },
    });
    let received = 0;
    for await (const chunk of rpc.fetchContribution({ envelope })) received += chunk.data.length;
    const ms = performance.now() - start;
    if (received !== PAYLOAD_BYTES) throw new Error(`the adapter stream delivered ${received} bytes, expected ${PAYLOAD_BYTES}`);
    return ms;
  };
}

/**
 * The baseline: connect, read until the server closes, count. Nothing is copied or hashed, so
 * this is the most loopback TCP between two Node processes does with plain 'data' events.
 */
function rawFetch(port: number, payloadBytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    let received = 0;
    const socket = connect(port, '127.0.0.1');
    socket.on('data', (chunk: Buffer) => { received += chunk.length; });
    socket.on('error', reject);
    socket.on('end', () => {
      const ms = performance.now() - start;
      socket.destroy();
      if (received === payloadBytes) resolve(ms);
      else reject(new Error(`raw TCP delivered ${received} bytes, expected ${payloadBytes}`));
    });
  });
}

/** Starts bench/wire-server.js as a child process and waits until it listens. */
async function startServer(config: WireServerConfig): Promise<{ ready: Extract<ReadyMessage, { ready: true }>; stop: () => void }> {
  const script = fileURLToPath(new URL('./wire-server.js', import.meta.url));
  const child: ChildProcess = spawn(process.execPath, [script, JSON.stringify(config)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  // Whatever happens to this process from here on (error, early exit), the child goes with it.
  const stop = () => {
    process.off('exit', stop);
    if (child.exitCode === null && child.signalCode === null) child.kill();
  };
  process.on('exit', stop);
  try {
    const message = await new Promise<ReadyMessage>((resolve, reject) => {
      child.once('message', (m) => resolve(m as ReadyMessage));
      child.once('error', reject);
      child.once('exit', (code, signal) => reject(new Error(`wire-server exited (${signal ?? code}) before it was ready`)));
    });
    if (!message.ready) throw new Error(`wire-server failed: ${message.error}`);
    return { ready: message, stop };
  } catch (error) {
    stop();
    throw error;
  }
}

function streamingTable(result: StreamingResult, runs: number): string {
  const rows = [
    ['raw TCP, node:net (baseline)', fmt(result.raw.mibPerSecond, 0), '1.00', ''],
    ...result.grpc.map((g) => [
      g.path === 'adapter' ? `gRPC adapter stream, ${g.chunkBytes / MiB} MiB chunks (bytes counted)` : `PeerClient.fetchContribution, ${g.chunkBytes / MiB} MiB chunks (+ reassembly, SHA-256)`,
      fmt(g.mibPerSecond, 0), fmt(g.ratio, 2), g.goalMet ? 'PASS' : 'MISS',
    ]),
  ];
  return [
    `wire (b): streaming ${result.payloadBytes / MiB} MiB across processes on loopback, median of ${runs} runs after 1 warm-up`,
    '',
    table(['path', 'MiB/s', 'ratio to raw', `goal ≥ ${GOAL}`], rows),
  ].join('\n');
}
