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
import { execFile, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { CoreV1Api } from '@kubernetes/client-node';
import { GROUP, VERSION, type TrainingRun } from '../operator/src/api/types.js';
import { childrenOf, identitySecretOf } from '../operator/src/controllers/trainingrun/builders.js';
import { freePort } from '../operator/src/runtime/free-port.js';
import { Applier } from '../operator/src/runtime/kube.js';
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
async function createChildren(cluster: TestCluster, namespace: string, count: number, concurrency: number, apply?: Applier): Promise<number> {
  const template = (await cluster.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, plural: 'trainingruns', namespace: 'baseline', name: 'run-0000' })) as TrainingRun;
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) {
      const i = next++;
      const run: TrainingRun = { ...template, metadata: { ...template.metadata, name: `run-${String(i).padStart(4, '0')}`, namespace } };
      const c = childrenOf(run, [], { coordinator: 'a', trainer: 'b' });
      const objects = [identitySecretOf(run, { privateKeyPem: 'x', publicKey: 'y' }), c.configMap, c.checkpoints, c.coordinatorService, c.federationService, c.coordinator, ...c.trainers];
      for (const object of objects) {
        const orphan = { ...object, metadata: { ...object.metadata!, ownerReferences: [] } };
        await (apply === undefined ? cluster.objects.create(orphan) : apply.apply(orphan));
      }
      if (i % 25 === 0) progress(`children baseline${apply === undefined ? '' : ' (server-side apply)'}: ${i}/${count} runs`);
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

/**
 * CPU seconds the API server and etcd have used so far (utime + stime from /proc, pids from
 * start.sh's `pids` file): what each write costs the server itself, whoever makes it.
 */
async function serverCpuSeconds(cluster: TestCluster): Promise<number> {
  const pids = (await readFile(join(cluster.dir, 'pids'), 'utf8')).split('\n').filter((l) => / (kube-apiserver|etcd)$/.test(l)).map((l) => Number(l.split(' ')[0]));
  return cpuSecondsOf(pids);
}

/** CPU seconds (user + system) the processes have used so far, from /proc. */
async function cpuSecondsOf(pids: readonly number[]): Promise<number> {
  let ticks = 0;
  for (const pid of pids) {
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    const line = await readFile(`/proc/${pid}/stat`, 'utf8');
    const stat = line.slice(line.lastIndexOf(')') + 2).split(' ');
    ticks += Number(stat[11]) + Number(stat[12]);
  }
  return ticks / CLOCK_TICKS;
}

/** The API server's request counts by verb and resource (apiserver_request_total, via kubectl). */
async function requestCounts(cluster: TestCluster): Promise<Map<string, number>> {
  const { stdout } = await promisify(execFile)('kubectl', ['--kubeconfig', cluster.kubeconfigPath, 'get', '--raw', '/metrics'], { maxBuffer: 256 * MiB });
  const counts = new Map<string, number>();
  for (const m of stdout.matchAll(/^apiserver_request_total\{([^}]*)\} (\d+)/gm)) {
    const label = (name: string) => new RegExp(`${name}="([^"]*)"`).exec(m[1]!)?.[1] ?? '';
    const key = `${label('verb')} ${label('resource')}${label('subresource') ? `/${label('subresource')}` : ''}`;
    counts.set(key, (counts.get(key) ?? 0) + Number(m[2]));
  }
  return counts;
}

/** USER_HZ: the unit of /proc/<pid>/stat's times on Linux (100 on every common build). */
const CLOCK_TICKS = 100;

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
    for (const name of ['baseline', 'children', 'applied', 'bench']) await core.createNamespace({ body: { metadata: { name } } });

    // Baseline: the API server alone accepting the same objects (nobody reconciles "baseline").
    const cpu0 = await serverCpuSeconds(cluster);
    const baseline = await createRuns(cluster, 'baseline', runs, concurrency, 'baseline');
    const cpu1 = await serverCpuSeconds(cluster);
    const children = await createChildren(cluster, 'children', runs, concurrency);
    const cpu2 = await serverCpuSeconds(cluster);
    // The same objects by server-side apply, as the operator writes them (the issue asks for SSA).
    const applied = await createChildren(cluster, 'applied', runs, concurrency, new Applier(cluster.config, 'concord-bench'));
    const cpu2a = await serverCpuSeconds(cluster);

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

    const cpu3 = await serverCpuSeconds(cluster);
    const operatorCpu0 = await cpuSecondsOf([pid]);
    const requestsBefore = await requestCounts(cluster);
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
    const cpu4 = await serverCpuSeconds(cluster);
    const operatorCpu = (await cpuSecondsOf([pid])) - operatorCpu0;
    const requestsAfter = await requestCounts(cluster);
    progressDone();
    const memory = await memoryOf(pid);
    const metrics = await (await fetch(`http://127.0.0.1:${healthPort}/metrics`)).text();
    const results = [...metrics.matchAll(/^concord_reconcile_total\{controller="trainingrun",result="(\w+)"\} (\d+)/gm)].map((m) => [m[1]!, Number(m[2])] as const);
    const reconciles = results.reduce((sum, [, n]) => sum + n, 0);

    const ratio = operatorSeconds / baseline;
    console.log(`\n${table(['measure', 'seconds', 'runs/s', 'vs baseline'], [
      [`baseline: ${runs} creates, nobody reconciling`, fmt(baseline, 2), fmt(runs / baseline, 0), '1.00×'],
      [`the objects the operator writes for ${runs} runs, created by a client`, fmt(children, 2), fmt(runs / children, 0), `${fmt(children / baseline, 2)}×`],
      ['the same objects, server-side applied by a client', fmt(applied, 2), fmt(runs / applied, 0), `${fmt(applied / baseline, 2)}×`],
      [`${runs} creates until every status settled (operator)`, fmt(operatorSeconds, 2), fmt(runs / operatorSeconds, 0), `${fmt(ratio, 2)}×`],
    ])}`);
    console.log(`\n${table(['operator process', 'RSS'], [
      ['idle, caches synced', `${fmt(idle.now / MiB, 1)} MiB`],
      [`after ${runs} runs settled (now)`, `${fmt(memory.now / MiB, 1)} MiB`],
      ['peak', `${fmt(memory.peak / MiB, 1)} MiB`],
    ])}`);
    console.log(`operator CPU while the runs settled: ${fmt(operatorCpu, 2)} s (${fmt((1000 * operatorCpu) / runs, 2)} ms per run)`);
    console.log(`\ntrainingrun reconciles: ${reconciles} (${fmt(reconciles / runs, 1)} per run: ${results.map(([result, n]) => `${n} ${result}`).join(', ')})`);
    // The server's own cost per run, whoever writes: what no operator can go below.
    const perRun = (seconds: number) => `${fmt((1000 * seconds) / runs, 2)} ms`;
    console.log(`\n${table(['API server + etcd CPU', 'per run', 'vs baseline'], [
      ['baseline: the run object created', perRun(cpu1 - cpu0), '1.00×'],
      ['its children created by a client (7 objects)', perRun(cpu2 - cpu1), `${fmt((cpu2 - cpu1) / (cpu1 - cpu0), 2)}×`],
      ['its children server-side applied by a client', perRun(cpu2a - cpu2), `${fmt((cpu2a - cpu2) / (cpu1 - cpu0), 2)}×`],
      ['with the operator: the run, its children, its status', perRun(cpu4 - cpu3), `${fmt((cpu4 - cpu3) / (cpu1 - cpu0), 2)}×`],
    ])}`);
    const requests = [...requestsAfter].map(([key, n]) => [key, (n - (requestsBefore.get(key) ?? 0)) / runs] as const).filter(([, perRunCount]) => perRunCount >= 0.05).sort((a, b) => b[1] - a[1]);
    console.log(`\nAPI requests per run while the operator worked (the bench's own creates and settled-polls included):\n${table(['verb resource', 'per run'], requests.map(([key, n]) => [key, fmt(n, 2)]))}`);
    console.log(`time: ${fmt(ratio, 2)}× the baseline (goal ≤ 3×): ${ratio <= 3 ? 'met' : 'NOT met'}; ${fmt(operatorSeconds / (baseline + children), 2)}× the API server's own time for the same writes (the run creates plus the children)`);
    console.log(`memory: peak ${fmt(memory.peak / MiB, 1)} MiB (goal < 256 MiB): ${memory.peak < 256 * MiB ? 'met' : 'NOT met'}`);
    return 0;
  } finally {
    operator?.kill('SIGTERM');
    await cluster.stop();
  }
}
