// `npm start`: a real federation on this machine. Several clusters — each a coordinator process
// with its own Ed25519 identity and a CPU trainer process — train one small GPT on the Brown
// corpus in outer rounds over gRPC on loopback. One cluster attacks. Live progress shows each
// cluster's round, phase and loss; at the end a report (Markdown, loss-curve SVG, JSON) says
// what was accepted and rejected and why, who was banned with what evidence, how many bytes
// moved against uncompressed, and whether every honest cluster holds the same model.
//
// Options: --config TRAIN.yaml (trainer/configs/federation.yaml)  --clusters N (4)  --attack NAME|none (equivocate)  --rounds N (6)  --window SECONDS (15)
//          --grace SECONDS (8)  --steps N (inner steps per round at most; default: the window)
//          --eval-batches N (4: Gauntlet batches per side)  --eval-sample N (all: contributions scored per round)  --out DIR (out/federation)  --json FILE  --timeout SECONDS (330)
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parse, stringify } from 'yaml';
import { ModelState } from '../operator/src/coordinator/model-state.js';
import { encodePublicKey, generateIdentity, saveIdentity } from '../operator/src/federation/identity.js';
import { freePort } from '../operator/src/runtime/free-port.js';
import { TrainerThread } from '../trainer/src/engine/trainer-thread.js';
import { formatDuration, ProgressLine } from '../trainer/src/report/progress.js';
import { parseTrainConfigYaml } from '../trainer/src/train/config.js';
import { ATTACKS, isAttack } from './attacks.js';
import { fmt, report, type ClusterState, type LogLine, type RoundLine } from './federation-report.js';

const { values } = parseArgs({
  options: {
    clusters: { type: 'string', default: '4' }, attack: { type: 'string', default: 'equivocate' }, rounds: { type: 'string', default: '6' },
    window: { type: 'string', default: '15' }, grace: { type: 'string', default: '8' }, steps: { type: 'string' },
    out: { type: 'string', default: 'out/federation' }, config: { type: 'string', default: 'trainer/configs/federation.yaml' }, 'eval-batches': { type: 'string', default: '4' }, 'eval-sample': { type: 'string' }, kill: { type: 'string' }, json: { type: 'string' }, timeout: { type: 'string', default: '330' },
  },
});
const NAMES = ['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta', 'eta', 'theta'];
const RUN_ID = 'local/demo';
const entry = (path: string) => fileURLToPath(new URL(path, import.meta.url));
const COORDINATOR = entry('../operator/src/cmd/coordinator.js');
const MALICIOUS = entry('./malicious-coordinator.js');
const AGENT = entry('../trainer/src/cli/agent.js');
const IMPOSTOR = entry('./impostor.js');

function options() {
  const clusters = Number(values.clusters);
  const attackName = values.attack!;
  if (!Number.isInteger(clusters) || clusters < 2 || clusters > NAMES.length) throw new Error(`--clusters must be 2 to ${NAMES.length}`);
  if (attackName !== 'none' && !isAttack(attackName)) throw new Error(`--attack must be none or one of ${ATTACKS.join(', ')}`);
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds must be a positive integer');
  const steps = values.steps === undefined ? undefined : Number(values.steps);
  const kill = values.kill === undefined ? undefined : /^([a-z]+)@(\d+)$/.exec(values.kill);
  if (values.kill !== undefined && (kill === null || kill === undefined || !NAMES.slice(0, clusters - 1).includes(kill[1]!))) throw new Error('--kill must be NAME@ROUND with an honest cluster\'s name, e.g. beta@2');
  return {
    kill: kill ? { name: kill[1]!, round: Number(kill[2]) } : undefined, clusters, attack: attackName === 'none' ? undefined : attackName, rounds, window: Number(values.window), grace: Number(values.grace), steps };
}

const children: ChildProcess[] = [];

/** Starts a process; each JSON line of its stdout goes to `onLine`, anything else passes through. */
function run(args: string[], onLine: (line: LogLine) => void, started?: (child: ChildProcess) => void): Promise<number> {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  started?.(child);
  createInterface({ input: child.stdout! }).on('line', (text) => {
    try {
      onLine(JSON.parse(text) as LogLine);
    } catch {
      process.stdout.write(`${text}\n`);
    }
  });
  return new Promise((done) => child.on('exit', (code, signal) => done(code ?? (signal ? 128 : 1))));
}

async function main(): Promise<number> {
  const opts = options();
  const out = resolve(values.out!);
  await mkdir(out, { recursive: true });
  const work = await mkdtemp(join(tmpdir(), 'concord-federation-'));
  const started = Date.now();
  const names = NAMES.slice(0, opts.clusters);
  if (opts.attack !== undefined) names[names.length - 1] = 'mallory';
  const clusters = new Map<string, ClusterState>(names.map((name) => [name, { name, honest: !(opts.attack !== undefined && name === 'mallory'), peerId: '', round: 0, phase: 'Starting', loss: Number.NaN, rounds: [], finished: false, stopping: undefined }]));
  const progress = new ProgressLine(process.stdout, 5_000);
  const say = (who: string, text: string) => {
    progress.done();
    process.stdout.write(`[${who.padEnd(8)}] ${text}\n`);
  };
  const timer = setTimeout(() => {
    say('concord', `timed out after ${values.timeout} s`);
    for (const child of children) child.kill('SIGKILL');
    process.exit(1);
  }, Number(values.timeout) * 1000);

  try {
    process.stdout.write(`Concord local federation: ${opts.clusters} clusters${opts.attack ? `, mallory attacks (${opts.attack})` : ''}, ${opts.rounds} rounds of ${opts.window} s, run "${RUN_ID}"\n\n`);
    const identities = new Map(names.map((name) => [name, generateIdentity()]));
    const ports = new Map<string, { federation: number; trainers: number; metrics: number }>();
    for (const name of names) {
      await saveIdentity(join(work, `${name}.pem`), identities.get(name)!);
      ports.set(name, { federation: await freePort(), trainers: await freePort(), metrics: await freePort() });
    }
    const trainConfig = resolve(values.config!);
    const trainYaml = await readFile(trainConfig, 'utf8');
    const train = parseTrainConfigYaml(trainYaml);

    let killed = false;
    /** kill -9 of the coordinator named by --kill, while it trains that round, once that
     * round's base is in its checkpoint; restarted 3 s later. */
    const killIfDue = (state: ClusterState) => {
      if (killed || opts.kill?.name !== state.name || opts.kill.round !== state.round || state.phase !== 'Training') return;
      if (state.round > 0 && state.checkpointed !== state.round) return;
      killed = true;
      say(state.name, `kill -9 of its coordinator in round ${state.round} (while training)`);
      coordinators.get(state.name)!.kill('SIGKILL');
      setTimeout(() => {
        say(state.name, 'restarting its coordinator: it resumes from its checkpoint');
        exits.push(startCoordinator(state.name));
      }, 3000);
    };

    /** Every cluster's round summaries as logged (out/rounds.jsonl): what a study reads. */
    const roundLog: string[] = [];
    const onLine = (line: LogLine) => {
      const state = clusters.get(line.name);
      if (state === undefined) return;
      switch (line.event) {
        case 'listening':
          state.peerId = String(line.peerId);
          say(state.name, `listening on ${line.address}, peer id ${state.peerId.slice(0, 12)}…, public key ${line.publicKey}`);
          break;
        case 'phase':
          state.phase = String(line.phase);
          state.round = Number(line.round);
          killIfDue(state);
          break;
        case 'checkpointed':
          // The checkpoint is written while the round trains: the kill waits for it, so the
          // restarted coordinator has this round's base to resume from.
          state.checkpointed = Number(line.round);
          killIfDue(state);
          break;
        case 'resumed':
          state.resumedAt = Number(line.round);
          say(state.name, `resumed from its checkpoint at round ${line.round}`);
          break;
        case 'round-done': {
          const summary = line as unknown as RoundLine;
          roundLog.push(JSON.stringify(line));
          // A restarted coordinator reports rounds again from where it resumed.
          state.rounds = state.rounds.filter((r) => Number(r.round) !== Number(summary.round));
          state.rounds.push(summary);
          if (Number.isFinite(summary.loss)) state.loss = summary.loss;
          const accepted = summary.accepted.map((a) => `${nameOf(a.peerId)} ${(a.weight * 100).toFixed(0)}%`).join(', ') || 'none';
          const rejected = summary.rejected.map((r) => `${nameOf(r.peerId)}: ${r.reason}`).join(', ');
          say(state.name, `round ${summary.round}: loss ${fmt(summary.loss)}; applied ${accepted}${rejected ? `; rejected ${rejected}` : ''}; model ${summary.modelHash.slice(0, 10)}…${summary.agreed === false ? (summary.resynced ? ' (resynced to the majority)' : ' (DISAGREES)') : ''}`);
          break;
        }
        case 'peer-banned':
          say(state.name, `banned ${nameOf(String(line.peerId))}: ${line.reason} (${line.detail}); the two signed statements are kept as proof`);
          break;
        case 'resync-done':
          say(state.name, `resynced to the majority's model ${String(line.hash)}… from ${line.from}`);
          break;
        case 'rounds-finished':
          state.finished = true;
          break;
        case 'stopping':
          state.stopping = line;
          break;
      }
      const live = [...clusters.values()].map((c) => `${c.name} r${c.round} ${c.phase.padEnd(10)} ${fmt(c.loss)}`).join(' | ');
      progress.update(`${formatDuration((Date.now() - started) / 1000).padStart(5)}  ${live}`);
    };
    const nameOf = (peerId: string) => [...clusters.values()].find((c) => c.peerId === peerId)?.name ?? peerId.slice(0, 8);

    const impostor: Array<{ attempt: string; refused: boolean; reason: string }> = [];
    const exits: Array<Promise<number>> = [];
    const coordinators = new Map<string, ChildProcess>();
    const configFiles = new Map<string, string>();
    const startCoordinator = (name: string) => {
      const file = configFiles.get(name)!;
      const args = clusters.get(name)!.honest ? [COORDINATOR, '--config', file] : [MALICIOUS, '--config', file, '--attack', opts.attack!];
      return run(args, onLine, (child) => coordinators.set(name, child));
    };
    for (const name of names) {
      const state = clusters.get(name)!;
      const config = {
        name, runId: RUN_ID, identityFile: join(work, `${name}.pem`),
        listen: `127.0.0.1:${ports.get(name)!.federation}`, trainerListen: `127.0.0.1:${ports.get(name)!.trainers}`, metricsListen: `127.0.0.1:${ports.get(name)!.metrics}`, trainers: 1,
        checkpointDir: join(work, `${name}-checkpoints`),
        ...(opts.steps !== undefined ? { maxInnerSteps: opts.steps } : {}),
        peers: names.filter((p) => p !== name).map((p) => ({ name: p, endpoint: `127.0.0.1:${ports.get(p)!.federation}`, publicKey: encodePublicKey(identities.get(p)!.publicKey) })),
        // The trainers read the same file; the coordinators get it inline.
        train: parse(trainYaml) as unknown,
        rounds: {
          runSeed: 2026, rounds: opts.rounds, windowSeconds: opts.window, graceSeconds: opts.grace,
          compression: { chunk: 4096, topk: 64, bits: 2 }, validation: { batches: Number(values['eval-batches']), ...(values['eval-sample'] ? { sample: Number(values['eval-sample']) } : {}) },
        },
      };
      const file = join(work, `${name}.yaml`);
      await writeFile(file, stringify(config));
      configFiles.set(name, file);
      exits.push(startCoordinator(name));
      exits.push(run([AGENT, '--coordinator', `127.0.0.1:${ports.get(name)!.trainers}`, '--config', trainConfig, '--id', `${name}-trainer-0`], () => undefined));
    }

    // An impostor that knows every public fact of the run (run id, endpoints, keys) tries to get in
    // to alpha: with its own key, and claiming beta's. Both are refused, with a reason.
    while (clusters.get(names[0]!)!.peerId === '') await new Promise((done) => setTimeout(done, 100));
    await run([IMPOSTOR, '--run', RUN_ID, '--target', `127.0.0.1:${ports.get(names[0]!)!.federation}`,
      '--target-key', encodePublicKey(identities.get(names[0]!)!.publicKey), '--claim-key', encodePublicKey(identities.get(names[1]!)!.publicKey)], (line) => {
      if (line.event !== 'attempt') return;
      impostor.push({ attempt: String(line.attempt), refused: line.refused === true, reason: String(line.reason ?? '') });
      say('impostor', `${line.attempt === 'own-key' ? 'with its own key' : `claiming ${names[1]}'s public key`}: ${line.refused === true ? `refused by ${names[0]}, ${line.code} ${line.reason}` : 'NOT REFUSED'}`);
    });

    while (![...clusters.values()].filter((c) => c.honest).every((c) => c.finished)) await new Promise((done) => setTimeout(done, 200));
    // What Prometheus would scrape from each coordinator, kept with the report.
    await mkdir(join(out, 'metrics'), { recursive: true });
    for (const name of names) {
      const response = await fetch(`http://127.0.0.1:${ports.get(name)!.metrics}/metrics`);
      await writeFile(join(out, 'metrics', `${name}.prom`), await response.text());
    }
    for (const child of children) child.kill('SIGTERM');
    await Promise.all(exits);
    await writeFile(join(out, 'rounds.jsonl'), roundLog.map((l) => `${l}\n`).join(''));
    progress.done();

    // Validation loss of the round-0 model and of the final one (an honest cluster's checkpoint).
    const firstHonest = [...clusters.values()].find((c) => c.honest)!;
    const thread = await TrainerThread.start(train);
    let validation: { initial: number; final: number };
    try {
      const initial = ModelState.initial(RUN_ID, train.model, train.outer, 2026n);
      await thread.loadParams(initial.params.slice());
      const before = await thread.evaluate();
      const resumed = await ModelState.load(join(work, `${firstHonest.name}-checkpoints`), RUN_ID, train.model, train.outer);
      await thread.loadParams(resumed!.state.params.slice());
      validation = { initial: before, final: await thread.evaluate() };
    } finally {
      await thread.close();
    }
    const outcome = { ...(await report(out, [...clusters.values()], opts, validation, nameOf, (Date.now() - started) / 1000)), impostor };
    if (values.json) await writeFile(values.json, JSON.stringify(outcome, null, 2));
    return outcome.honestAgree && outcome.complete && impostor.length === 2 && impostor.every((a) => a.refused) ? 0 : 1;
  } finally {
    clearTimeout(timer);
    await rm(work, { recursive: true, force: true });
  }
}

process.exitCode = await main();
