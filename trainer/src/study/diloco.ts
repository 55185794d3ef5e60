// `npm run study -- diloco [--steps N] [--out DIR]` (scripts/study.ts): what DiLoCo and SparseLoCo cost in model
// quality on real text, against synchronous data-parallel training, at equal total tokens.
//
// Four peers are simulated in one process (one ORT session, each peer with its own parameters,
// AdamW state and, for SparseLoCo, error-feedback buffer). Every arm sees exactly the same
// batches: peer p's batch at inner step s comes from assign() with four peer ids, round = the
// outer round, so the data is disjoint across peers within a round and identical across arms.
//
//   sync      every step: the four peers' gradients are averaged, one AdamW step (data-parallel)
//   diloco    every H steps: Δ_p = θ_r − θ_p averaged, Nesterov outer step (lr 0.7, μ 0.9)
//   sparseloco like diloco, each Δ_p (+ its error feedback) compressed and decoded, then the
//             deterministic aggregation of trainer/src/outer (median-norm clipping, tokens × score)
//
// Writes docs/convergence.md's table and plot inputs: results.json and convergence.svg in --out.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { decodePayload, SparseLoCoEncoder, type CodecParams } from '../codec/index.js';
import { assign } from '../data/assign.js';
import { loadDataset, type Dataset } from '../data/dataset.js';
import { GraphRunner, openSession } from '../engine/session.js';
import { parseGptConfig, type GptConfig } from '../model/config.js';
import { buildGptGraph, gptParamSpecs, initGptParams, isDecayed } from '../model/gpt.js';
import { aggregate, type Contribution } from '../outer/aggregate.js';
import { DILOCO_OUTER, OuterOptimizer, TEMPLAR_OUTER, type OuterConfig } from '../outer/optimizer.js';
import { layoutOf, type ParamLayout } from '../params.js';
import { lineChart } from '../report/line-chart.js';
import { formatDuration, ProgressLine } from '../report/progress.js';
import { AdamW } from '../train/adamw.js';
import { evaluate, evenlySpacedBatches } from '../train/inner-loop.js';
import { learningRate, type ScheduleConfig } from '../train/schedule.js';
import { BatchGradient, trainSynchronous } from './synchronous.js';

const PEERS = ['peer-0', 'peer-1', 'peer-2', 'peer-3'];
const SEED = 20261125;

interface Arm {
  name: string;
  kind: 'sync' | 'diloco' | 'sparseloco';
  /** Inner steps per outer round (DiLoCo arms). */
  innerSteps?: number;
  codec?: CodecParams & { errorDecay?: number };
  outer?: OuterConfig;
}

interface ArmResult {
  name: string;
  finalValidationLoss: number;
  /** [tokens processed by all peers, validation loss]. */
  curve: Array<[number, number]>;
  bytesSentPerPeer: number;
  compressionVsFloat32: number;
  seconds: number;
}

interface Setup {
  model: GptConfig;
  dataset: Dataset;
  layout: ParamLayout;
  runner: GraphRunner;
  evalRunner: GraphRunner;
  batch: number;
  /** Inner steps per peer. */
  steps: number;
  schedule: ScheduleConfig;
  validationBatches: number[][];
  evalEvery: number;
}

/** The batches of peer `p` at its inner step `s` (H = steps per round, for the round number). */
function offsets(setup: Setup, p: number, s: number, roundLength: number): readonly number[] {
  const round = Math.floor(s / roundLength);
  return assign({
    runSeed: BigInt(SEED), peers: PEERS, peerId: PEERS[p]!, round, replica: 0, replicas: 1,
    batchSize: setup.batch, seqLen: setup.model.seqLen, tokens: setup.dataset.train.length, batches: 1, firstBatch: s - round * roundLength,
  })[0]!;
}

class Peer {
  readonly optimizer: AdamW;
  readonly params: Float32Array;
  private readonly gradientOf: BatchGradient;

  constructor(private readonly setup: Setup, start: Float32Array) {
    this.params = start.slice();
    this.optimizer = new AdamW(setup.layout, isDecayed, ADAMW);
    this.gradientOf = new BatchGradient(setup.runner, setup.dataset.train, { batch: setup.batch, seqLen: setup.model.seqLen });
  }

  /** Loss and gradient of the batch at `batchOffsets` at the peer's parameters. */
  gradient(batchOffsets: readonly number[]): Promise<{ loss: number; grads: Float32Array }> {
    return this.gradientOf.at(this.params, batchOffsets);
  }
}

const ADAMW = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, gradClip: 1 };

async function runArm(setup: Setup, arm: Arm, line: ProgressLine): Promise<ArmResult> {
  const started = Date.now();
  const { steps, batch, schedule, layout } = setup;
  const tokensPerStep = batch * setup.model.seqLen;
  const theta = initGptParams(setup.model, SEED);
  const curve: Array<[number, number]> = [];
  const validate = async (tokens: number) => curve.push([tokens, await evaluate(setup.evalRunner, theta, setup.dataset.validation, { batch, seqLen: setup.model.seqLen, batches: setup.validationBatches })]);
  await validate(0);
  let bytesSent = 0;
  const report = (s: number) => line.update(`${arm.name}: step ${s}/${steps}  ${formatDuration((Date.now() - started) / 1000)}`);

  if (arm.kind === 'sync') {
    await trainSynchronous({
      gradient: new BatchGradient(setup.runner, setup.dataset.train, { batch, seqLen: setup.model.seqLen }),
      params: theta, optimizer: new AdamW(layout, isDecayed, ADAMW), schedule, steps,
      batchesAt: (s) => PEERS.map((_, p) => offsets(setup, p, s, setup.evalEvery)),
      afterStep: async (s) => {
        // An all-reduce moves each peer's gradient once (ring all-reduce: ~2× that; counted once).
        bytesSent += layout.size * 4;
        if (s % setup.evalEvery === 0 || s === steps) await validate(s * tokensPerStep * PEERS.length);
        report(s);
      },
    });
  } else {
    const H = arm.innerSteps!;
    const peers = PEERS.map(() => new Peer(setup, theta));
    const encoders = arm.codec ? PEERS.map(() => new SparseLoCoEncoder(layout.size, arm.codec!)) : [];
    const outer = new OuterOptimizer(layout.size, arm.outer ?? DILOCO_OUTER);
    const delta = new Float32Array(layout.size);
    for (let start = 0; start < steps; start += H) {
      const length = Math.min(H, steps - start);
      const updates: Contribution[] = [];
      const plain: Float32Array[] = [];
      for (let p = 0; p < PEERS.length; p++) {
        const peer = peers[p]!;
        peer.params.set(theta);
        for (let s = start; s < start + length; s++) {
          const { grads } = await peer.gradient(offsets(setup, p, s, H));
          peer.optimizer.update(peer.params, grads, learningRate(s, schedule));
        }
        for (let i = 0; i < delta.length; i++) delta[i] = theta[i]! - peer.params[i]!;
        if (arm.codec) {
          const payload = encoders[p]!.encode(delta);
          bytesSent += p === 0 ? payload.length : 0;
          updates.push({ peerId: PEERS[p]!, tokens: length * tokensPerStep, score: 1, update: decodePayload(payload, layout.size) });
        } else {
          bytesSent += p === 0 ? layout.size * 4 : 0;
          plain.push(delta.slice());
        }
      }
      const combined = arm.codec ? aggregate(updates, layout.size).delta : meanOf(plain);
      outer.step(theta, combined);
      report(start + length);
      if ((start + length) % setup.evalEvery === 0 || start + length === steps) await validate((start + length) * tokensPerStep * PEERS.length);
    }
  }
  const bytesPerRoundFloat32 = layout.size * 4;
  const rounds = arm.kind === 'sync' ? steps : Math.ceil(steps / arm.innerSteps!);
  return {
    name: arm.name, finalValidationLoss: curve.at(-1)![1], curve, bytesSentPerPeer: bytesSent,
    compressionVsFloat32: (bytesPerRoundFloat32 * rounds) / bytesSent, seconds: (Date.now() - started) / 1000,
  };
}

/** Plain mean, for DiLoCo without compression (all peers trained the same number of tokens). */
function meanOf(vectors: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(vectors[0]!.length);
  for (const v of vectors) for (let i = 0; i < out.length; i++) out[i] = out[i]! + v[i]! / vectors.length;
  return out;
}

// SparseLoCo arms run the outer step as Templar does (plain SGD, lr 1, error-feedback decay 0.95
// standing in for momentum): with DiLoCo's Nesterov momentum on top of error feedback the sparse
// updates overshoot (see docs/convergence.md). DiLoCo without compression runs both ways, and
// the better of the two is the baseline.
const SPARSE = { innerSteps: 10, outer: TEMPLAR_OUTER } as const;
const ARMS: Arm[] = [
  { name: 'sync data-parallel', kind: 'sync' },
  { name: 'DiLoCo H=10, Nesterov 0.7/0.9', kind: 'diloco', innerSteps: 10 },
  { name: 'DiLoCo H=10, SGD lr 1', kind: 'diloco', innerSteps: 10, outer: TEMPLAR_OUTER },
  { name: 'SparseLoCo 64/4096 2-bit', kind: 'sparseloco', ...SPARSE, codec: { chunk: 4096, k: 64, bits: 2, errorDecay: 0.95 } },
  { name: 'SparseLoCo 128/4096 2-bit', kind: 'sparseloco', ...SPARSE, codec: { chunk: 4096, k: 128, bits: 2, errorDecay: 0.95 } },
  { name: 'SparseLoCo 64/4096 4-bit', kind: 'sparseloco', ...SPARSE, codec: { chunk: 4096, k: 64, bits: 4, errorDecay: 0.95 } },
  { name: 'SparseLoCo 64/4096 2-bit, Nesterov, EF 1', kind: 'sparseloco', innerSteps: 10, codec: { chunk: 4096, k: 64, bits: 2 } },
];

/** `npm run study -- diloco [--steps N] [--out DIR] [--arms 0,1,2]`, with the arguments after `diloco`. */
export async function dilocoStudy(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { steps: { type: 'string', default: '600' }, out: { type: 'string', default: 'out/study-diloco' }, arms: { type: 'string' } } });
  const steps = Number(values.steps);
  const model = parseGptConfig({ vocabSize: 4096, seqLen: 64, layers: 2, dModel: 128, heads: 4 });
  const batch = 8;
  const dataset = await loadDataset({ vocabSize: model.vocabSize });
  const layout = layoutOf(gptParamSpecs(model));
  const runner = new GraphRunner((await openSession(buildGptGraph(model, { batch, outputs: 'train' }))).session, layout);
  const evalRunner = new GraphRunner((await openSession(buildGptGraph(model, { batch, outputs: 'loss' }))).session, layout);
  const setup: Setup = {
    model, dataset, layout, runner, evalRunner, batch, steps, evalEvery: 50,
    schedule: { lr: 3e-3, warmupSteps: 20, decaySteps: steps, minLrRatio: 0.1 },
    validationBatches: evenlySpacedBatches(dataset.validation.length, { batch, seqLen: model.seqLen, count: 16 }),
  };
  const arms = values.arms ? values.arms.split(',').map((i) => ARMS[Number(i)]!) : ARMS;
  console.log(`${PEERS.length} peers, ${(layout.size / 1e6).toFixed(2)}M-parameter GPT (${model.layers} layers, dModel ${model.dModel}), batch ${batch}×${model.seqLen}, ${steps} inner steps per peer, seed ${SEED}`);
  const line = new ProgressLine();
  const results: ArmResult[] = [];
  for (const arm of arms) {
    const result = await runArm(setup, arm, line);
    line.done();
    console.log(`${arm.name}: validation loss ${result.finalValidationLoss.toFixed(4)}, ${(result.bytesSentPerPeer / 1e6).toFixed(2)} MB sent per peer (${result.compressionVsFloat32.toFixed(1)}× less than float32), ${formatDuration(result.seconds)}`);
    results.push(result);
  }
  await mkdir(values.out!, { recursive: true });
  await writeFile(join(values.out!, 'results.json'), `${JSON.stringify({ seed: SEED, steps, peers: PEERS.length, model, batch, results }, null, 2)}\n`);
  await writeFile(join(values.out!, 'convergence.svg'), lineChart({
    title: `Validation loss, ${PEERS.length} peers, equal tokens`, xLabel: 'tokens (all peers)', yLabel: 'validation loss (nats)',
    series: results.map((r) => ({ name: r.name, points: r.curve })),
  }));
  console.log(`wrote ${join(values.out!, 'results.json')} and ${join(values.out!, 'convergence.svg')}`);
  return 0;
}

