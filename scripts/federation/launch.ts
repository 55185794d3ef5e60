// One local federation on this machine, as `npm start` and every arm of `npm run study --
// federation` run it: each cluster a coordinator process with its own Ed25519 identity and a CPU
// trainer process, talking gRPC on loopback. Honest clusters run the real coordinator entry point;
// an attacker runs the same coordinator with one of scripts/attacks.ts; the members of a
// coalition run in one attacker process, so that they coordinate as one adversary would. The
// launcher starts the processes, follows their JSON logs into per-cluster state, optionally kills
// and restarts one coordinator, lets an impostor try to get in, and at the end measures the
// validation loss of the round-0 model and of an honest cluster's final checkpoint. It prints
// nothing itself: what people see goes through `ui`.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, createPrivateKey } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { ModelState } from '../../operator/src/coordinator/model-state.js';
import { encodePublicKey, generateIdentity, identityFromPrivateKey, saveIdentity, type Identity } from '../../operator/src/federation/identity.js';
import { freePort } from '../../operator/src/runtime/free-port.js';
import { TrainerThread } from '../../trainer/src/engine/trainer-thread.js';
import { parseTrainConfigYaml, type TrainConfig } from '../../trainer/src/train/config.js';
import type { AttackName } from '../attacks.js';
import type { ClusterState, LogLine, RoundLine } from './report.js';

export interface ClusterPlan {
  name: string;
  /** The attack this cluster makes (scripts/attacks.ts); none: it is honest. */
  attack?: AttackName;
  /** A member of the coalition (scripts/attacks.ts, coalition()) that targets this honest cluster. */
  coalition?: { target: string; drift: boolean };
}

export interface LaunchOptions {
  clusters: ClusterPlan[];
  runId: string;
  runSeed: number;
  rounds: number;
  windowSeconds: number;
  graceSeconds: number;
  /** Inner steps per round at most (default: train until the window closes). */
  steps?: number;
  validation: { batches: number; sample?: number };
  compression: { chunk: number; topk: number; bits: number };
  /** The trainers' config file (YAML, trainer/src/train/config.ts). */
  trainConfigFile: string;
  /** Each cluster's key (default: a fresh one): two launches with the same keys train on the same data. */
  identity?: (name: string) => Identity;
  /** kill -9 of this honest cluster's coordinator while it trains `round`; it restarts 3 s later. */
  kill?: { name: string; round: number };
  /** Whether an impostor tries to get in to the first cluster (npm start shows it). */
  impostor: boolean;
  /** Validation batches for the final loss (default: the train config's evalBatches). */
  finalEvalBatches?: number;
  timeoutSeconds: number;
  /** Where the coordinators' metrics and the round log (rounds.jsonl) are written. */
  out: string;
  ui: LaunchUi;
}

/** What the launcher tells people: notable lines, and the state of every cluster for a live line. */
export interface LaunchUi {
  say(who: string, text: string): void;
  live(clusters: readonly ClusterState[]): void;
}

export interface LaunchResult {
  clusters: ClusterState[];
  nameOf: (peerId: string) => string;
  validation: { initial: number; final: number };
  impostor: Array<{ attempt: string; refused: boolean; reason: string }>;
  train: TrainConfig;
  seconds: number;
}

const entry = (path: string) => fileURLToPath(new URL(path, import.meta.url));
const COORDINATOR = entry('../../operator/src/cmd/coordinator.js');
const MALICIOUS = entry('../malicious-coordinator.js');
const AGENT = entry('../../trainer/src/cli/agent.js');
const IMPOSTOR = entry('../impostor.js');

/** A key derived from a seed: the same seed, the same key, the same peer id and data. */
export function identityFromSeed(seed: string): Identity {
  // PKCS#8 DER of an Ed25519 private key: a fixed prefix and the 32-byte seed.
  const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), createHash('sha256').update(seed).digest()]);
  return identityFromPrivateKey(createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }));
}

/** Validation loss of each parameter vector on the run's fixed validation batches (`evalBatches` of them; default: the config's). */
export async function validationLosses(train: TrainConfig, params: readonly Float32Array[], evalBatches?: number): Promise<number[]> {
  const thread = await TrainerThread.start(evalBatches === undefined ? train : { ...train, train: { ...train.train, evalBatches } });
  try {
    const losses: number[] = [];
    for (const p of params) {
      await thread.loadParams(p.slice());
      losses.push(await thread.evaluate());
    }
    return losses;
  } finally {
    await thread.close();
  }
}

export function isHonestPlan(plan: ClusterPlan): boolean {
  return plan.attack === undefined && plan.coalition === undefined;
}

export async function launchFederation(options: LaunchOptions): Promise<LaunchResult> {
  const { ui } = options;
  const started = Date.now();
  const names = options.clusters.map((c) => c.name);
  const plans = new Map(options.clusters.map((c) => [c.name, c]));
  await mkdir(options.out, { recursive: true });
  const work = await mkdtemp(join(tmpdir(), 'concord-federation-'));
  const clusters = new Map<string, ClusterState>(options.clusters.map((plan) => [plan.name, {
    name: plan.name, honest: isHonestPlan(plan), peerId: '', round: 0, phase: 'Starting', loss: Number.NaN, rounds: [], finished: false, stopping: undefined,
  }]));
  const children: ChildProcess[] = [];
  const exits: Array<Promise<number>> = [];
  let failure: Error | undefined;
  /** Set once the launcher stops the processes itself. */
  let stopping = false;
  const timer = setTimeout(() => {
    failure = new Error(`the federation did not finish within ${options.timeoutSeconds} s`);
    for (const child of children) child.kill('SIGKILL');
  }, options.timeoutSeconds * 1000);

  /** Starts a process; each JSON line of its stdout goes to `onLine`, anything else passes through to `ui`. */
  const run = (args: string[], onLine: (line: LogLine) => void, started?: (child: ChildProcess) => void): Promise<number> => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    started?.(child);
    createInterface({ input: child.stdout! }).on('line', (text) => {
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        ui.say('output', text);
        return;
      }
      onLine(line);
    });
    return new Promise((done) => child.on('exit', (code, signal) => done(code ?? (signal ? 128 : 1))));
  };
  const nameOf = (peerId: string) => [...clusters.values()].find((c) => c.peerId === peerId)?.name ?? peerId.slice(0, 8);

  try {
    const identities = new Map(names.map((name) => [name, options.identity?.(name) ?? generateIdentity()]));
    const ports = new Map<string, { federation: number; trainers: number; metrics: number }>();
    for (const name of names) {
      await saveIdentity(join(work, `${name}.pem`), identities.get(name)!);
      ports.set(name, { federation: await freePort(), trainers: await freePort(), metrics: await freePort() });
    }
    const trainYaml = await readFile(options.trainConfigFile, 'utf8');
    const train = parseTrainConfigYaml(trainYaml);

    let killed = false;
    /** kill -9 of the coordinator named by `kill`, while it trains that round, once that round's
     * base is in its checkpoint; restarted 3 s later. */
    const killIfDue = (state: ClusterState) => {
      const { kill } = options;
      if (killed || kill?.name !== state.name || kill.round !== state.round || state.phase !== 'Training') return;
      if (state.round > 0 && state.checkpointed !== state.round) return;
      killed = true;
      ui.say(state.name, `kill -9 of its coordinator in round ${state.round} (while training)`);
      coordinators.get(state.name)!.kill('SIGKILL');
      setTimeout(() => {
        ui.say(state.name, 'restarting its coordinator: it resumes from its checkpoint');
        exits.push(startCoordinators([state.name]));
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
          ui.say(state.name, `listening on ${line.address}, peer id ${state.peerId.slice(0, 12)}…, public key ${line.publicKey}`);
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
          ui.say(state.name, `resumed from its checkpoint at round ${line.round}`);
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
          ui.say(state.name, `round ${summary.round}: loss ${summary.loss.toFixed(3)}; applied ${accepted}${rejected ? `; rejected ${rejected}` : ''}; model ${summary.modelHash.slice(0, 10)}…${summary.agreed === false ? (summary.resynced ? ' (resynced to the majority)' : ' (DISAGREES)') : ''}`);
          break;
        }
        case 'peer-banned':
          ui.say(state.name, `banned ${nameOf(String(line.peerId))}: ${line.reason} (${line.detail}); the two signed statements are kept as proof`);
          break;
        case 'resync-done':
          ui.say(state.name, `resynced to the majority's model ${String(line.hash)}… from ${line.from}`);
          break;
        case 'rounds-finished':
          state.finished = true;
          break;
        case 'stopping':
          state.stopping = line;
          break;
      }
      ui.live([...clusters.values()]);
    };

    const coordinators = new Map<string, ChildProcess>();
    const configFiles = new Map<string, string>();
    /** Starts the coordinator process of these clusters: one each, or one for a whole coalition. */
    const startCoordinators = (group: string[]) => {
      const plan = plans.get(group[0]!)!;
      const configs = group.flatMap((name) => ['--config', configFiles.get(name)!]);
      const args = plan.attack !== undefined ? [MALICIOUS, ...configs, '--attack', plan.attack]
        : plan.coalition !== undefined ? [MALICIOUS, ...configs, '--coalition', plan.coalition.target, ...(plan.coalition.drift ? ['--drift'] : [])]
          : [COORDINATOR, ...configs];
      const exit = run(args, onLine, (child) => group.forEach((name) => coordinators.set(name, child)));
      void exit.then((code) => {
        // A coordinator that ends before the launcher stops it crashed (a kill -9 of `kill` aside).
        if (stopping || (killed && group.includes(options.kill!.name))) return;
        for (const name of group) {
          const state = clusters.get(name)!;
          if (state.finished) continue;
          state.crashed = `exit code ${code} in round ${state.round}`;
          ui.say(name, `its coordinator process ended on its own (${state.crashed})`);
        }
      });
      return exit;
    };
    for (const name of names) {
      const config = {
        name, runId: options.runId, identityFile: join(work, `${name}.pem`),
        listen: `127.0.0.1:${ports.get(name)!.federation}`, trainerListen: `127.0.0.1:${ports.get(name)!.trainers}`, metricsListen: `127.0.0.1:${ports.get(name)!.metrics}`, trainers: 1,
        checkpointDir: join(work, `${name}-checkpoints`),
        ...(options.steps !== undefined ? { maxInnerSteps: options.steps } : {}),
        peers: names.filter((p) => p !== name).map((p) => ({ name: p, endpoint: `127.0.0.1:${ports.get(p)!.federation}`, publicKey: encodePublicKey(identities.get(p)!.publicKey) })),
        // The trainers read the same file; the coordinators get it inline.
        train: parse(trainYaml) as unknown,
        rounds: {
          runSeed: options.runSeed, rounds: options.rounds, windowSeconds: options.windowSeconds, graceSeconds: options.graceSeconds,
          compression: options.compression, validation: { batches: options.validation.batches, ...(options.validation.sample !== undefined ? { sample: options.validation.sample } : {}) },
        },
      };
      const file = join(work, `${name}.yaml`);
      await writeFile(file, stringify(config));
      configFiles.set(name, file);
    }
    const coalition = names.filter((name) => plans.get(name)!.coalition !== undefined);
    for (const name of names) {
      if (!coalition.includes(name)) exits.push(startCoordinators([name]));
      else if (name === coalition[0]) exits.push(startCoordinators(coalition));
      exits.push(run([AGENT, '--coordinator', `127.0.0.1:${ports.get(name)!.trainers}`, '--config', options.trainConfigFile, '--id', `${name}-trainer-0`], () => undefined));
    }

    const impostor: LaunchResult['impostor'] = [];
    const waitFor = async (condition: () => boolean) => {
      while (!condition()) {
        if (failure) throw failure;
        await new Promise((done) => setTimeout(done, 200));
      }
    };
    if (options.impostor) {
      // An impostor that knows every public fact of the run (run id, endpoints, keys) tries to get
      // in to the first cluster: with its own key, and claiming the second's. Both are refused.
      const [target, claimed] = names as [string, string];
      await waitFor(() => clusters.get(target)!.peerId !== '');
      await run([IMPOSTOR, '--run', options.runId, '--target', `127.0.0.1:${ports.get(target)!.federation}`,
        '--target-key', encodePublicKey(identities.get(target)!.publicKey), '--claim-key', encodePublicKey(identities.get(claimed)!.publicKey)], (line) => {
        if (line.event !== 'attempt') return;
        impostor.push({ attempt: String(line.attempt), refused: line.refused === true, reason: String(line.reason ?? '') });
        ui.say('impostor', `${line.attempt === 'own-key' ? 'with its own key' : `claiming ${claimed}'s public key`}: ${line.refused === true ? `refused by ${target}, ${line.code} ${line.reason}` : 'NOT REFUSED'}`);
      });
    }

    await waitFor(() => [...clusters.values()].filter((c) => c.honest).every((c) => c.finished));
    // What Prometheus would scrape from each coordinator, kept with the report.
    await mkdir(join(options.out, 'metrics'), { recursive: true });
    for (const name of names) {
      const response = await fetch(`http://127.0.0.1:${ports.get(name)!.metrics}/metrics`).catch(() => undefined);
      if (response !== undefined) await writeFile(join(options.out, 'metrics', `${name}.prom`), await response.text());
    }
    stopping = true;
    for (const child of children) child.kill('SIGTERM');
    await Promise.all(exits);
    await writeFile(join(options.out, 'rounds.jsonl'), roundLog.map((l) => `${l}\n`).join(''));

    // Validation loss of the round-0 model and of the final one (an honest cluster's checkpoint).
    const firstHonest = [...clusters.values()].find((c) => c.honest)!;
    const initial = ModelState.initial(options.runId, train.model, train.outer, BigInt(options.runSeed));
    const resumed = await ModelState.load(join(work, `${firstHonest.name}-checkpoints`), options.runId, train.model, train.outer);
    const [before, after] = await validationLosses(train, [initial.params, resumed!.state.params], options.finalEvalBatches);
    const validation = { initial: before!, final: after! };
    return { clusters: [...clusters.values()], nameOf, validation, impostor, train, seconds: (Date.now() - started) / 1000 };
  } finally {
    clearTimeout(timer);
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await rm(work, { recursive: true, force: true });
  }
}
