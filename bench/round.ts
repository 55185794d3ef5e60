// `npm run bench -- round [--config TRAIN.yaml] [--clusters N] [--rounds N] [--window S] [--eval-batches N] [--eval-sample N]`
//
// Runs the local federation (scripts/local-federation.ts: coordinator and trainer processes on
// loopback, all honest) and reports two goals of issue #5:
//   - the share of each round's wall time spent outside the inner steps (contribute, gather,
//     validate, agree, apply, and the hash check that ends the round); goal ≤ 10 %;
//   - each coordinator's peak RSS above what the process weighed before the model existed,
//     against the model's float32 bytes: contributions are decoded one at a time into the
//     aggregate, so the goal is ≤ 4 × the model plus the round's compressed contributions.
// The baseline of both is measured in the same run (the train phase; the start RSS).
//
// The default window, 90 s, gives about 30 inner steps a round with four clusters' trainers on
// this 2-core machine: Covenant-72B's H = 30, the configuration behind Templar's 94.5 % compute
// utilisation that the goal cites. The table prints the inner steps each round really had.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { fmt, median, table } from './report.js';

interface Outcome {
  clusters: Record<string, {
    memory?: { startRssBytes: number; peakRssBytes: number; modelBytes: number };
    rounds: Array<{ round: string; wallSeconds: number; phaseSeconds: Record<string, number>; payloadBytes: number; tokens: string | number }>;
  }>;
  honestAgree: boolean;
}

export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args, options: {
      config: { type: 'string', default: 'trainer/configs/medium.yaml' }, clusters: { type: 'string', default: '4' },
      rounds: { type: 'string', default: '3' }, window: { type: 'string', default: '90' }, 'eval-batches': { type: 'string', default: '2' }, 'eval-sample': { type: 'string', default: '1' },
    },
  });
  const dir = await mkdtemp(join(tmpdir(), 'concord-bench-round-'));
  try {
    const json = join(dir, 'outcome.json');
    const rounds = Number(values.rounds);
    const window = Number(values.window);
    console.log(`round: ${values.clusters} clusters, ${rounds} rounds of ${window} s, model ${values.config}, ${values['eval-batches']} Gauntlet batches per side, ${values['eval-sample']} contribution(s) scored per coordinator and round`);
    const launcher = execFile(process.execPath, [
      'dist/scripts/local-federation.js', '--attack', 'none', '--clusters', values.clusters!, '--rounds', String(rounds), '--window', String(window),
      '--grace', String(Math.max(10, window / 2)), '--config', values.config!, '--eval-batches', values['eval-batches']!, '--eval-sample', values['eval-sample']!,
      '--out', join(dir, 'report'), '--json', json, '--timeout', String(Math.ceil(rounds * window * 3 + 300)),
    ], { maxBuffer: 64 * 1024 * 1024 });
    launcher.stdout!.pipe(process.stderr);
    const code = await new Promise<number>((resolve) => launcher.on('exit', (c) => resolve(c ?? 1)));
    if (code !== 0) {
      console.error(`the federation failed (exit ${code})`);
      return 1;
    }
    const outcome = JSON.parse(await readFile(json, 'utf8')) as Outcome;
    const clusters = Object.entries(outcome.clusters);
    // Inner steps per round (Templar's H): the cluster's tokens over one step's tokens.
    const model = parseYaml(await readFile(values.config!, 'utf8')) as { model: { seqLen: number }; inner: { batch: number } };
    const stepTokens = model.model.seqLen * model.inner.batch;

    // Time: per round, the median over clusters of each phase and of the share outside training.
    const rows: string[][] = [];
    const shares: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const per = clusters.map(([, c]) => c.rounds[r]!).filter((x) => x !== undefined);
      const phase = (name: string) => median(per.map((x) => x.phaseSeconds[name] ?? 0));
      const wall = median(per.map((x) => x.wallSeconds));
      const outside = per.map((x) => 1 - (x.phaseSeconds.train ?? 0) / x.wallSeconds);
      shares.push(...outside);
      const steps = median(per.map((x) => Number(x.tokens) / stepTokens));
      const rest = wall - ['train', 'contribute', 'gather', 'validate', 'agree', 'apply'].reduce((sum, p) => sum + phase(p), 0);
      rows.push([String(r), fmt(steps, 0), fmt(wall, 1), fmt(phase('train'), 1), fmt(phase('contribute'), 2), fmt(phase('gather'), 2), fmt(phase('validate'), 2), fmt(phase('agree'), 2), fmt(phase('apply'), 2), fmt(rest, 2), `${fmt(100 * median(outside), 1)} %`]);
    }
    console.log('\nWall time per round, seconds (median over the clusters)\n');
    console.log(table(['round', 'inner steps', 'wall', 'train', 'contribute', 'gather', 'validate', 'agree', 'apply', 'hash check', 'outside inner steps'], rows));
    const share = median(shares);
    console.log(`\noutside inner steps: median ${fmt(100 * share, 1)} %, worst ${fmt(100 * Math.max(...shares), 1)} % (goal ≤ 10 %): ${share <= 0.1 ? 'met' : 'NOT met'}`);

    // Memory: peak RSS above the process before the model, against the model.
    const memoryRows: string[][] = [];
    let worst = 0;
    for (const [name, c] of clusters) {
      const m = c.memory;
      if (m === undefined) continue;
      const compressed = Math.max(...c.rounds.map((x) => x.payloadBytes)) * 4 / 3;
      const growth = m.peakRssBytes - m.startRssBytes;
      const ratio = growth / m.modelBytes;
      const goal = 4 + compressed / m.modelBytes;
      worst = Math.max(worst, ratio / goal);
      memoryRows.push([name, mib(m.startRssBytes), mib(m.peakRssBytes), mib(growth), mib(m.modelBytes), `${fmt(ratio, 2)}×`, `${fmt(goal, 2)}×`]);
    }
    console.log('\nCoordinator memory (peak RSS above the process before it built the model)\n');
    console.log(table(['cluster', 'RSS at start', 'peak RSS', 'growth', 'model float32', 'growth / model', 'goal'], memoryRows));
    console.log(`\nmemory: worst growth is ${fmt(worst, 2)} of its goal (4 × model + the round's compressed contributions): ${worst <= 1 ? 'met' : 'NOT met'}`);
    console.log(`honest clusters agreed on every round: ${outcome.honestAgree ? 'yes' : 'NO'}`);
    return 0;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function mib(bytes: number): string {
  return `${fmt(bytes / 1024 / 1024, 1)} MiB`;
}
