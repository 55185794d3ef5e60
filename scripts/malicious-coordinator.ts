// The local demo's attacker: the real coordinator process with one of scripts/attacks.ts.
// `node dist/scripts/malicious-coordinator.js --config FILE --attack NAME`
import { parseArgs } from 'node:util';
import { runCoordinatorProcess } from '../operator/src/coordinator/process.js';
import { ATTACKS, attack, isAttack } from './attacks.js';

const { values } = parseArgs({ options: { config: { type: 'string' }, attack: { type: 'string' } } });
if (values.config === undefined || values.attack === undefined || !isAttack(values.attack)) {
  console.error(`usage: malicious-coordinator --config FILE --attack (${ATTACKS.join('|')})`);
  process.exit(2);
}
await runCoordinatorProcess(values.config, attack(values.attack));
