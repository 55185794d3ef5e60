// `npm run study -- federation`: does a federation of untrusted clusters learn as well as
// centralised training, and does it keep learning under attack? Every arm of a seed starts from
// the same initialisation (the run seed) on the same corpus, and every cluster has the same key
// in every arm (derived from the seed and its name), so arms with the same members train on the
// same data. The federation arms are real local federations (launch.ts: coordinator and trainer
// processes over gRPC); the centralised arm is synchronous data-parallel training in-process on
// exactly the batches the all-honest federation's four peers train on, at equal tokens.
//
//   centralised  gradients of the four peers' batches averaged every inner step (an all-reduce)
//   honest       four honest clusters
//   honest-3     three honest clusters: the fair bar of the one-attacker arms (the attacker silent)
//   <attack>     three honest clusters and mallory, making that attack (scripts/attacks.ts)
//   coalition    four honest clusters and two colluders (mallory, trudy): announcements to one
//                honest cluster only, votes for each other only with full scores, and both
//                pushing the model along the same direction; its fair bar is `honest`
//
// This file runs the arms and measures each; summarise() and the renderers turn the results
// into the table and plot of docs/convergence.md.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ModelState } from '../../operator/src/coordinator/model-state.js';
import { peerIdOf } from '../../operator/src/federation/identity.js';
import { assign } from '../../trainer/src/data/assign.js';
import { openDataset } from '../../trainer/src/data/open.js';
import { GraphRunner, openSession } from '../../trainer/src/engine/session.js';
import { buildModelGraph, decayRule, modelParamSpecs } from '../../trainer/src/model/family.js';
import { layoutOf } from '../../trainer/src/params.js';
import { lineChart } from '../../trainer/src/report/line-chart.js';
import { rangeChart } from '../../trainer/src/report/range-chart.js';
import { formatDuration, type ProgressLine } from '../../trainer/src/report/progress.js';
import { BatchGradient, trainSynchronous } from '../../trainer/src/study/synchronous.js';
import { AdamW } from '../../trainer/src/train/adamw.js';
import { parseTrainConfigYaml, type TrainConfig } from '../../trainer/src/train/config.js';
import { ATTACKS, type AttackName } from '../attacks.js';
import { identityFromSeed, launchFederation, validationLosses, type ClusterPlan } from './launch.js';
import { measureRounds, report, type ClusterState, type RoundLine, type RunMeasures } from './report.js';

export const ARMS = ['centralised', 'honest', 'honest-3', ...ATTACKS, 'coalition'] as const;
export type ArmName = (typeof ARMS)[number];

const HONEST = ['alpha', 'beta', 'gamma', 'delta'];
const RUN_ID = 'study/federation';

export interface StudyOptions {
  seeds: number[];
  rounds: number;
  /** Inner steps per round (every arm: tokens per round are fixed, not wall-clock). */
  steps: number;
  windowSeconds: number;
  graceSeconds: number;
  /** Gauntlet batches per side (spec.validation.batches). */
  evalBatches: number;
  /** Validation batches of the final loss. */
  finalEvalBatches: number;
  trainConfigFile: string;
  out: string;
  line: ProgressLine;
}

/** What one arm of one seed measured. */
export interface ArmResult {
  arm: ArmName;
  seed: number;
  initialLoss: number;
  finalLoss: number;
  /** What the honest coordinators decided and held (report.ts); the centralised arm decides nothing and sends gradients. */
  curve: RunMeasures['curve'];
  honestTokens: number;
  honest: RunMeasures['honest'];
  attackers: RunMeasures['attackers'];
  bytesPerPeer: number;
  /** Clusters whose coordinator process ended on its own (an attack that crashed is no attack). */
  crashed: string[];
  seconds: number;
}

/** The clusters of an arm (none for the centralised one). */
export function armClusters(arm: ArmName): ClusterPlan[] {
  switch (arm) {
    case 'centralised': return [];
    case 'honest': return HONEST.map((name) => ({ name }));
    case 'honest-3': return HONEST.slice(0, 3).map((name) => ({ name }));
    case 'coalition': return [...HONEST.map((name) => ({ name })), ...['mallory', 'trudy'].map((name) => ({ name, coalition: { target: 'alpha', drift: true } }))];
    default: return [...HONEST.slice(0, 3).map((name) => ({ name })), { name: 'mallory', attack: arm as AttackName }];
  }
}

/** The arm whose honest clusters train alone what `arm`'s honest clusters train under attack (the fair bar). */
export function fairBarOf(arm: ArmName): ArmName | undefined {
  if (arm === 'centralised' || arm === 'honest' || arm === 'honest-3') return undefined;
  return arm === 'coalition' ? 'honest' : 'honest-3';
}

const identityOf = (seed: number) => (name: string) => identityFromSeed(`concord-study/${seed}/${name}`);

export async function runArm(arm: ArmName, seed: number, options: StudyOptions, label: string): Promise<ArmResult> {
  return arm === 'centralised' ? runCentralised(seed, options, label) : runFederationArm(arm, seed, options, label);
}

async function runFederationArm(arm: ArmName, seed: number, options: StudyOptions, label: string): Promise<ArmResult> {
  const started = Date.now();
  const out = join(options.out, `seed-${seed}`, arm);
  const clusters = armClusters(arm);
  const launched = await launchFederation({
    clusters, runId: RUN_ID, runSeed: seed, rounds: options.rounds, windowSeconds: options.windowSeconds, graceSeconds: options.graceSeconds,
    steps: options.steps, validation: { batches: options.evalBatches }, compression: { chunk: 4096, topk: 64, bits: 2 },
    trainConfigFile: options.trainConfigFile, identity: identityOf(seed), impostor: false, finalEvalBatches: options.finalEvalBatches,
    timeoutSeconds: 120 + options.rounds * (options.windowSeconds + options.graceSeconds + 10), out,
    ui: {
      say: () => undefined,
      live: (states) => {
        const round = Math.min(...states.filter((c) => c.honest).map((c) => c.rounds.length));
        options.line.update(`${label}: round ${round}/${options.rounds}  ${formatDuration((Date.now() - started) / 1000)}`);
      },
    },
  });
  const attack = arm === 'honest' || arm === 'honest-3' ? undefined : arm === 'coalition' ? 'mallory and trudy colluding' : `mallory attacking with \`${arm}\``;
  await report(out, launched.clusters, { clusters: clusters.length, rounds: options.rounds, window: options.windowSeconds, attack }, launched.validation, launched.nameOf, launched.seconds);
  return {
    arm, seed, initialLoss: launched.validation.initial, finalLoss: launched.validation.final, ...measureRounds(launched.clusters),
    crashed: launched.clusters.flatMap((c) => (c.crashed === undefined ? [] : [`${c.name}: ${c.crashed}`])), seconds: (Date.now() - started) / 1000,
  };
}

async function runCentralised(seed: number, options: StudyOptions, label: string): Promise<ArmResult> {
  const started = Date.now();
  const train: TrainConfig = parseTrainConfigYaml(await readFile(options.trainConfigFile, 'utf8'));
  const { model, inner } = train;
  const dataset = await openDataset(train);
  const layout = layoutOf(modelParamSpecs(model));
  const runner = new GraphRunner((await openSession(buildModelGraph(model, { batch: inner.batch, outputs: 'train' }), { device: 'cpu', threads: 1 })).session, layout);
  const initial = ModelState.initial(RUN_ID, model, train.outer, BigInt(seed)).params;
  const params = initial.slice();
  // The all-honest federation's peers, their data in each round as their trainers draw it.
  const peers = HONEST.map((name) => peerIdOf(identityOf(seed)(name).publicKey)).sort();
  const steps = options.rounds * options.steps;
  const curve: Array<[number, number]> = [];
  await trainSynchronous({
    gradient: new BatchGradient(runner, dataset.train, { batch: inner.batch, seqLen: model.seqLen }),
    params, steps,
    optimizer: new AdamW(layout, decayRule(model), { beta1: inner.beta1, beta2: inner.beta2, eps: 1e-8, weightDecay: inner.weightDecay, gradClip: inner.gradClip }),
    schedule: { lr: inner.lr, warmupSteps: inner.warmupSteps, decaySteps: train.train.steps, minLrRatio: inner.minLrRatio },
    batchesAt: (step) => peers.map((peerId) => assign({
      runSeed: BigInt(seed), peers, peerId, round: Math.floor(step / options.steps), replica: 0, replicas: 1,
      batchSize: inner.batch, seqLen: model.seqLen, tokens: dataset.train.length, batches: 1, firstBatch: step % options.steps,
    })[0]!),
    afterStep: (step, loss) => {
      if (step % options.steps === 0) curve.push([step / options.steps - 1, loss]);
      options.line.update(`${label}: step ${step}/${steps}  ${formatDuration((Date.now() - started) / 1000)}`);
    },
  });
  const [initialLoss, finalLoss] = await validationLosses(train, [initial, params], options.finalEvalBatches);
  return {
    arm: 'centralised', seed, initialLoss: initialLoss!, finalLoss: finalLoss!, curve, honestTokens: steps * peers.length * inner.batch * model.seqLen,
    ...centralisedMeasures(),
    // An all-reduce moves each peer's float32 gradient every step (a ring moves about twice that; counted once).
    bytesPerPeer: steps * layout.size * 4, crashed: [],
    seconds: (Date.now() - started) / 1000,
  };
}

/**
 * A federation arm's measures computed again from what its run logged (its rounds.jsonl and
 * summary.json under `out`): a measure's definition can change without running the study again.
 */
export async function remeasure(result: ArmResult, out: string): Promise<ArmResult> {
  if (result.arm === 'centralised') return { ...result, ...centralisedMeasures() };
  const dir = join(out, `seed-${result.seed}`, result.arm);
  const summary = JSON.parse(await readFile(join(dir, 'summary.json'), 'utf8')) as { clusters: Record<string, { honest: boolean; peerId: string }> };
  const lines = (await readFile(join(dir, 'rounds.jsonl'), 'utf8')).split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as RoundLine & { name: string });
  const clusters: ClusterState[] = Object.entries(summary.clusters).map(([name, c]) => {
    // A restarted coordinator logs a round again: its last line of a round counts.
    const rounds = new Map(lines.filter((l) => l.name === name).map((l) => [Number(l.round), l]));
    return { name, honest: c.honest, peerId: c.peerId, round: rounds.size, phase: 'Done', loss: Number.NaN, rounds: [...rounds.values()], finished: true, stopping: undefined };
  });
  return { ...result, ...measureRounds(clusters) };
}

/** The centralised arm has no contributions to judge. */
function centralisedMeasures(): Pick<ArmResult, 'honest' | 'attackers'> {
  return {
    honest: { applied: 0, contributions: 0, rejected: {}, emptyRounds: 0, minReputation: Infinity, agreeEveryRound: true },
    attackers: { applied: 0, contributions: 0, maxWeight: 0, rejected: {} },
  };
}

// ---- the summary: pure, from the results ----

export interface ArmSummary {
  arm: ArmName;
  seeds: number;
  finalLoss: { mean: number; min: number; max: number };
  /** Final loss against the all-honest federation of the same seed, relative: mean and worst seed. */
  vsHonest?: { mean: number; worst: number };
  /** Against the arm's honest clusters alone (the attacker silent), same seed. */
  vsFairBar?: { arm: ArmName; mean: number; worst: number };
  honestApplied: number;
  honestContributions: number;
  emptyRounds: number;
  minReputation: number;
  agreeEveryRound: boolean;
  attackerApplied: number;
  attackerContributions: number;
  attackerMaxWeight: number;
  attackerRejected: Record<string, number>;
  bytesPerPeer: number;
  crashed: string[];
}

export interface StudySummary {
  arms: ArmSummary[];
  /** The all-honest federation against centralised training: loss (relative, mean and worst seed) and bytes per peer (ratio). */
  honestVsCentralised?: { mean: number; worst: number; bytesRatio: number };
  /** Honest contributions applied over every federation arm. */
  honestApplied: number;
  honestContributions: number;
}

export function summarise(results: readonly ArmResult[]): StudySummary {
  const byArm = new Map<ArmName, ArmResult[]>();
  for (const r of results) byArm.set(r.arm, [...(byArm.get(r.arm) ?? []), r]);
  const finalOf = (arm: ArmName, seed: number) => byArm.get(arm)?.find((r) => r.seed === seed)?.finalLoss;
  const relative = (runs: readonly ArmResult[], bar: ArmName) => {
    const gaps = runs.flatMap((r) => {
      const base = finalOf(bar, r.seed);
      return base === undefined ? [] : [r.finalLoss / base - 1];
    });
    return gaps.length === 0 ? undefined : { mean: mean(gaps), worst: Math.max(...gaps) };
  };
  const arms = ARMS.filter((arm) => byArm.has(arm)).map((arm): ArmSummary => {
    const runs = byArm.get(arm)!;
    const losses = runs.map((r) => r.finalLoss);
    const fairBar = fairBarOf(arm);
    const vsHonest = arm === 'honest' ? undefined : relative(runs, 'honest');
    const vsFairBar = fairBar === undefined ? undefined : relative(runs, fairBar);
    const attackerRejected: Record<string, number> = {};
    for (const r of runs) for (const [reason, n] of Object.entries(r.attackers.rejected)) attackerRejected[reason] = (attackerRejected[reason] ?? 0) + n;
    return {
      arm, seeds: runs.length, finalLoss: { mean: mean(losses), min: Math.min(...losses), max: Math.max(...losses) },
      ...(vsHonest ? { vsHonest } : {}), ...(vsFairBar && fairBar ? { vsFairBar: { arm: fairBar, ...vsFairBar } } : {}),
      honestApplied: sum(runs.map((r) => r.honest.applied)), honestContributions: sum(runs.map((r) => r.honest.contributions)),
      emptyRounds: sum(runs.map((r) => r.honest.emptyRounds)), minReputation: Math.min(...runs.map((r) => r.honest.minReputation)),
      agreeEveryRound: runs.every((r) => r.honest.agreeEveryRound),
      attackerApplied: sum(runs.map((r) => r.attackers.applied)), attackerContributions: sum(runs.map((r) => r.attackers.contributions)),
      attackerMaxWeight: Math.max(...runs.map((r) => r.attackers.maxWeight)), attackerRejected,
      bytesPerPeer: mean(runs.map((r) => r.bytesPerPeer)), crashed: runs.flatMap((r) => r.crashed.map((c) => `seed ${r.seed} ${c}`)),
    };
  });
  const honest = arms.find((a) => a.arm === 'honest');
  const centralised = arms.find((a) => a.arm === 'centralised');
  const honestVsCentralised = honest && centralised ? relative(byArm.get('honest')!, 'centralised') : undefined;
  const federation = arms.filter((a) => a.arm !== 'centralised');
  return {
    arms,
    ...(honestVsCentralised && honest && centralised ? { honestVsCentralised: { ...honestVsCentralised, bytesRatio: centralised.bytesPerPeer / honest.bytesPerPeer } } : {}),
    honestApplied: sum(federation.map((a) => a.honestApplied)), honestContributions: sum(federation.map((a) => a.honestContributions)),
  };
}

/** The study's table (Markdown). */
export function studyTable(summary: StudySummary): string {
  const pct = (x: number) => `${x >= 0 ? '+' : '−'}${Math.abs(100 * x).toFixed(1)}%`;
  const rows = summary.arms.map((a) => {
    const attacker = a.crashed.length > 0 ? `CRASHED (${a.crashed.join('; ')})` : a.attackerContributions === 0 ? '—'
      : `${a.attackerApplied}/${a.attackerContributions}${a.attackerApplied > 0 ? ` (≤ ${(100 * a.attackerMaxWeight).toFixed(0)}% share)` : ''}${Object.keys(a.attackerRejected).length > 0 ? `; ${Object.entries(a.attackerRejected).map(([reason, n]) => `${reason} ${n}`).join(', ')}` : ''}`;
    return `| ${a.arm} | ${a.finalLoss.mean.toFixed(3)} (${a.finalLoss.min.toFixed(3)}–${a.finalLoss.max.toFixed(3)}) | ${a.vsHonest ? `${pct(a.vsHonest.mean)} (${pct(a.vsHonest.worst)})` : '—'} | ${a.vsFairBar ? `${pct(a.vsFairBar.mean)} (${pct(a.vsFairBar.worst)}) vs ${a.vsFairBar.arm}` : '—'} | ${a.honestContributions === 0 ? '—' : `${a.honestApplied}/${a.honestContributions}`} | ${a.arm === 'centralised' ? '—' : `${a.emptyRounds} / ${a.minReputation.toFixed(2)} / ${a.agreeEveryRound ? 'yes' : 'NO'}`} | ${attacker} | ${mb(a.bytesPerPeer)} |`;
  });
  return [
    '| arm | final validation loss, mean (min–max) | vs all-honest, mean (worst seed) | vs honest clusters alone, mean (worst seed) | honest applied | empty rounds / lowest honest reputation / hashes agree | attacker applied; rejected | bytes sent per peer |',
    '| --- | ---: | ---: | ---: | ---: | --- | --- | ---: |',
    ...rows,
  ].join('\n');
}

/** The plot: honest clusters' training loss by round, mean over seeds, for the arms named. */
export function studyPlot(results: readonly ArmResult[], arms: readonly ArmName[]): string {
  const series = arms.flatMap((arm) => {
    const runs = results.filter((r) => r.arm === arm);
    if (runs.length === 0) return [];
    const rounds = Math.min(...runs.map((r) => r.curve.length));
    const points = Array.from({ length: rounds }, (_, i) => [runs[0]!.curve[i]![0], mean(runs.map((r) => r.curve[i]![1]))] as const);
    return [{ name: arm, points, dashed: arm === 'centralised' }];
  });
  return lineChart({ title: `Training loss of the honest clusters by round (mean of ${seedsOf(new Set(results.map((r) => r.seed)).size)})`, xLabel: 'outer round', yLabel: 'training loss (nats/token)', series });
}

/**
 * Runs every arm for every seed, one at a time, writing results.json after each. With `resume`,
 * the (arm, seed) pairs already in results.json are kept and not run again: a study that stopped
 * goes on where it was (and removing an entry reruns that one).
 */
/** The final validation loss of every arm (mean, and its range over seeds), against centralised and all-honest training. */
export function finalLossPlot(summary: StudySummary): string {
  const of = (arm: ArmName) => summary.arms.find((a) => a.arm === arm)?.finalLoss.mean;
  const references = (['centralised', 'honest'] as const).flatMap((arm) => {
    const value = of(arm);
    return value === undefined ? [] : [{ name: arm === 'honest' ? 'all-honest federation' : 'centralised', value }];
  });
  return rangeChart({
    title: `Final validation loss by arm (dot: mean of ${seedsOf(Math.max(...summary.arms.map((a) => a.seeds)))}; bar: min to max)`, xLabel: 'validation loss (nats/token)', references,
    rows: summary.arms.map((a) => ({ name: a.arm, value: a.finalLoss.mean, min: a.finalLoss.min, max: a.finalLoss.max, highlight: (a.vsHonest?.worst ?? 0) > (a.arm === 'coalition' ? 0.05 : 0.03) })),
  });
}

export async function runStudy(arms: readonly ArmName[], options: StudyOptions & { resume?: boolean }): Promise<ArmResult[]> {
  const file = join(options.out, 'results.json');
  const kept = options.resume ? (JSON.parse(await readFile(file, 'utf8').catch(() => '[]')) as ArmResult[]) : [];
  const results: ArmResult[] = [...kept];
  const todo = options.seeds.flatMap((seed) => arms.flatMap((arm) => (kept.some((r) => r.arm === arm && r.seed === seed) ? [] : [{ arm, seed }])));
  const started = Date.now();
  await mkdir(options.out, { recursive: true });
  for (const [done, { arm, seed }] of todo.entries()) {
    const eta = done === 0 ? '' : `, about ${formatDuration(((Date.now() - started) / 1000 / done) * (todo.length - done))} left`;
    const result = await runArm(arm, seed, options, `[${done + 1}/${todo.length}${eta}] seed ${seed} ${arm}`);
    results.push(result);
    options.line.done();
    process.stdout.write(`seed ${seed} ${arm.padEnd(16)} final loss ${result.finalLoss.toFixed(4)}  honest applied ${result.honest.applied}/${result.honest.contributions}  attacker applied ${result.attackers.applied}/${result.attackers.contributions}${result.crashed.length > 0 ? `  CRASHED: ${result.crashed.join('; ')}` : ''}  ${formatDuration(result.seconds)}\n`);
    // Written after every arm: a long study that stops keeps what it measured.
    await writeFile(file, `${JSON.stringify(results, null, 2)}\n`);
  }
  return results;
}

function seedsOf(n: number): string {
  return `${n} seed${n === 1 ? '' : 's'}`;
}

function mean(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);
}

function sum(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

function mb(bytes: number): string {
  return bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB` : `${(bytes / 1e3).toFixed(1)} kB`;
}
