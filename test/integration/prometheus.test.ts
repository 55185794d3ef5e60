/** @jest-environment ./test/support/ort-environment.cjs */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Operator } from '../../operator/src/manager.js';
import { serveMetrics, type MetricsServer } from '../../operator/src/metrics/serve.js';
import { freePort } from '../../operator/src/runtime/free-port.js';
import { installCrds, startCluster, type TestCluster } from '../../scripts/kube/cluster.js';
import { API_SERVER_START_MS, federationRunMs, federationStartMs, PROMETHEUS_READY_MS, SCRAPES_MS, SERVER_START_MS, TEARDOWN_MS, within } from '../support/deadlines.js';
import { startFederation, tinySettings, type Federation } from '../support/federation-run.js';
import { requireTool } from '../support/machine.js';
import { startOperator, trainingRun } from '../support/operator.js';
import { waitFor } from '../support/wait.js';

// A real Prometheus (Debian's, installed by scripts/setup-machine.sh) scrapes a running federation
// (three coordinators with real trainers, real gRPC) and the operator (against a real API server, with a
// TrainingRun to reconcile). Then: promtool finds nothing wrong in any exposition, every metric
// DESIGN.md names is there, and every PromQL expression of the chart's dashboard returns data.
const root = new URL('../../', import.meta.url).pathname;

/** The metrics DESIGN.md asks for ("Metrics" section), by the names Concord gives them. */
const DESIGN_METRICS = {
  'phase durations': 'concord_round_phase_duration_seconds_bucket',
  'bytes sent/received': 'concord_payload_bytes_total',
  'compression ratio': 'concord_compression_ratio',
  'accepted contributions': 'concord_contributions_accepted_total',
  'rejected contributions by reason': 'concord_contributions_rejected_total',
  'peer reputation': 'concord_peer_reputation',
  loss: 'concord_loss',
  tokens: 'concord_tokens_total',
  'model-hash agreement': 'concord_model_hash_agreement',
  'reconcile count and errors': 'concord_reconcile_total',
  'reconcile duration': 'concord_reconcile_duration_seconds_bucket',
};

let federation: Federation;
let cluster: TestCluster;
let operator: Operator;
const servers: MetricsServer[] = [];
let prometheus: ChildProcess | undefined;
let dir: string;
let promUrl: string;
const targets: string[] = [];
const ROUNDS = 3;

async function query(expr: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>> {
  const response = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = (await response.json()) as { status: string; error?: string; data?: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
  if (body.status !== 'success') throw new Error(`${expr}: ${body.error}`);
  return body.data!.result;
}

beforeAll(async () => {
  const prometheusBin = requireTool('prometheus');
  dir = await mkdtemp(join(tmpdir(), 'concord-prometheus-'));
  [federation, cluster] = await Promise.all([
    startFederation([{ name: 'alpha' }, { name: 'beta' }, { name: 'gamma' }], { settings: tinySettings({ rounds: ROUNDS }), maxInnerSteps: 6 }),
    startCluster().then(async (c) => {
      await installCrds(c);
      return c;
    }),
  ]);
  for (const c of federation.clusters) {
    const server = await serveMetrics(c.coordinator.registry, '127.0.0.1', 0);
    servers.push(server);
    targets.push(server.address);
  }
  const operatorPort = await freePort();
  operator = await startOperator(cluster, { healthListen: { host: '127.0.0.1', port: operatorPort } });
  targets.push(`127.0.0.1:${operatorPort}`);
  await cluster.objects.create(trainingRun('observed'));

  const port = await freePort();
  promUrl = `http://127.0.0.1:${port}`;
  await writeFile(join(dir, 'prometheus.yml'), [
    'global: {scrape_interval: 1s, evaluation_interval: 1s}',
    'scrape_configs:',
    '  - job_name: concord',
    `    static_configs: [{targets: [${targets.map((t) => `"${t}"`).join(', ')}]}]`,
  ].join('\n'));
  prometheus = spawn(prometheusBin, [
    `--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`,
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  const log: string[] = [];
  prometheus.stderr!.on('data', (chunk: Buffer) => log.push(chunk.toString()));
  await waitFor(async () => (await fetch(`${promUrl}/-/ready`).catch(() => undefined))?.ok === true, PROMETHEUS_READY_MS, `Prometheus to be ready (${log.join('').slice(-500)})`);

  federation.run();
  await federation.finished();
  const finishedAt = Date.now();
  // Prometheus holds the finished run: every target up and scraped at least twice since the last
  // round ended (so a counter that first appeared late in the run has two samples for rate()),
  // and every coordinator's scraped round count is the run's. Scrape times are Prometheus's
  // clock, the same machine's; the window counts only whole seconds since the finish.
  const coordinators = federation.clusters.length;
  await waitFor(async () => {
    const since = Math.floor((Date.now() - finishedAt) / 1000);
    if (since < 1) return false;
    const scrapes = await query(`count_over_time(up[${since}s]) >= 2 and up == 1`);
    const rounds = await query(`concord_rounds_total == ${ROUNDS}`);
    return scrapes.length === targets.length && rounds.length === coordinators;
  }, SCRAPES_MS, 'Prometheus to scrape every target twice after the run, with the final round count of every coordinator', 1000);
}, within(API_SERVER_START_MS, federationStartMs(3), SERVER_START_MS, PROMETHEUS_READY_MS, federationRunMs(ROUNDS), SCRAPES_MS));

afterAll(async () => {
  prometheus?.kill('SIGTERM');
  await Promise.all(servers.map((s) => s.close()));
  await operator?.stop();
  await federation?.close();
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
}, within(2 * TEARDOWN_MS));

describe('a real Prometheus scraping a federation and the operator', () => {
  it('promtool check metrics finds nothing wrong in any target\'s exposition', async () => {
    for (const target of targets) {
      const text = await (await fetch(`http://${target}/metrics`)).text();
      const result = await new Promise<{ code: number; out: string }>((resolve) => {
        const child = spawn(requireTool('promtool'), ['check', 'metrics']);
        let out = '';
        child.stdout.on('data', (c: Buffer) => (out += c.toString()));
        child.stderr.on('data', (c: Buffer) => (out += c.toString()));
        child.on('close', (code) => resolve({ code: code ?? 1, out }));
        child.stdin.end(text);
      });
      expect({ target, ...result }).toEqual({ target, code: 0, out: '' });
    }
  });

  it('has every metric DESIGN.md names', async () => {
    for (const [what, name] of Object.entries(DESIGN_METRICS)) {
      const series = await query(`count(${name})`);
      expect({ what, name, present: series.length > 0 && Number(series[0]!.value[1]) > 0 }).toEqual({ what, name, present: true });
    }
    // Rounds really happened and were measured.
    const rounds = await query('max(concord_rounds_total)');
    expect(Number(rounds[0]!.value[1])).toBe(ROUNDS);
  });

  it('answers every PromQL expression of the chart\'s dashboard with data', async () => {
    const dashboard = JSON.parse(await readFile(join(root, 'charts/concord/files/dashboards/concord.json'), 'utf8')) as { panels: Array<{ title: string; targets: Array<{ expr: string }> }> };
    const expressions = dashboard.panels.flatMap((panel) => panel.targets.map((target) => ({ panel: panel.title, expr: target.expr })));
    expect(expressions.length).toBeGreaterThanOrEqual(15);
    for (const { panel, expr } of expressions) {
      const result = await query(expr);
      expect({ panel, expr, series: result.length > 0 }).toEqual({ panel, expr, series: true });
    }
  });
});
