// `npm run bench -- trainer [--steps N] [--runs N] [--json FILE]`
//
// (a) Speed: tokens/s of whole training steps (batch gathering, forward + backward in ORT,
//     gradient clipping, AdamW, on the trainer's worker thread) for a dModel=512 GPT, turned into
//     achieved FLOP/s with the usual count (3 × forward matmul FLOPs per token), against the peak
//     of a bare ORT MatMul on the same threads, measured in the same run, interleaved: an
//     MFU-style ratio. Goal ≥ 0.5.
// (b) Memory: the peak RSS of a process that only trains (bench/trainer-memory.ts, 10 steps)
//     against a floor computed from the config: parameters,
//     gradients, both AdamW moments (4 × P float32), and the activations one step must keep for
//     the backward pass (see activationFloorBytes). Goal ≤ 2× the floor.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import * as ort from 'onnxruntime-node';
import { TrainerThread } from '../trainer/src/engine/trainer-thread.js';
import { Graph, matmul, toOnnx } from '../trainer/src/graph/index.js';
import { gptFlopsPerToken, gptParamCount, mlpWidth, type GptConfig } from '../trainer/src/model/config.js';
import { parseTrainConfig } from '../trainer/src/train/config.js';
import { fmt, median, progress, progressDone, table } from './report.js';

const GOALS = { mfu: 0.5, memory: 2 };
const THREADS = 2;
const USAGE = 'usage: npm run bench -- trainer [--steps N (per run, default 20)] [--runs N (default 5)] [--json FILE]';

export async function main(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args, options: { steps: { type: 'string', default: '20' }, runs: { type: 'string', default: '5' }, json: { type: 'string' } } }));
  } catch (error) {
    console.error(`${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  const steps = Number(values.steps);
  const runs = Number(values.runs);
  if (!Number.isInteger(steps) || steps < 1 || !Number.isInteger(runs) || runs < 1) {
    console.error(USAGE);
    return 2;
  }
  const raw = {
    seed: 1,
    model: { vocabSize: 4096, seqLen: 128, layers: 4, dModel: 512, heads: 8 },
    inner: { batch: 8, lr: 1e-3, warmupSteps: 10 },
    train: { steps: 1_000_000, minutes: 60, threads: THREADS, device: 'cpu' },
  };
  const config = parseTrainConfig(raw);
  const model = config.model;
  const tokensPerStep = config.inner.batch * model.seqLen;
  const flopsPerToken = gptFlopsPerToken(model, 'train');

  progress('starting the trainer (building graphs, loading the corpus)');
  const trainer = await TrainerThread.start(config);
  const peak = await matmulPeak();
  await trainer.train({ maxSteps: 3 }); // warm-up: first runs allocate ORT's buffers
  const peakFlops: number[] = [];
  const stepFlops: number[] = [];
  const tokensPerSecond: number[] = [];
  for (let run = 1; run <= runs; run++) {
    progress(`run ${run}/${runs}: MatMul peak`);
    peakFlops.push(await peak.measure());
    progress(`run ${run}/${runs}: ${steps} training steps`);
    const started = performance.now();
    await trainer.train({ maxSteps: steps });
    const seconds = (performance.now() - started) / 1000;
    tokensPerSecond.push((steps * tokensPerStep) / seconds);
    stepFlops.push((steps * tokensPerStep * flopsPerToken) / seconds);
  }
  await trainer.close();
  progress('peak memory of a process that only trains');
  const { stdout } = await promisify(execFile)(process.execPath, [fileURLToPath(new URL('./trainer-memory.js', import.meta.url)), JSON.stringify(raw), '10']);
  const { maxRssBytes } = JSON.parse(stdout) as { maxRssBytes: number };
  progressDone();

  const params = gptParamCount(model);
  const floor = { state: 16 * params, activations: activationFloorBytes(model, config.inner.batch) };
  const floorBytes = floor.state + floor.activations;
  const mfu = median(stepFlops) / median(peakFlops);
  const memoryRatio = maxRssBytes / floorBytes;
  console.log(`trainer: GPT ${model.layers} layers, dModel ${model.dModel}, ${model.heads} heads, seq ${model.seqLen}, vocab ${model.vocabSize} (${fmt(params / 1e6, 2)}M parameters), batch ${config.inner.batch}, ${THREADS} threads, CPU; median of ${runs} interleaved runs of ${steps} steps\n`);
  console.log(table(['what', 'value', 'goal'], [
    ['ORT MatMul peak, GFLOP/s (baseline)', fmt(median(peakFlops) / 1e9, 1), ''],
    ['training step, GFLOP/s achieved', fmt(median(stepFlops) / 1e9, 1), ''],
    ['tokens/s', fmt(median(tokensPerSecond), 0), ''],
    ['ratio (MFU-style)', fmt(mfu, 2), `≥ ${GOALS.mfu} ${mfu >= GOALS.mfu ? 'MET' : 'MISSED'}`],
    ['peak RSS, MB', fmt(maxRssBytes / 1e6, 0), ''],
    ['floor, MB (state + activations)', `${fmt(floorBytes / 1e6, 0)} (${fmt(floor.state / 1e6, 0)} + ${fmt(floor.activations / 1e6, 0)})`, ''],
    ['peak RSS / floor', fmt(memoryRatio, 2), `≤ ${GOALS.memory} ${memoryRatio <= GOALS.memory ? 'MET' : 'MISSED'}`],
  ]));
  if (values.json !== undefined) {
    writeFileSync(values.json, `${JSON.stringify({ benchmark: 'trainer', date: new Date().toISOString(), model, batch: config.inner.batch, threads: THREADS, peakFlops, stepFlops, tokensPerSecond, maxRssBytes, floor }, null, 2)}\n`);
  }
  return 0;
}

/**
 * Bytes of activations one training step must hold for its backward pass, at float32, for a
 * pre-norm GPT (what any implementation that does not recompute must keep): per layer the block
 * input, both norm outputs, q/k/v, the attention output, the MLP hidden before and after GELU
 * (B·T·(1 + 1 + 3 + 1 + 1 + 2·mlp) values, mlp = hidden/dModel, times dModel) plus the attention
 * probabilities (B·heads·T·T); then the final norm output (B·T·C) and the logits with their
 * softmax (2·B·T·V).
 */
export function activationFloorBytes(model: GptConfig, batch: number): number {
  const { seqLen: T, layers: L, dModel: C, heads: H, vocabSize: V } = model;
  const bt = batch * T;
  const mlp = mlpWidth(model) / C;
  const perLayer = bt * C * (6 + 2 * mlp) + batch * H * T * T;
  return 4 * (L * perLayer + bt * C + 2 * bt * V);
}

/** The best of a few MatMul shapes the model uses, in a bare one-node ORT graph (GFLOP/s × 1e9). */
async function matmulPeak(): Promise<{ measure: () => Promise<number> }> {
  const shapes: Array<[number, number, number]> = [[1024, 512, 2048], [1024, 2048, 512], [2048, 2048, 2048]];
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
        const times: number[] = [];
        for (let i = 0; i < 5; i++) {
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
