// `npm run train -- [--config FILE.yaml] [--out DIR]`: trains one model in one process (the inner
// loop on a worker thread), with a live progress line, periodic validation, and at the end a
// checkpoint, a loss-curve SVG and a summary next to each other in --out.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { modelHash, saveCheckpoint } from '../checkpoint.js';
import { TrainerThread } from '../engine/trainer-thread.js';
import { describeModel, familyOf, modelParamSpecs } from '../model/family.js';
import { layoutOf } from '../params.js';
import { lineChart } from '../report/line-chart.js';
import { formatDuration, ProgressLine } from '../report/progress.js';
import { ConfigError, parseTrainConfigYaml } from '../train/config.js';

const DEFAULT_CONFIG = 'trainer/configs/small.yaml';

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { config: { type: 'string', default: DEFAULT_CONFIG }, out: { type: 'string', default: 'out/train' } } });
  let config;
  try {
    config = parseTrainConfigYaml(await readFile(values.config!, 'utf8'));
  } catch (error) {
    if (error instanceof ConfigError || (error as NodeJS.ErrnoException).code === 'ENOENT') {
      console.error(`${values.config}: ${(error as Error).message}`);
      return 2;
    }
    throw error;
  }
  const out = resolve(values.out!);
  await mkdir(out, { recursive: true });
  const { model, inner, train } = config;
  // What the run will cost, before it starts: a model too large for the device shows here.
  console.log(`config ${values.config}: ${describeModel(model, inner.batch)}`);
  console.log(`batch ${inner.batch}, lr ${inner.lr}; ${train.steps} steps or ${train.minutes} min`);
  const trainer = await TrainerThread.start(config);
  const { ready } = trainer;
  console.log(`${(ready.paramCount / 1e6).toFixed(2)}M parameters on ${ready.provider}; ${ready.trainTokens.toLocaleString('en-US')} train and ${ready.validationTokens.toLocaleString('en-US')} validation tokens`);
  console.log(`unigram entropy of the corpus: ${ready.unigramEntropy.toFixed(3)} nats (the loss of a model that knows only token frequencies)`);

  const started = Date.now();
  const deadlineMs = started + train.minutes * 60_000;
  const trainLoss: Array<[number, number]> = [];
  const validation: Array<[number, number]> = [[0, await trainer.evaluate()]];
  let tokens = 0;
  const line = new ProgressLine();
  while (trainer.optimizerStep < train.steps && Date.now() < deadlineMs) {
    const segment = Math.min(train.evalEvery, train.steps - trainer.optimizerStep);
    const first = trainer.optimizerStep;
    const result = await trainer.train({
      maxSteps: segment, deadlineMs,
      onProgress: (p) => {
        const remaining = Math.min((train.steps - p.step) / Math.max(1e-9, p.step - first) * (p.elapsedMs / 1000), (deadlineMs - Date.now()) / 1000);
        line.update(`step ${p.step}/${train.steps}  loss ${p.loss.toFixed(3)}  ${(p.tokensPerSecond / 1000).toFixed(1)}k tok/s  lr ${p.lr.toExponential(2)}  |g| ${p.gradNorm.toFixed(2)}  ETA ${formatDuration(remaining)}`);
      },
    });
    result.losses.forEach((loss, i) => trainLoss.push([first + i + 1, loss]));
    tokens += result.tokens;
    const loss = await trainer.evaluate();
    validation.push([trainer.optimizerStep, loss]);
    line.update(`step ${trainer.optimizerStep}/${train.steps}  validation loss ${loss.toFixed(3)}`);
    if (result.stoppedBy === 'deadline') break;
  }
  line.done();
  const seconds = (Date.now() - started) / 1000;
  const finalLoss = validation.at(-1)![1];
  const layout = layoutOf(modelParamSpecs(model));
  const params = await trainer.readParams();
  const hash = modelHash(layout, params);
  await saveCheckpoint(join(out, 'model.ckpt'), {
    layout, sections: new Map([['params', params], ['adam_m', trainer.m], ['adam_v', trainer.v]]),
    meta: { config, step: trainer.optimizerStep, tokens, validationLoss: finalLoss },
  });
  await writeFile(join(out, 'loss.svg'), lineChart({
    title: `${familyOf(model) === 'llama' ? 'Llama' : 'GPT'} ${(ready.paramCount / 1e6).toFixed(1)}M on ${config.data.dir === undefined ? 'the Brown corpus' : config.data.dir}`, xLabel: 'step', yLabel: 'loss (nats per token)',
    series: [
      { name: 'train (mean of 20 steps)', points: smooth(trainLoss, 20) },
      { name: 'validation', points: validation },
      { name: 'unigram entropy', points: [[0, ready.unigramEntropy], [trainer.optimizerStep, ready.unigramEntropy]], dashed: true },
    ],
  }));
  const summary = {
    config: values.config, steps: trainer.optimizerStep, tokens, seconds, provider: ready.provider, parameters: ready.paramCount,
    validationLoss: finalLoss, unigramEntropy: ready.unigramEntropy, modelHash: hash.toString('hex'), validation,
  };
  await writeFile(join(out, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  await trainer.close();
  console.log(`done: ${trainer.optimizerStep} steps, ${tokens.toLocaleString('en-US')} tokens in ${formatDuration(seconds)} (${Math.round(tokens / seconds).toLocaleString('en-US')} tok/s)`);
  console.log(`validation loss ${finalLoss.toFixed(3)} nats vs unigram entropy ${ready.unigramEntropy.toFixed(3)} nats`);
  console.log(`model hash ${hash.toString('hex')}`);
  console.log(`wrote ${join(out, 'model.ckpt')}, ${join(out, 'loss.svg')}, ${join(out, 'summary.json')}`);
  return 0;
}

/** Mean of each window of `size` consecutive points, at the window's last x. */
function smooth(points: ReadonlyArray<readonly [number, number]>, size: number): Array<[number, number]> {
  const result: Array<[number, number]> = [];
  for (let i = size - 1; i < points.length; i += Math.max(1, Math.floor(size / 2))) {
    let sum = 0;
    for (let j = i - size + 1; j <= i; j++) sum += points[j]![1];
    result.push([points[i]![0], sum / size]);
  }
  return result;
}

process.exitCode = await main();
