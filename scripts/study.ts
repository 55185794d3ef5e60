// `npm run study -- NAME [options]`: the project's studies, long runs that answer one question
// with a table and a plot (docs/convergence.md).
//   diloco      what DiLoCo and SparseLoCo cost against synchronous training (trainer/src/study/diloco.ts)
//   federation  centralised vs the federation vs every attack vs colluders, over seeds (scripts/federation/study.ts)
//     --seeds N (3)  --rounds N (20)  --steps N (20 inner steps per round)  --arms A,B,... (all)
//     --window SECONDS (5)  --grace SECONDS (3)  --eval-batches N (4)  --out DIR (out/study-federation)
//     --resume (keep the arms already in DIR/results.json, run the rest)
//     --remeasure (compute every federation arm's measures again from what its run logged in DIR)
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ProgressLine } from '../trainer/src/report/progress.js';
import { dilocoStudy } from '../trainer/src/study/diloco.js';
import { ARMS, finalLossPlot, remeasure, runStudy, studyPlot, studyTable, summarise, type ArmName } from './federation/study.js';

const [name, ...args] = process.argv.slice(2);

async function federationStudy(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      seeds: { type: 'string', default: '3' }, rounds: { type: 'string', default: '20' }, steps: { type: 'string', default: '20' }, arms: { type: 'string' },
      window: { type: 'string', default: '5' }, grace: { type: 'string', default: '3' }, 'eval-batches': { type: 'string', default: '4' },
      'final-eval-batches': { type: 'string', default: '32' }, out: { type: 'string', default: 'out/study-federation' },
      config: { type: 'string', default: 'trainer/configs/federation.yaml' }, resume: { type: 'boolean', default: false }, remeasure: { type: 'boolean', default: false },
    },
  });
  const count = (field: string, text: string | undefined) => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${field} must be a positive integer, got ${text}`);
    return n;
  };
  const arms = values.arms === undefined ? [...ARMS] : values.arms.split(',').map((arm) => {
    if (!(ARMS as readonly string[]).includes(arm)) throw new Error(`--arms: no arm "${arm}" (arms: ${ARMS.join(', ')})`);
    return arm as ArmName;
  });
  const out = resolve(values.out!);
  const seeds = Array.from({ length: count('seeds', values.seeds) }, (_, i) => i + 1);
  const options = {
    seeds, rounds: count('rounds', values.rounds), steps: count('steps', values.steps), windowSeconds: Number(values.window), graceSeconds: Number(values.grace),
    evalBatches: count('eval-batches', values['eval-batches']), finalEvalBatches: count('final-eval-batches', values['final-eval-batches']),
    trainConfigFile: resolve(values.config!), out, line: new ProgressLine(process.stdout, 10_000), resume: values.resume!,
  };
  process.stdout.write(`Federation study: ${arms.length} arms × ${seeds.length} seeds, ${options.rounds} rounds of ${options.steps} inner steps; results in ${out}\n`);
  let results = await runStudy(arms, options);
  if (values.remeasure) {
    results = await Promise.all(results.map((r) => remeasure(r, out)));
    await writeFile(join(out, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  }
  const summary = summarise(results);
  const table = studyTable(summary);
  await writeFile(join(out, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  await writeFile(join(out, 'table.md'), `${table}\n`);
  await writeFile(join(out, 'federation.svg'), studyPlot(results, ['centralised', 'honest', 'honest-3', 'coalition', 'sign-flip', 'bias', 'noise'].filter((a) => arms.includes(a as ArmName)) as ArmName[]));
  await writeFile(join(out, 'final-loss.svg'), finalLossPlot(summary));
  process.stdout.write(`\n${table}\n\n`);
  const { honestVsCentralised: vs } = summary;
  if (vs) process.stdout.write(`all-honest federation vs centralised: ${(100 * vs.mean).toFixed(1)}% (worst seed ${(100 * vs.worst).toFixed(1)}%), ${vs.bytesRatio.toFixed(0)}× fewer bytes per peer\n`);
  if (summary.honestContributions > 0) process.stdout.write(`honest contributions applied: ${summary.honestApplied}/${summary.honestContributions} (${((100 * summary.honestApplied) / summary.honestContributions).toFixed(1)}%)\n`);
  process.stdout.write(`wrote ${join(out, 'table.md')}, ${join(out, 'final-loss.svg')}, ${join(out, 'federation.svg')}, ${join(out, 'results.json')}\n`);
  return 0;
}

if (name === 'diloco') process.exitCode = await dilocoStudy(args);
else if (name === 'federation') process.exitCode = await federationStudy(args);
else {
  console.error('usage: npm run study -- diloco|federation [options] (scripts/study.ts lists them)');
  process.exitCode = 2;
}
