// Names, labels, ports and paths of the objects a TrainingRun owns: one place, so the builders,
// the reconciler and the tests agree on them.
import type { TrainingRun } from '../../api/types.js';

export const FIELD_MANAGER = 'concord-operator';

export const PORTS = {
  /** TrainerService: the run's trainers connect to the coordinator here (cluster-internal). */
  trainers: 7444,
  /** The coordinator's /metrics and /status (cluster-internal). */
  metrics: 9090,
} as const;

export const MOUNTS = {
  identity: '/var/run/concord/identity',
  config: '/etc/concord',
  checkpoints: '/var/lib/concord',
  dataset: '/var/lib/concord-data',
} as const;

/** The entry points inside the images (dist/ of this package). */
export const COMMANDS = {
  coordinator: ['node', 'dist/operator/src/cmd/coordinator.js'],
  trainer: ['node', 'dist/trainer/src/cli/agent.js'],
} as const;

export const LABELS = {
  name: 'app.kubernetes.io/name',
  instance: 'app.kubernetes.io/instance',
  component: 'app.kubernetes.io/component',
  managedBy: 'app.kubernetes.io/managed-by',
  run: 'concord.dev/run',
  group: 'concord.dev/worker-group',
} as const;

/** Pod template annotation: a digest of the run's config files, so a change rolls the pods. */
export const CONFIG_HASH_ANNOTATION = 'concord.dev/config-hash';

export const names = {
  identitySecret: (run: TrainingRun) => run.spec.federation.identitySecret ?? `${run.metadata.name}-identity`,
  config: (run: TrainingRun) => `${run.metadata.name}-config`,
  coordinator: (run: TrainingRun) => `${run.metadata.name}-coordinator`,
  /** The Service partners dial (type from spec.federation.serviceType). */
  federation: (run: TrainingRun) => `${run.metadata.name}-federation`,
  checkpoints: (run: TrainingRun) => `${run.metadata.name}-checkpoints`,
  trainers: (run: TrainingRun, group: string) => `${run.metadata.name}-trainer-${group}`,
};

/** Labels every child of a run carries (selectors use the run and component labels only). */
export function labelsOf(run: TrainingRun, component: 'coordinator' | 'trainer' | 'config' | 'identity' | 'checkpoints', group?: string): Record<string, string> {
  return {
    [LABELS.name]: 'concord',
    [LABELS.instance]: run.metadata.name!,
    [LABELS.component]: component,
    [LABELS.managedBy]: FIELD_MANAGER,
    [LABELS.run]: run.metadata.name!,
    ...(group !== undefined ? { [LABELS.group]: group } : {}),
  };
}
