// The coordinator process: `node dist/operator/src/cmd/coordinator.js --config FILE`.
// The same entry point runs in the coordinator Deployment the operator creates.
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { parseCoordinatorConfig } from '../coordinator/config.js';
import { Coordinator } from '../coordinator/coordinator.js';
import { loadIdentity } from '../federation/identity.js';
import { jsonLogger } from '../log.js';
import { countsOf } from '../metrics/read.js';

const { values } = parseArgs({ options: { config: { type: 'string' } } });
if (values.config === undefined) {
  console.error('usage: coordinator --config FILE');
  process.exit(2);
}

const config = parseCoordinatorConfig(await readFile(values.config, 'utf8'));
const log = jsonLogger({ name: config.name });
const coordinator = new Coordinator({
  name: config.name, runId: config.runId, identity: await loadIdentity(config.identityFile),
  listen: config.listen, trainerListen: config.trainerListen, peers: config.peers, settings: config.rounds, train: config.train,
  trainers: config.trainers, log,
  ...(config.checkpointDir !== undefined ? { checkpointDir: config.checkpointDir } : {}),
  ...(config.maxInnerSteps !== undefined ? { maxInnerSteps: config.maxInnerSteps } : {}),
});
const stopping = new AbortController();

const shutdown = async (code: number) => {
  if (stopping.signal.aborted) return;
  stopping.abort();
  log.info('stopping', {
    rejectedMessages: await countsOf(coordinator.registry, 'concord_rejected_messages_total', 'reason'),
    rejectedContributions: await countsOf(coordinator.registry, 'concord_contributions_rejected_total', 'reason'),
  });
  await coordinator.stop();
  process.exit(code);
};
process.on('SIGTERM', () => void shutdown(0));
process.on('SIGINT', () => void shutdown(0));

await coordinator.start();
await coordinator.run(stopping.signal);
log.info('rounds-finished', coordinator.model().round === BigInt(config.rounds.rounds) ? { round: coordinator.model().round } : { round: coordinator.model().round, incomplete: true });
// Peers may still need this coordinator's status and payloads to finish their last round; the
// launcher (or Kubernetes) stops it.
