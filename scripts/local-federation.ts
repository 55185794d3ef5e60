// `npm start`: a real federation on this machine. Two clusters (coordinator processes, each with
// its own Ed25519 identity) authenticate each other over gRPC on loopback and exchange one signed
// message each way; an impostor that knows every public fact of the run tries to get in and is
// refused. Everything printed comes from the processes' own logs.
//
// Options: --json FILE writes the outcome as JSON (used by the tests); --timeout SECONDS (60).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { encodePublicKey, generateIdentity, saveIdentity, type Identity } from '../operator/src/federation/identity.js';

const { values } = parseArgs({ options: { json: { type: 'string' }, timeout: { type: 'string', default: '60' } } });
const RUN_ID = 'local/demo';
const CLUSTERS = ['alpha', 'beta'] as const;
const entry = (path: string) => fileURLToPath(new URL(path, import.meta.url));
const COORDINATOR = entry('../operator/src/cmd/coordinator.js');
const IMPOSTOR = entry('./impostor.js');

type LogLine = Record<string, unknown> & { event: string; name: string };

interface Outcome {
  clusters: Record<string, { address: string; peerId: string; greeted: string[]; acceptedFrom: string[]; rejectedMessages: Record<string, number> }>;
  impostor: Array<{ attempt: string; refused: boolean; code?: string; reason?: string; detail?: string }>;
}

const outcome: Outcome = { clusters: {}, impostor: [] };
const children: ChildProcess[] = [];
const say = (who: string, text: string) => process.stdout.write(`[${who.padEnd(8)}] ${text}\n`);
const short = (hex: unknown) => `${String(hex).slice(0, 12)}…`;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

/** Starts a process and hands each JSON log line to `onLine`; other output passes through. */
function run(args: string[], onLine: (line: LogLine) => void): Promise<number> {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  createInterface({ input: child.stdout! }).on('line', (text) => {
    try {
      onLine(JSON.parse(text) as LogLine);
    } catch {
      process.stdout.write(`${text}\n`);
    }
  });
  return new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1))));
}

function describeCluster(line: LogLine): void {
  const name = line.name;
  const state = (outcome.clusters[name] ??= { address: '', peerId: '', greeted: [], acceptedFrom: [], rejectedMessages: {} });
  switch (line.event) {
    case 'listening':
      state.address = String(line.address);
      state.peerId = String(line.peerId);
      say(name, `listening on ${line.address}, peer id ${short(line.peerId)}, public key ${line.publicKey}`);
      break;
    case 'peer-unavailable':
      say(name, `${line.peer} not reachable yet (attempt ${Number(line.attempt) + 1}: ${line.reason ?? line.code}); retrying`);
      break;
    case 'handshake-ok':
      say(name, `handshake with ${line.peer}: both signatures verified in ${line.ms} ms, session ${short(line.sessionId)}`);
      break;
    case 'status-received':
      state.greeted.push(String(line.peer));
      say(name, `→ ${line.peer}: signed status request; ← signed reply verified (seq ${line.sequence}): round ${line.round}, phase ${line.phase}, "${line.note}"`);
      break;
    case 'message-accepted':
      state.acceptedFrom.push(String(line.from));
      say(name, `← ${line.from}: ${String(line.method).split('/').pop()} accepted (signature, session, seq ${line.sequence}, round ${line.round})`);
      break;
    case 'message-refused':
      say(name, `refused a message: ${line.reason} (${line.detail})`);
      break;
    case 'stopping':
      state.rejectedMessages = line.rejectedMessages as Record<string, number>;
      break;
  }
}

function describeImpostor(line: LogLine): void {
  if (line.event !== 'attempt') return;
  const attempt = line as unknown as Outcome['impostor'][number];
  outcome.impostor.push({ attempt: attempt.attempt, refused: attempt.refused, code: attempt.code, reason: attempt.reason, detail: attempt.detail });
  const how = attempt.attempt === 'own-key' ? 'with its own key' : "claiming beta's public key";
  say('impostor', attempt.refused ? `${how}: refused, ${attempt.code} ${attempt.reason}: ${attempt.detail}` : `${how}: NOT REFUSED`);
}

function allGreeted(): boolean {
  return CLUSTERS.every((name) => {
    const state = outcome.clusters[name];
    const others = CLUSTERS.filter((other) => other !== name);
    return state !== undefined && others.every((o) => state.greeted.includes(o) && state.acceptedFrom.includes(o));
  });
}

async function main(): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'concord-local-'));
  const deadline = setTimeout(() => {
    say('concord', `timed out after ${values.timeout} s`);
    for (const child of children) child.kill('SIGKILL');
    process.exit(1);
  }, Number(values.timeout) * 1000);
  try {
    process.stdout.write(`Concord local federation: ${CLUSTERS.length} clusters and an impostor on loopback, run "${RUN_ID}"\n\n`);
    // Each owner makes its identity; public keys are exchanged out of band (here: by this script).
    const identities = new Map<string, Identity>();
    const ports = new Map<string, number>();
    for (const name of CLUSTERS) {
      const identity = generateIdentity();
      identities.set(name, identity);
      await saveIdentity(join(dir, `${name}.pem`), identity);
      ports.set(name, await freePort());
    }
    const exits = CLUSTERS.map(async (name) => {
      const config = {
        name, runId: RUN_ID, identityFile: join(dir, `${name}.pem`), listen: `127.0.0.1:${ports.get(name)}`,
        peers: CLUSTERS.filter((p) => p !== name).map((p) => ({ name: p, endpoint: `127.0.0.1:${ports.get(p)}`, publicKey: encodePublicKey(identities.get(p)!.publicKey) })),
      };
      const file = join(dir, `${name}.yaml`);
      await writeFile(file, stringify(config));
      return run([COORDINATOR, '--config', file], describeCluster);
    });

    while (!allGreeted()) await new Promise((resolve) => setTimeout(resolve, 50));
    await run([IMPOSTOR, '--run', RUN_ID, '--target', `127.0.0.1:${ports.get('alpha')}`,
      '--target-key', encodePublicKey(identities.get('alpha')!.publicKey), '--claim-key', encodePublicKey(identities.get('beta')!.publicKey)], describeImpostor);

    for (const child of children) child.kill('SIGTERM');
    const codes = await Promise.all(exits);
    report();
    if (values.json) await writeFile(values.json, JSON.stringify(outcome, null, 2));
    const impostorKeptOut = outcome.impostor.length === 2 && outcome.impostor.every((a) => a.refused);
    return codes.every((code) => code === 0) && impostorKeptOut ? 0 : 1;
  } finally {
    clearTimeout(deadline);
    await rm(dir, { recursive: true, force: true });
  }
}

function report(): void {
  process.stdout.write('\nReport\n');
  for (const name of CLUSTERS) {
    const state = outcome.clusters[name]!;
    const rejected = Object.entries(state.rejectedMessages).map(([reason, n]) => `${reason} ${n}`).join(', ') || 'none';
    process.stdout.write(`  ${name.padEnd(8)} peer ${short(state.peerId)}  talked to: ${state.greeted.join(', ')}  refused messages: ${rejected}\n`);
  }
  for (const attempt of outcome.impostor) {
    process.stdout.write(`  impostor  ${attempt.attempt.padEnd(12)} ${attempt.refused ? `refused (${attempt.reason})` : 'GOT IN'}\n`);
  }
  process.stdout.write('\nNext: outer rounds, contributions and validation (see docs/protocol.md).\n');
}

process.exitCode = await main();
