// `npm start`: a real federation on this machine. Several clusters — each a coordinator process
// with its own Ed25519 identity and a CPU trainer process — train one small GPT on the Brown
// corpus in outer rounds over gRPC on loopback. One cluster attacks. Live progress shows each
// cluster's round, phase and loss; at the end a report (Markdown, loss-curve SVG, JSON) says
// what was accepted and rejected and why, who was banned with what evidence, how many bytes
// moved against uncompressed, and whether every honest cluster holds the same model.
//
// Options: --config TRAIN.yaml (trainer/configs/federation.yaml)  --clusters N (4)  --attack NAME|none (equivocate)  --rounds N (6)  --window SECONDS (15)
//          --grace SECONDS (8)  --steps N (inner steps per round at most; default: the window)
//          --eval-batches N (6: Gauntlet batches per side)  --eval-sample N (all: contributions scored per round)  --seed N (2026: the run seed,
//          initialisation and data order)  --data PATH (your own text instead of the Brown corpus: a directory
//          of text files, a .jsonl or .parquet file with a "text" field, or a dataset `npm run dataset` prepared)  --out DIR (out/federation)  --json FILE  --timeout SECONDS (by default
//          long enough for every round to run to its window and twice its grace, and two minutes more)
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parse, stringify } from 'yaml';
import { prepareWithTokenizer } from '../trainer/src/data/prepare.js';
import { MANIFEST_FILE, readManifest } from '../trainer/src/data/shards.js';
import { ConfigError, parseTrainConfigYaml } from '../trainer/src/train/config.js';
import { formatDuration, ProgressLine } from '../trainer/src/report/progress.js';
import { ATTACKS, isAttack } from './attacks.js';
import { launchFederation } from './federation/launch.js';
import { fmt, printReport, report } from './federation/report.js';

const { values } = parseArgs({
  options: {
    clusters: { type: 'string', default: '4' }, attack: { type: 'string', default: 'equivocate' }, rounds: { type: 'string', default: '6' },
    window: { type: 'string', default: '15' }, grace: { type: 'string', default: '8' }, steps: { type: 'string' },
    out: { type: 'string', default: 'out/federation' }, config: { type: 'string', default: 'trainer/configs/federation.yaml' }, 'eval-batches': { type: 'string', default: '6' }, 'eval-sample': { type: 'string' }, kill: { type: 'string' }, json: { type: 'string' }, timeout: { type: 'string' }, seed: { type: 'string', default: '2026' }, data: { type: 'string' },
  },
});
const NAMES = ['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta', 'eta', 'theta'];
const RUN_ID = 'local/demo';

function options() {
  const clusters = Number(values.clusters);
  const attackName = values.attack!;
  if (!Number.isInteger(clusters) || clusters < 2 || clusters > NAMES.length) throw new Error(`--clusters must be 2 to ${NAMES.length}`);
  if (attackName !== 'none' && !isAttack(attackName)) throw new Error(`--attack must be none or one of ${ATTACKS.join(', ')}`);
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds must be a positive integer');
  const steps = values.steps === undefined ? undefined : Number(values.steps);
  const window = Number(values.window);
  const grace = Number(values.grace);
  const timeout = values.timeout === undefined ? 120 + rounds * (window + 2 * grace + 5) : Number(values.timeout);
  const seed = Number(values.seed);
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error('--seed must be a non-negative integer');
  const kill = values.kill === undefined ? undefined : /^([a-z]+)@(\d+)$/.exec(values.kill);
  if (values.kill !== undefined && (kill === null || kill === undefined || !NAMES.slice(0, clusters - 1).includes(kill[1]!))) throw new Error('--kill must be NAME@ROUND with an honest cluster\'s name, e.g. beta@2');
  return {
    kill: kill ? { name: kill[1]!, round: Number(kill[2]) } : undefined, clusters, attack: attackName === 'none' ? undefined : attackName, rounds, window, grace, steps, seed, timeout };
}

/**
 * The trainers' config: --config as it is, or, with --data, the same config reading a prepared
 * dataset — the one given, or the user's text prepared now (with the config's vocabulary) into
 * `work`.
 */
async function trainConfigFile(work: string, say: (who: string, text: string) => void): Promise<string> {
  const file = resolve(values.config!);
  if (values.data === undefined) return file;
  const yaml = await readFile(file, 'utf8');
  const train = parseTrainConfigYaml(yaml);
  let dir = resolve(values.data);
  if (!existsSync(join(dir, MANIFEST_FILE))) {
    const source = { path: dir, format: dir.endsWith('.jsonl') ? 'jsonl' as const : dir.endsWith('.parquet') ? 'parquet' as const : 'text' as const };
    dir = join(work, 'dataset');
    const manifest = await prepareWithTokenizer({ source, vocabSize: train.model.vocabSize, out: dir });
    say('concord', `prepared ${source.path}: ${manifest.documents.train} training and ${manifest.documents.validation} validation documents, dataset hash ${manifest.hash.slice(0, 16)}…`);
  }
  // Checked here, before any process starts: a trainer would otherwise fail alone, out of sight.
  const { tokenizer, hash } = await readManifest(dir);
  if (tokenizer.vocabSize !== train.model.vocabSize) throw new ConfigError('model.vocabSize', `is ${train.model.vocabSize} in ${file}, but the dataset in ${dir} was tokenised with ${tokenizer.vocabSize} ids`);
  const raw = parse(yaml) as Record<string, unknown>;
  const derived = join(work, 'train.yaml');
  await writeFile(derived, stringify({ ...raw, data: { dir, hash } }));
  return derived;
}

async function main(): Promise<number> {
  const opts = options();
  const out = resolve(values.out!);
  const started = Date.now();
  const names = NAMES.slice(0, opts.clusters);
  if (opts.attack !== undefined) names[names.length - 1] = 'mallory';
  const progress = new ProgressLine(process.stdout, 5_000);
  const say = (who: string, text: string) => {
    progress.done();
    process.stdout.write(`[${who.padEnd(8)}] ${text}\n`);
  };
  process.stdout.write(`Concord local federation: ${opts.clusters} clusters${opts.attack ? `, mallory attacks (${opts.attack})` : ''}, ${opts.rounds} rounds of ${opts.window} s, run "${RUN_ID}"\n\n`);
  const work = await mkdtemp(join(tmpdir(), 'concord-start-'));
  const config = await trainConfigFile(work, say).catch(async (error: Error) => {
    say('concord', error.message);
    return undefined;
  });
  if (config === undefined) {
    await rm(work, { recursive: true, force: true });
    return 1;
  }
  const launched = await launchFederation({
    clusters: names.map((name) => ({ name, ...(name === 'mallory' ? { attack: opts.attack! } : {}) })),
    runId: RUN_ID, runSeed: opts.seed, rounds: opts.rounds, windowSeconds: opts.window, graceSeconds: opts.grace,
    ...(opts.steps !== undefined ? { steps: opts.steps } : {}),
    validation: { batches: Number(values['eval-batches']), ...(values['eval-sample'] ? { sample: Number(values['eval-sample']) } : {}) },
    compression: { chunk: 4096, topk: 64, bits: 2 },
    trainConfigFile: config, impostor: true, timeoutSeconds: opts.timeout, out,
    ...(opts.kill !== undefined ? { kill: opts.kill } : {}),
    ui: {
      say,
      live: (clusters) => progress.update(`${formatDuration((Date.now() - started) / 1000).padStart(5)}  ${clusters.map((c) => `${c.name} r${c.round} ${c.phase.padEnd(10)} ${fmt(c.loss)}`).join(' | ')}`),
    },
  }).catch((error: Error) => {
    say('concord', error.message);
    return undefined;
  }).finally(() => rm(work, { recursive: true, force: true }));
  progress.done();
  if (launched === undefined) return 1;
  const { impostor } = launched;
  const shape = { clusters: opts.clusters, rounds: opts.rounds, window: opts.window, attack: opts.attack ? `mallory attacking with \`${opts.attack}\`` : undefined };
  const outcome = { ...(await report(out, launched.clusters, shape, launched.validation, launched.nameOf, launched.seconds)), impostor };
  printReport(outcome, launched.seconds);
  if (values.json) await writeFile(values.json, JSON.stringify(outcome, null, 2));
  return outcome.honestAgree && outcome.complete && impostor.length === 2 && impostor.every((a) => a.refused) ? 0 : 1;
}

process.exitCode = await main();
