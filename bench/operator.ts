// `npm run bench -- operator [--runs N] [--concurrency N] [--workers N] [--heap-mib N]`
//
// Issue #6's goals, against a real API server (scripts/kube): the time for N TrainingRuns to reach
// a settled status (identity, children applied, status written) with the operator running as its
// own process, against the time the same API server takes to accept N creates of the same
// TrainingRun object with nobody reconciling them (the baseline, measured in the same run, same
// client concurrency); goal ≤ 3×. A second baseline shows what part of the gap is the API server's
// own work: a client creating, at the same concurrency, exactly the objects the operator writes
// per run (identity Secret and the children the builders make). And the operator's peak RSS with
// the N runs and their children in its cache; goal < 256 MiB.
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { CoreV1Api } from '@kubernetes/client-node';
import { GROUP, VERSION, type TrainingRun } from '../operator/src/api/types.js';
import { childrenOf, identitySecretOf } from '../operator/src/controllers/trainingrun/builders.js';
import { freePort } from '../operator/src/runtime/free-port.js';
import { installCrds, startCluster, waitFor, type TestCluster } from '../scripts/kube/cluster.js';
import { fmt, progress, progressDone, table } from './report.js';

const MiB = 1024 * 1024;

function runObject(name: string, namespace: string) {
  return {
    apiVersion: `${GROUP}/${VERSION}`, kind: 'TrainingRun', metadata: { name, namespace },
    spec: { runId: `bench-${name}`, model: { vocabSize: 512, seqLen: 32, layers: 1, dModel: 32, heads: 2 }, workers: [{ name: 'gpu', replicas: 2, gpu: { count: 1 } }] },
  };
}

/** Creates `count` runs in `namespace`, `concurrency` requests in flight; returns the seconds it took. */
async function createRuns(cluster: TestCluster, namespace: string, count: number, concurrency: number, label: string): Promise<number> {
  let next = 0;
  let done = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) {
      const i = next++;
      await cluster.objects.create(runObject(`run-${String(i).padStart(4, '0')}`, namespace));
      done++;
      if (done % 25 === 0) progress(`${label}: ${done}/${count} created`);
    }
  }));
  progressDone();
  return (performance.now() - started) / 1000;
}

/**
 * Creates, for `count` runs, the objects the operator writes for one (identity Secret, ConfigMap,
 * PVC, two Services, Deployment, StatefulSet), without owner references; returns the seconds.
 */
async function createChildren(cluster: TestCluster, namespace: string, count: number, concurrency: number): Promise<number> {
  const template = (await cluster.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, plural: 'trainingruns', namespace: 'baseline', name: 'run-0000' })) as TrainingRun;
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) {
      const i = next++;
      const run: TrainingRun = { ...template, metadata: { ...template.metadata, name: `run-${String(i).padStart(4, '0')}`, namespace } };
      const c = childrenOf(run, [], { coordinator: 'a', trainer: 'b' });
      const objects = [identitySecretOf(run, { privateKeyPem: 'x', publicKey: 'y' }), c.configMap, c.checkpoints, c.coordinatorService, c.federationService, c.coordinator, ...c.trainers];
      for (const object of objects) await cluster.objects.create({ ...object, metadata: { ...object.metadata!, ownerReferences: [] } });
      if (i % 25 === 0) progress(`children baseline: ${i}/${count} runs`);
    }
  }));
  progressDone();
  return (performance.now() - started) / 1000;
}

async function settledCount(cluster: TestCluster, namespace: string): Promise<number> {
  const list = (await cluster.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, plural: 'trainingruns', namespace })) as { items: TrainingRun[] };
  return list.items.filter((run) => run.status?.observedGeneration === run.metadata.generation && run.status?.identity?.publicKey !== undefined).length;
}

/** Peak and current RSS of a process, from /proc. */
async function memoryOf(pid: number): Promise<{ peak: number; now: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { peak: kib('VmHWM'), now: kib('VmRSS') };
}

export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { runs: { type: 'string', default: '500' }, concurrency: { type: 'string', default: '8' }, workers: { type: 'string', default: '8' }, 'heap-mib': { type: 'string', default: '160' } } });
  const runs = Number(values.runs);
  const concurrency = Number(values.concurrency);
  console.log(`operator: ${runs} TrainingRuns, ${concurrency} creates in flight, ${values.workers} reconcile workers per controller, operator heap capped at ${values['heap-mib']} MiB`);
  progress('starting an API server (scripts/kube/start.sh)');
  const cluster = await startCluster();
  let operator: ReturnType<typeof spawn> | undefined;
  try {
    await installCrds(cluster);
    const core = cluster.config.makeApiClient(CoreV1Api);
    for (const name of ['baseline', 'children', 'bench']) await core.createNamespace({ body: { metadata: { name } } });

    // Baseline: the API server alone accepting the same objects (nobody reconciles "baseline").
    const baseline = await createRuns(cluster, 'baseline', runs, concurrency, 'baseline');
    const children = await createChildren(cluster, 'children', runs, concurrency);

    const healthPort = await freePort();
    // The heap cap the chart gives the operator container (charts/concord values: operator.heapMiB):
    // without one, V8 lets garbage pile up to well above the live set before it collects.
    operator = spawn(process.execPath, [
      `--max-old-space-size=${values['heap-mib']}`, 'dist/operator/src/cmd/operator.js', '--kubeconfig', cluster.kubeconfigPath, '--namespace', 'bench',
      '--health-listen', `127.0.0.1:${healthPort}`, '--workers', values.workers!, '--poll-seconds', '600',
    ], { stdio: ['ignore', 'ignore', 'inherit'] });
    const pid = operator.pid!;
    await waitFor(async () => (await fetch(`http://127.0.0.1:${healthPort}/readyz`).catch(() => undefined))?.status === 200, 60_000, 'the operator to be ready');
    const idle = await memoryOf(pid);

    const started = performance.now();
    const creating = createRuns(cluster, 'bench', runs, concurrency, 'with the operator');
    let settled = 0;
    await waitFor(async () => {
      settled = await settledCount(cluster, 'bench');
      progress(`settled: ${settled}/${runs}`);
      return settled === runs;
    }, 30 * 60_000, 'every run to settle', 500);
    await creating;
    const operatorSeconds = (performance.now() - started) / 1000;
    progressDone();
    const memory = await memoryOf(pid);
    const metrics = await (await fetch(`http://127.0.0.1:${healthPort}/metrics`)).text();
    const reconciles = [...metrics.matchAll(/^concord_reconcile_total\{controller="trainingrun",result="\w+"\} (\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);

    const ratio = operatorSeconds / baseline;
    console.log(`\n${table(['measure', 'seconds', 'runs/s', 'vs baseline'], [
      [`baseline: ${runs} creates, nobody reconciling`, fmt(baseline, 2), fmt(runs / baseline, 0), '1.00×'],
      [`the objects the operator writes for ${runs} runs, created by a client`, fmt(children, 2), fmt(runs / children, 0), `${fmt(children / baseline, 2)}×`],
      [`${runs} creates until every status settled (operator)`, fmt(operatorSeconds, 2), fmt(runs / operatorSeconds, 0), `${fmt(ratio, 2)}×`],
    ])}`);
    console.log(`\n${table(['operator process', 'RSS'], [
      ['idle, caches synced', `${fmt(idle.now / MiB, 1)} MiB`],
      [`after ${runs} runs settled (now)`, `${fmt(memory.now / MiB, 1)} MiB`],
      ['peak', `${fmt(memory.peak / MiB, 1)} MiB`],
    ])}`);
    console.log(`\ntrainingrun reconciles: ${reconciles} (${fmt(reconciles / runs, 1)} per run)`);
    console.log(`time: ${fmt(ratio, 2)}× the baseline (goal ≤ 3×): ${ratio <= 3 ? 'met' : 'NOT met'}; ${fmt(operatorSeconds / (baseline + children), 2)}× the API server's own time for the same writes (the run creates plus the children)`);
    console.log(`memory: peak ${fmt(memory.peak / MiB, 1)} MiB (goal < 256 MiB): ${memory.peak < 256 * MiB ? 'met' : 'NOT met'}`);
    return 0;
  } finally {
    operator?.kill('SIGTERM');
    await cluster.stop();
  }
}
