// The coordinator as a process: load the config file, resume or start, run the rounds, log JSON
// lines, stop cleanly on SIGTERM. Shared by the real entry point (operator/src/cmd/coordinator.ts)
// and the local demo's attacker (scripts/malicious-coordinator.ts), which adds a Misbehaviour.
import { readFile } from 'node:fs/promises';
import { loadIdentity } from '../federation/identity.js';
import { jsonLogger } from '../log.js';
import { countsOf } from '../metrics/read.js';
import { serveMetrics, type MetricsServer } from '../metrics/serve.js';
import { parseCoordinatorConfig } from './config.js';
import { Coordinator } from './coordinator.js';
import type { Misbehaviour } from './misbehaviour.js';

export async function runCoordinatorProcess(configFile: string, misbehaviour?: Misbehaviour): Promise<void> {
  // Before the model exists: what the process weighs without it (for `npm run bench -- round`).
  const startRssBytes = process.memoryUsage().rss;
  const config = parseCoordinatorConfig(await readFile(configFile, 'utf8'));
  const log = jsonLogger({ name: config.name });
  const coordinator = new Coordinator({
    name: config.name, runId: config.runId, identity: await loadIdentity(config.identityFile),
    listen: config.listen, trainerListen: config.trainerListen, peers: config.peers, settings: config.rounds, train: config.train,
    trainers: config.trainers, log,
    onPhase: (phase, round) => log.info('phase', { phase, round }),
    ...(config.checkpointDir !== undefined ? { checkpointDir: config.checkpointDir, checkpointEveryRounds: config.checkpointEveryRounds } : {}),
    ...(config.maxInnerSteps !== undefined ? { maxInnerSteps: config.maxInnerSteps } : {}),
    ...(misbehaviour ? { misbehaviour } : {}),
  });
  let metrics: MetricsServer | undefined;
  const stopping = new AbortController();
  const shutdown = async () => {
    if (stopping.signal.aborted) return;
    stopping.abort();
    log.info('stopping', {
      round: coordinator.model().round,
      modelHash: coordinator.model().hash,
      rejectedMessages: await countsOf(coordinator.registry, 'concord_rejected_messages_total', 'reason'),
      rejectedContributions: await countsOf(coordinator.registry, 'concord_contributions_rejected_total', 'reason'),
      peers: coordinator.reputations(),
      memory: { startRssBytes, peakRssBytes: process.resourceUsage().maxRSS * 1024, modelBytes: 4 * coordinator.model().params.length },
    });
    await Promise.all([coordinator.stop(), metrics?.close()]);
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown());
  process.on('SIGINT', () => void shutdown());

  await coordinator.start();
  if (config.metricsListen !== undefined) {
    metrics = await serveMetrics(coordinator.registry, config.metricsListen.host, config.metricsListen.port, {
      '/status': () => ({ status: 200, body: coordinator.report() }),
    });
    log.info('metrics', { address: `http://${metrics.address}/metrics` });
  }
  void coordinator.probePeers();
  await coordinator.run(stopping.signal);
  if (stopping.signal.aborted) return;
  const { round, hash } = coordinator.model();
  // Peers may still need this coordinator's status and payloads to finish their last round; the
  // launcher (or Kubernetes) stops it.
  log.info('rounds-finished', { round, modelHash: hash, complete: round >= BigInt(config.rounds.rounds), peers: coordinator.reputations() });
}
