// The coordinator process: `node dist/operator/src/cmd/coordinator.js --config FILE`.
// The same entry point runs in the coordinator Deployment the operator creates.
import { parseArgs } from 'node:util';
import { runCoordinatorProcess } from '../coordinator/process.js';

const { values } = parseArgs({ options: { config: { type: 'string' } } });
if (values.config === undefined) {
  console.error('usage: coordinator --config FILE');
  process.exit(2);
}
await runCoordinatorProcess(values.config);
