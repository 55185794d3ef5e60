// A trainer pod's process: `node dist/trainer/src/cli/agent.js --coordinator HOST:PORT
// --config TRAIN.yaml --id NAME [--group G] [--replica N | --replica-offset N]`. In a StatefulSet
// the id is the pod's name and the replica is --replica-offset plus the pod's ordinal (the number
// at the end of its name). Joins the coordinator and works
// through its tasks; when the coordinator goes away (restart, network) it joins again with
// exponential backoff, so a coordinator restarted from its checkpoint finds its trainers back.
// The same entry point runs in the trainer StatefulSet the operator creates.
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { runTrainerAgent } from '../agent/trainer-agent.js';
import { parseTrainConfigYaml } from '../train/config.js';

const { values } = parseArgs({
  options: { coordinator: { type: 'string' }, config: { type: 'string' }, id: { type: 'string' }, group: { type: 'string', default: 'default' }, replica: { type: 'string' }, 'replica-offset': { type: 'string' } },
});
if (values.coordinator === undefined || values.config === undefined || values.id === undefined) {
  console.error('usage: agent --coordinator HOST:PORT --config TRAIN.yaml --id NAME [--group G] [--replica N | --replica-offset N]');
  process.exit(2);
}
const replica = replicaOf(values.id, values.replica, values['replica-offset']);
const config = parseTrainConfigYaml(await readFile(values.config, 'utf8'));
const log = (event: string, fields: Record<string, unknown> = {}) => process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), event, name: values.id, ...fields })}\n`);
const leave = new AbortController();
process.on('SIGTERM', () => leave.abort());
process.on('SIGINT', () => leave.abort());

for (let attempt = 0; !leave.signal.aborted; attempt++) {
  const started = Date.now();
  try {
    await runTrainerAgent({
      coordinator: values.coordinator, config, signal: leave.signal,
      identity: { trainerId: values.id, group: values.group!, replica, device: 'cpu' },
      onTrained: (s) => log('trained', { round: Number(s.round), steps: s.steps, tokens: s.tokens, loss: s.loss }),
    });
  } catch (error) {
    log('coordinator-unavailable', { attempt, error: error instanceof Error ? error.message : String(error) });
  }
  if (leave.signal.aborted) break;
  // A session that lasted a while resets the backoff.
  if (Date.now() - started > 10_000) attempt = 0;
  await new Promise((resolve) => setTimeout(resolve, Math.min(5_000, 200 * 2 ** attempt)));
}

/** --replica, or --replica-offset plus the StatefulSet ordinal at the end of the pod's name. */
function replicaOf(id: string, replica: string | undefined, offset: string | undefined): number {
  if (replica !== undefined && offset !== undefined) throw new Error('--replica and --replica-offset exclude each other');
  const integer = (text: string, flag: string) => {
    if (!/^\d+$/.test(text)) throw new Error(`${flag} must be a non-negative integer, got "${text}"`);
    return Number(text);
  };
  if (offset === undefined) return integer(replica ?? '0', '--replica');
  const ordinal = /-(\d+)$/.exec(id);
  if (ordinal === null) throw new Error(`--replica-offset needs an --id ending in -N (a StatefulSet pod name), got "${id}"`);
  return integer(offset, '--replica-offset') + Number(ordinal[1]);
}
