// `npm run bench -- trainer [--models gpt,llama] [--steps N] [--runs N] [--json FILE]`
//
// For each model, both at dModel 512 (a GPT, and a Llama-family model with grouped-query
// attention and an untied output):
// (a) Speed: tokens/s of whole training steps (batch gathering, forward + backward in ORT,
//     gradient clipping, AdamW, on the trainer's worker thread), turned into achieved FLOP/s with
//     the usual count (3 × forward matmul FLOPs per token), against the peak of a bare ORT MatMul
//     on the same threads measured right before and right after each model's steps (the host is
//     shared, and its speed drifts within a minute): an MFU-style ratio per run, reported as the
//     median and range over runs. Goals: GPT ≥ 0.5, Llama ≥ 0.7.
// (b) Memory: the peak RSS of a process that only trains (bench/trainer-memory.ts, 10 steps)
//     against a floor computed from the config: parameters, gradients, both AdamW moments
//     (4 × P float32), and the activations one step must keep for the backward pass
//     (activationFloorBytes in trainer/src/model/family.ts). Goal ≤ 2× the floor.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import * as ort from 'onnxruntime-node';
import { TrainerThread } from '../trainer/src/engine/trainer-thread.js';
import { Graph, matmul, toOnnx } from '../trainer/src/graph/index.js';
import { describeModel, modelFlopsPerToken, trainingMemoryFloor } from '../trainer/src/model/family.js';
import { parseTrainConfig, type TrainConfig } from '../trainer/src/train/config.js';
import { fmt, median, progress, progressDone, table } from './report.js';

const THREADS = 2;
const MEMORY_GOAL = 2;
const USAGE = 'usage: npm run bench -- trainer [--models gpt,llama (default both)] [--steps N (per run, default 20)] [--runs N (default 5)] [--json FILE]';

/** The benchmark's models: same width, depth, context, vocabulary and batch. */
const MODELS = {
  gpt: { label: 'GPT', goal: 0.5, model: { vocabSize: 4096, seqLen: 128, layers: 4, dModel: 512, heads: 8 } },
  llama: { label: 'Llama', goal: 0.7, model: { family: 'llama', vocabSize: 4096, seqLen: 128, layers: 4, dModel: 512, heads: 8, kvHeads: 4 } },
} as const;
type ModelName = keyof typeof MODELS;

interface Measured {
  name: ModelName;
  raw: unknown;
  config: TrainConfig;
  trainer: TrainerThread;
  stepFlops: number[];
  tokensPerSecond: number[];
  /** Per run: stepFlops over the mean of the MatMul peak just before and just after. */
  ratios: number[];
  maxRssBytes?: number;
}

export async function main(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args, options: { models: { type: 'string', default: 'gpt,llama' }, steps: { type: 'string', default: '20' }, runs: { type: 'string', default: '5' }, json: { type: 'string' } } }));
  } catch (error) {
    console.error(`${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  const steps = Number(values.steps);
  const runs = Number(values.runs);
  const names = values.models!.split(',');
  if (!Number.isInteger(steps) || steps < 1 || !Number.isInteger(runs) || runs < 1 || names.some((n) => !(n in MODELS))) {
    console.error(USAGE);
    return 2;
  }
  const peak = await matmulPeak();
  const measured: Measured[] = [];
  for (const name of names as ModelName[]) {
    const raw = {
      seed: 1,
      model: MODELS[name].model,
      inner: { batch: 8, lr: 1e-3, warmupSteps: 10 },
      train: { steps: 1_000_000, minutes: 60, threads: THREADS, device: 'cpu' },
    };
    const config = parseTrainConfig(raw);
    progress(`${name}: starting the trainer (building graphs, loading the corpus)`);
    const trainer = await TrainerThread.start(config);
    await trainer.train({ maxSteps: 3 }); // warm-up: first runs allocate ORT's buffers
    measured.push({ name, raw, config, trainer, stepFlops: [], tokensPerSecond: [], ratios: [] });
  }
  const peakFlops: number[] = [];
  for (let run = 1; run <= runs; run++) {
    for (const m of measured) {
      progress(`run ${run}/${runs}: MatMul peak, then ${steps} ${m.name} training steps, then the peak again`);
      const before = await peak.measure();
      const tokensPerStep = m.config.inner.batch * m.config.model.seqLen;
      const started = performance.now();
      await m.trainer.train({ maxSteps: steps });
      const seconds = (performance.now() - started) / 1000;
      const after = await peak.measure();
      const flops = (steps * tokensPerStep * modelFlopsPerToken(m.config.model, 'train')) / seconds;
      peakFlops.push(before, after);
      m.tokensPerSecond.push((steps * tokensPerStep) / seconds);
      m.stepFlops.push(flops);
      m.ratios.push(flops / ((before + after) / 2));
    }
  }
  for (const m of measured) await m.trainer.close();
  for (const m of measured) {
    progress(`${m.name}: peak memory of a process that only trains`);
    const { stdout } = await promisify(execFile)(process.execPath, [fileURLToPath(new URL('./trainer-memory.js', import.meta.url)), JSON.stringify(m.raw), '10']);
    m.maxRssBytes = (JSON.parse(stdout) as { maxRssBytes: number }).maxRssBytes;
  }
  progressDone();

  console.log(`trainer: batch 8, ${THREADS} threads, CPU; ${runs} runs of ${steps} steps per model, each between two measurements of the MatMul peak`);
  for (const m of measured) console.log(`  ${MODELS[m.name].label}: ${describeModel(m.config.model, m.config.inner.batch)}`);
  console.log();
  const range = (values: number[], scale: number, digits: number) => `${fmt(Math.min(...values) / scale, digits)}–${fmt(Math.max(...values) / scale, digits)}`;
  const rows: string[][] = [['ORT MatMul peak, GFLOP/s (baseline; median, range)', `${fmt(median(peakFlops) / 1e9, 1)} (${range(peakFlops, 1e9, 0)})`, '']];
  const results = measured.map((m) => {
    const floor = trainingMemoryFloor(m.config.model, m.config.inner.batch);
    const mfu = median(m.ratios);
    const memoryRatio = m.maxRssBytes! / floor.total;
    const { label, goal } = MODELS[m.name];
    rows.push(
      [`${label}: training step, GFLOP/s achieved`, fmt(median(m.stepFlops) / 1e9, 1), ''],
      [`${label}: tokens/s`, fmt(median(m.tokensPerSecond), 0), ''],
      [`${label}: ratio (MFU-style; median, range)`, `${fmt(mfu, 2)} (${range(m.ratios, 1, 2)})`, `≥ ${goal} ${mfu >= goal ? 'MET' : 'MISSED'}`],
      [`${label}: peak RSS, MB`, fmt(m.maxRssBytes! / 1e6, 0), ''],
      [`${label}: floor, MB (state + activations)`, `${fmt(floor.total / 1e6, 0)} (${fmt(floor.state / 1e6, 0)} + ${fmt(floor.activations / 1e6, 0)})`, ''],
      [`${label}: peak RSS / floor`, fmt(memoryRatio, 2), `≤ ${MEMORY_GOAL} ${memoryRatio <= MEMORY_GOAL ? 'MET' : 'MISSED'}`],
    );
    return { model: m.config.model, stepFlops: m.stepFlops, tokensPerSecond: m.tokensPerSecond, ratios: m.ratios, maxRssBytes: m.maxRssBytes, floor };
  });
  console.log(table(['what', 'value', 'goal'], rows));
  if (values.json !== undefined) {
    writeFileSync(values.json, `${JSON.stringify({ benchmark: 'trainer', date: new Date().toISOString(), batch: 8, threads: THREADS, peakFlops, results }, null, 2)}\n`);
  }
  return 0;
}

/** The best of a few MatMul shapes the model uses, in a bare one-node ORT graph (GFLOP/s × 1e9). */
async function matmulPeak(): Promise<{ measure: () => Promise<number> }> {
  const shapes: Array<[number, number, number]> = [[1024, 512, 2048], [1024, 2048, 512], [2048, 2048, 2048]]; // the GPT's MLP, its transpose, a large square
  const sessions = await Promise.all(shapes.map(async ([m, k, n]) => {
    const g = new Graph({ dtype: 'float32' });
    const a = g.input('a', 'float32', [m, k]);
    const b = g.input('b', 'float32', [k, n]);
    const session = await ort.InferenceSession.create(toOnnx(g, { outputs: { c: matmul(a, b) } }), { intraOpNumThreads: THREADS, executionProviders: ['cpu'] });
    const feeds = {
      a: new ort.Tensor('float32', Float32Array.from({ length: m * k }, (_, i) => ((i % 13) - 6) / 13), [m, k]),
      b: new ort.Tensor('float32', Float32Array.from({ length: k * n }, (_, i) => ((i % 7) - 3) / 7), [k, n]),
    };
    const c = new Float32Array(m * n);
    const fetches = { c: new ort.Tensor('float32', c, [m, n]) };
    await session.run(feeds, fetches);
    return { flops: 2 * m * k * n, run: () => session.run(feeds, fetches) };
  }));
  return {
    measure: async () => {
      let best = 0;
      for (const s of sessions) {
        // At least 5 runs and a quarter of a second per shape, so one slow run does not decide.
        const times: number[] = [];
        for (let spent = 0; times.length < 5 || spent < 0.25; spent += times.at(-1)!) {
          const started = performance.now();
          await s.run();
          times.push((performance.now() - started) / 1000);
        }
        best = Math.max(best, s.flops / median(times));
      }
      return best;
    },
  };
}
