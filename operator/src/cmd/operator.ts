// The operator process: `node dist/operator/src/cmd/operator.js [flags]`. In a cluster it uses
// its ServiceAccount; elsewhere --kubeconfig (or $KUBECONFIG). Exits 0 on SIGTERM after a clean
// shutdown, 1 when it lost leadership (its replacement takes over; Kubernetes restarts it).
import { parseArgs } from 'node:util';
import { jsonLogger } from '../log.js';
import { Operator } from '../manager.js';
import { KeepAliveKubeConfig } from '../runtime/kube-config.js';

const { values } = parseArgs({
  options: {
    kubeconfig: { type: 'string' },
    namespace: { type: 'string' },
    'coordinator-image': { type: 'string', default: process.env.CONCORD_COORDINATOR_IMAGE ?? 'ghcr.io/concord-dev/concord-operator:latest' },
    'trainer-image': { type: 'string', default: process.env.CONCORD_TRAINER_IMAGE ?? 'ghcr.io/concord-dev/concord-trainer:latest' },
    'image-pull-policy': { type: 'string' },
    'health-listen': { type: 'string', default: '0.0.0.0:8081' },
    'leader-elect': { type: 'boolean', default: false },
    'leader-election-namespace': { type: 'string', default: process.env.POD_NAMESPACE ?? 'default' },
    'leader-election-id': { type: 'string', default: 'concord-operator' },
    workers: { type: 'string', default: '4' },
    'poll-seconds': { type: 'string', default: '10' },
  },
});

const log = jsonLogger({ component: 'operator' });
const config = new KeepAliveKubeConfig();
if (values.kubeconfig !== undefined) config.loadFromFile(values.kubeconfig);
else config.loadFromDefault();
const [host, port] = hostPort(values['health-listen']!, '--health-listen');
const pullPolicy = values['image-pull-policy'];
if (pullPolicy !== undefined && !['Always', 'IfNotPresent', 'Never'].includes(pullPolicy)) usage(`--image-pull-policy must be Always, IfNotPresent or Never, got "${pullPolicy}"`);

const operator = new Operator({
  config, log,
  images: { coordinator: values['coordinator-image']!, trainer: values['trainer-image']!, ...(pullPolicy !== undefined ? { pullPolicy: pullPolicy as 'Always' } : {}) },
  workers: positive(values.workers!, '--workers'),
  pollMs: 1000 * positive(values['poll-seconds']!, '--poll-seconds'),
  healthListen: { host, port },
  ...(values.namespace !== undefined ? { namespace: values.namespace } : {}),
  ...(values['leader-elect'] ? { leaderElection: { namespace: values['leader-election-namespace']!, name: values['leader-election-id']!, ...(process.env.POD_NAME ? { identity: process.env.POD_NAME } : {}) } } : {}),
});
let stopping = false;
const shutdown = () => {
  if (stopping) return;
  stopping = true;
  log.info('stopping');
  operator.stop().then(() => process.exit(0), (error: unknown) => {
    log.error('stop-failed', { error: String(error) });
    process.exit(1);
  });
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
await operator.start();
await operator.done();
if (!stopping) {
  log.error('leadership-lost');
  process.exit(1);
}

function hostPort(value: string, flag: string): [string, number] {
  const match = /^(.+):(\d{1,5})$/.exec(value);
  if (!match) usage(`${flag} must be host:port, got "${value}"`);
  return [match![1]!, Number(match![2])];
}

function positive(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) usage(`${flag} must be a positive number, got "${value}"`);
  return n;
}

function usage(message: string): never {
  console.error(`operator: ${message}`);
  process.exit(2);
}
