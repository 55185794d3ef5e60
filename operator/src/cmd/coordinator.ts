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
const identity = await loadIdentity(config.identityFile);
const coordinator = new Coordinator(config, identity, log);
const stopping = new AbortController();

const shutdown = async () => {
  if (stopping.signal.aborted) return;
  stopping.abort();
  log.info('stopping', { rejectedMessages: await countsOf(coordinator.registry, 'concord_rejected_messages_total', 'reason') });
  await coordinator.stop();
  process.exit(0);
};
process.on('SIGTERM', () => void shutdown());
process.on('SIGINT', () => void shutdown());

await coordinator.start();
await coordinator.greetPeers(stopping.signal);
log.info('peers-greeted', { peers: config.peers.map((p) => p.name) });
