// The local federation's attackers: the real coordinator process with one of scripts/attacks.ts.
//   node dist/scripts/malicious-coordinator.js --config FILE --attack NAME
//   node dist/scripts/malicious-coordinator.js --config A --config B [...] --coalition TARGET [--drift]
// A coalition's members run in this one process, as one adversary controlling several clusters
// would: they share what each announced (coalition() in scripts/attacks.ts).
import { parseArgs } from 'node:util';
import { runCoordinatorProcess } from '../operator/src/coordinator/process.js';
import { ATTACKS, attack, coalition, isAttack } from './attacks.js';

const { values } = parseArgs({ options: { config: { type: 'string', multiple: true }, attack: { type: 'string' }, coalition: { type: 'string' }, drift: { type: 'boolean', default: false } } });
const configs = values.config ?? [];
if (values.attack !== undefined && isAttack(values.attack) && configs.length === 1) {
  await runCoordinatorProcess(configs[0]!, attack(values.attack));
} else if (values.coalition !== undefined && configs.length >= 1) {
  const together = coalition(values.coalition, { drift: values.drift });
  await Promise.all(configs.map((config) => runCoordinatorProcess(config, together.member())));
} else {
  console.error(`usage: malicious-coordinator --config FILE --attack (${ATTACKS.join('|')})\n       malicious-coordinator --config FILE [--config FILE ...] --coalition TARGET [--drift]`);
  process.exit(2);
}
