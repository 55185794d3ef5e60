// `npm run bench -- operator [--runs N] [--concurrency N] [--workers N] [--heap-mib N]`
//
// Issue #14's goal, against a real API server (scripts/kube): the time for N TrainingRuns to reach
// a settled status (identity, children applied, status written) with the operator running as its
// own process, against a client that writes exactly what the operator must write for each run, at
// the same concurrency, in the same run (the baseline): the run, its identity Secret, its six
// other children by server-side apply with the operator's field owner, and its status. Goal: at
// most 1.5x the baseline. The baseline runs before and after the operator (the API server slows as
// etcd fills) and the goal is judged against their mean. Also: API requests and API server CPU per
// run for both, and the operator's peak RSS with N runs and their children cached (goal < 256 MiB).
import { execFile, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { GROUP, VERSION, type TrainingRun } from '../operator/src/api/types.js';
import { childrenOf, identitySecretOf } from '../operator/src/controllers/trainingrun/builders.js';
import { names } from '../operator/src/controllers/trainingrun/names.js';
import { desiredStatus } from '../operator/src/controllers/trainingrun/status.js';
import { encodePublicKey, generateIdentity, identityToPem } from '../operator/src/federation/identity.js';
import { freePort } from '../operator/src/runtime/free-port.js';
import { ResilientInformer } from '../operator/src/runtime/informer.js';
import { Applier } from '../operator/src/runtime/kube.js';
import { installCrds, startCluster, waitFor, type TestCluster } from '../scripts/kube/cluster.js';
import { fmt, progress, progressDone, table } from './report.js';

const MiB = 1024 * 1024;
const IMAGES = { coordinator: 'concord-operator:bench', trainer: 'concord-trainer:bench' };

function runObject(name: string, namespace: string) {
  return {
    apiVersion: `${GROUP}/${VERSION}`, kind: 'TrainingRun', metadata: { name, namespace },
    spec: { runId: `bench-${name}`, model: { vocabSize: 512, seqLen: 32, layers: 1, dModel: 32, heads: 2 }, workers: [{ name: 'gpu', replicas: 2, gpu: { count: 1 } }] },
  };
}

const runName = (i: number) => `run-${String(i).padStart(4, '0')}`;

/** Runs `work(i)` for i in [0, count) with `concurrency` in flight; returns the seconds it took. */
async function inFlight(count: number, concurrency: number, label: string, work: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  let done = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) {
      await work(next++);
      if (++done % 25 === 0) progress(`${label}: ${done}/${count}`);
    }
  }));
  progressDone();
  return (performance.now() - started) / 1000;
}

/**
 * The baseline: for each run, what the operator writes for it, written by a plain client: the run
 * (as the user creates it), the identity Secret (create, a fresh key), the six other children
 * (server-side apply, field owner as the operator's), and the status the operator would write.
 */
async function writeAsClient(cluster: TestCluster, namespace: string, count: number, concurrency: number): Promise<number> {
  const core = cluster.config.makeApiClient(CoreV1Api);
  const custom = cluster.config.makeApiClient(CustomObjectsApi);
  const applier = new Applier(cluster.config, 'concord-operator');
  return inFlight(count, concurrency, `baseline (${namespace})`, async (i) => {
    const run = (await cluster.objects.create(runObject(runName(i), namespace))) as TrainingRun;
    const identity = generateIdentity();
    const publicKey = encodePublicKey(identity.publicKey);
    await core.createNamespacedSecret({ namespace, body: identitySecretOf(run, { privateKeyPem: identityToPem(identity), publicKey }) });
    const children = childrenOf(run, [], IMAGES);
    for (const child of [children.configMap, children.checkpoints, children.coordinatorService, children.federationService, children.coordinator, ...children.trainers]) {
      await applier.apply(child);
    }
    const status = desiredStatus({
      run, peers: [], now: new Date(), identity: { secretName: names.identitySecret(run), peerId: identity.peerId, publicKey },
      trainers: children.trainers.map((sts) => ({ desired: sts.spec!.replicas!, live: undefined })),
    });
    await custom.replaceNamespacedCustomObjectStatus({ group: GROUP, version: VERSION, plural: 'trainingruns', namespace, name: run.metadata.name!, body: { ...run, status } });
  });
}

/** Creates the runs in `namespace` as a user would (the operator does the rest); returns the seconds. */
async function createRuns(cluster: TestCluster, namespace: string, count: number, concurrency: number): Promise<number> {
  return inFlight(count, concurrency, 'creating runs for the operator', (i) => cluster.objects.create(runObject(runName(i), namespace)));
}

const isSettled = (run: TrainingRun) => run.status?.observedGeneration === run.metadata.generation && run.status?.identity?.publicKey !== undefined;

/**
 * Watches the namespace's runs and resolves when `count` of them are settled (a watch, not a
 * polled list: listing 500 runs twice a second would load the API server it measures).
 */
async function watchSettled(cluster: TestCluster, namespace: string, count: number): Promise<{ settled: Promise<void>; stop: () => Promise<void> }> {
  const settledNames = new Set<string>();
  let resolve!: () => void;
  const settled = new Promise<void>((r) => { resolve = r; });
  const informer = new ResilientInformer<TrainingRun>(cluster.config, {
    path: `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/trainingruns`,
    list: async () => (await cluster.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, plural: 'trainingruns', namespace })) as never,
    transform: (run) => { delete run.metadata.managedFields; },
    onEvent: (_event, run) => {
      if (!isSettled(run) || settledNames.has(run.metadata.name!)) return;
      settledNames.add(run.metadata.name!);
      progress(`settled: ${settledNames.size}/${count}`);
      if (settledNames.size === count) resolve();
    },
  });
  await informer.start();
  return { settled, stop: () => informer.stop() };
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
  console.log(`operator: ${runs} TrainingRuns, ${concurrency} runs in flight, ${values.workers} reconcile workers per controller, operator heap capped at ${values['heap-mib']} MiB`);
  progress('starting an API server (scripts/kube/start.sh)');
  const cluster = await startCluster();
  let operator: ReturnType<typeof spawn> | undefined;
  try {
    await installCrds(cluster);
    const core = cluster.config.makeApiClient(CoreV1Api);
    for (const name of ['before', 'bench', 'after']) await core.createNamespace({ body: { metadata: { name } } });

    /** Wall time, API server + etcd CPU seconds and API requests of one phase. */
    const measure = async (phase: () => Promise<number>) => {
      const cpu = await serverCpuSeconds(cluster);
      const requests = await requestCounts(cluster);
      const seconds = await phase();
      return { seconds, cpu: (await serverCpuSeconds(cluster)) - cpu, requests: difference(await requestCounts(cluster), requests) };
    };

    const before = await measure(() => writeAsClient(cluster, 'before', runs, concurrency));

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
    const watch = await watchSettled(cluster, 'bench', runs);
    const operatorCpu0 = await cpuSecondsOf([pid]);
    const withOperator = await measure(async () => {
      const started = performance.now();
      await Promise.all([createRuns(cluster, 'bench', runs, concurrency), watch.settled]);
      return (performance.now() - started) / 1000;
    });
    await watch.stop();
    progressDone();
    const operatorCpu = (await cpuSecondsOf([pid])) - operatorCpu0;
    const memory = await memoryOf(pid);
    const metrics = await (await fetch(`http://127.0.0.1:${healthPort}/metrics`)).text();
    operator.kill('SIGTERM');
    operator = undefined;
    const results = [...metrics.matchAll(/^concord_reconcile_total\{controller="trainingrun",result="(\w+)"\} (\d+)/gm)].map((m) => [m[1]!, Number(m[2])] as const);
    const reconciles = results.reduce((sum, [, n]) => sum + n, 0);

    const after = await measure(() => writeAsClient(cluster, 'after', runs, concurrency));

    const baseline = (before.seconds + after.seconds) / 2;
    const baselineCpu = (before.cpu + after.cpu) / 2;
    const ratio = withOperator.seconds / baseline;
    const perRun = (seconds: number) => `${fmt((1000 * seconds) / runs, 2)} ms`;
    console.log(`\n${table(['measure', 'seconds', 'runs/s', 'API server + etcd CPU per run', 'vs baseline'], [
      [`baseline, before: a client writes ${runs} runs, their 7 children, their status`, fmt(before.seconds, 2), fmt(runs / before.seconds, 0), perRun(before.cpu), fmt(before.seconds / baseline, 2)],
      ['baseline, after the operator (etcd fuller)', fmt(after.seconds, 2), fmt(runs / after.seconds, 0), perRun(after.cpu), fmt(after.seconds / baseline, 2)],
      [`the operator: ${runs} runs created until every status settled`, fmt(withOperator.seconds, 2), fmt(runs / withOperator.seconds, 0), perRun(withOperator.cpu), fmt(ratio, 2)],
    ])}`);
    console.log(`API server + etcd CPU: ${fmt(withOperator.cpu / baselineCpu, 2)}× the baseline's`);
    console.log(`\n${table(['operator process', 'RSS'], [
      ['idle, caches synced', `${fmt(idle.now / MiB, 1)} MiB`],
      [`after ${runs} runs settled (now)`, `${fmt(memory.now / MiB, 1)} MiB`],
      ['peak', `${fmt(memory.peak / MiB, 1)} MiB`],
    ])}`);
    console.log(`operator CPU while the runs settled: ${fmt(operatorCpu, 2)} s (${fmt((1000 * operatorCpu) / runs, 2)} ms per run)`);
    console.log(`trainingrun reconciles: ${reconciles} (${fmt(reconciles / runs, 1)} per run: ${results.map(([result, n]) => `${n} ${result}`).join(', ')})`);
    const keys = [...new Set([...before.requests.keys(), ...withOperator.requests.keys()])];
    const rows = keys.map((key) => [key, (before.requests.get(key) ?? 0) / runs, (withOperator.requests.get(key) ?? 0) / runs] as const)
      .filter(([, a, b]) => a >= 0.05 || b >= 0.05).sort((x, y) => y[2] - x[2] || y[1] - x[1]);
    const total = (m: Map<string, number>) => [...m.values()].reduce((sum, n) => sum + n, 0) / runs;
    console.log(`\nAPI requests per run (the bench's own list and watch of the settled runs included under the operator):\n${table(['verb resource', 'baseline client', 'operator'], [
      ...rows.map(([key, a, b]) => [key, fmt(a, 2), fmt(b, 2)]),
      ['all', fmt(total(before.requests), 2), fmt(total(withOperator.requests), 2)],
    ])}`);
    console.log(`\ntime: ${fmt(ratio, 2)}× the baseline (goal ≤ 1.5×): ${ratio <= 1.5 ? 'met' : 'NOT met'}`);
    console.log(`memory: peak ${fmt(memory.peak / MiB, 1)} MiB (goal < 256 MiB): ${memory.peak < 256 * MiB ? 'met' : 'NOT met'}`);
    return 0;
  } finally {
    operator?.kill('SIGTERM');
    await cluster.stop();
  }
}

function difference(after: Map<string, number>, before: Map<string, number>): Map<string, number> {
  return new Map([...after].map(([key, n]) => [key, n - (before.get(key) ?? 0)] as const).filter(([, n]) => n > 0));
}
