// Pure builders: every object a TrainingRun owns, as a function of the run (and its Peers) with
// no I/O. The reconciler server-side-applies what these return; test/unit/trainingrun-builders
// checks them without a cluster.
import { createHash } from 'node:crypto';
import type {
  V1ConfigMap, V1Container, V1Deployment, V1EnvVar, V1OwnerReference, V1PersistentVolumeClaim, V1PodSecurityContext, V1PodSpec, V1PodTemplateSpec,
  V1Secret, V1SecurityContext, V1Service, V1StatefulSet,
} from '@kubernetes/client-node';
import type { Peer, TrainingRun, WorkerGroup } from '../../api/types.js';
import { configFilesOf } from './run-config.js';
import { COMMANDS, CONFIG_HASH_ANNOTATION, LABELS, MOUNTS, PORTS, labelsOf, names } from './names.js';

/** Container images of the run's pods (operator flags; the chart sets them). */
export interface Images {
  coordinator: string;
  trainer: string;
  pullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
}

export function ownerReferenceOf(run: TrainingRun): V1OwnerReference {
  return { apiVersion: run.apiVersion, kind: run.kind, name: run.metadata.name!, uid: run.metadata.uid!, controller: true, blockOwnerDeletion: true };
}

function meta(run: TrainingRun, name: string, labels: Record<string, string>) {
  return { name, namespace: run.metadata.namespace!, labels, ownerReferences: [ownerReferenceOf(run)] };
}

export function configMapOf(run: TrainingRun, peers: readonly Peer[]): V1ConfigMap {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: meta(run, names.config(run), labelsOf(run, 'config')), data: configFilesOf(run, peers) };
}

/** A digest of the config files: the pod templates carry it, so a changed config rolls them. */
export function configHashOf(configMap: V1ConfigMap): string {
  const hash = createHash('sha256');
  for (const key of Object.keys(configMap.data ?? {}).sort()) hash.update(key).update('\0').update(configMap.data![key]!).update('\0');
  return hash.digest('hex').slice(0, 16);
}

/**
 * The run identity's Secret, created once with a fresh key and never overwritten (the reconciler
 * only creates it when absent). Owned by the run like everything the operator makes; a Secret the
 * owner made beforehand (spec.federation.identitySecret) is never touched, and survives the run.
 */
export function identitySecretOf(run: TrainingRun, identity: { privateKeyPem: string; publicKey: string }): V1Secret {
  return {
    apiVersion: 'v1', kind: 'Secret', type: 'Opaque',
    metadata: meta(run, names.identitySecret(run), labelsOf(run, 'identity')),
    stringData: { 'private.pem': identity.privateKeyPem, 'public.key': identity.publicKey },
  };
}

export function checkpointClaimOf(run: TrainingRun): V1PersistentVolumeClaim {
  return {
    apiVersion: 'v1', kind: 'PersistentVolumeClaim',
    metadata: meta(run, names.checkpoints(run), labelsOf(run, 'checkpoints')),
    spec: {
      accessModes: ['ReadWriteOnce'],
      resources: { requests: { storage: run.spec.checkpoint.size } },
      ...(run.spec.checkpoint.storageClassName !== undefined ? { storageClassName: run.spec.checkpoint.storageClassName } : {}),
    },
  };
}

/** Cluster-internal Service of the coordinator: the trainers' port and /metrics, /status. */
export function coordinatorServiceOf(run: TrainingRun): V1Service {
  return {
    apiVersion: 'v1', kind: 'Service',
    metadata: meta(run, names.coordinator(run), labelsOf(run, 'coordinator')),
    spec: {
      type: 'ClusterIP',
      selector: selectorOf(run, 'coordinator'),
      ports: [
        { name: 'trainers', port: PORTS.trainers, targetPort: PORTS.trainers, protocol: 'TCP' },
        { name: 'metrics', port: PORTS.metrics, targetPort: PORTS.metrics, protocol: 'TCP' },
      ],
    },
  };
}

/** The Service partners dial: only the federation port, of the type the spec asks for. */
export function federationServiceOf(run: TrainingRun): V1Service {
  const { port, serviceType } = run.spec.federation;
  return {
    apiVersion: 'v1', kind: 'Service',
    metadata: meta(run, names.federation(run), labelsOf(run, 'coordinator')),
    spec: { type: serviceType, selector: selectorOf(run, 'coordinator'), ports: [{ name: 'federation', port, targetPort: port, protocol: 'TCP' }] },
  };
}

const POD_SECURITY: V1PodSecurityContext = { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, fsGroup: 1000, seccompProfile: { type: 'RuntimeDefault' } };
const CONTAINER_SECURITY: V1SecurityContext = { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } };

export function coordinatorDeploymentOf(run: TrainingRun, images: Images, configHash: string): V1Deployment {
  const labels = labelsOf(run, 'coordinator');
  const container: V1Container = {
    name: 'coordinator',
    image: images.coordinator,
    ...(images.pullPolicy !== undefined ? { imagePullPolicy: images.pullPolicy } : {}),
    command: [...COMMANDS.coordinator, '--config', `${MOUNTS.config}/coordinator.yaml`],
    ports: [
      { name: 'federation', containerPort: run.spec.federation.port, protocol: 'TCP' },
      { name: 'trainers', containerPort: PORTS.trainers, protocol: 'TCP' },
      { name: 'metrics', containerPort: PORTS.metrics, protocol: 'TCP' },
    ],
    readinessProbe: { httpGet: { path: '/status', port: 'metrics' }, periodSeconds: 5 },
    securityContext: CONTAINER_SECURITY,
    volumeMounts: [
      { name: 'identity', mountPath: MOUNTS.identity, readOnly: true },
      { name: 'config', mountPath: MOUNTS.config, readOnly: true },
      { name: 'checkpoints', mountPath: MOUNTS.checkpoints },
      { name: 'tmp', mountPath: '/tmp' },
    ],
  };
  return {
    apiVersion: 'apps/v1', kind: 'Deployment',
    metadata: meta(run, names.coordinator(run), labels),
    spec: {
      // Suspended: no coordinator either; it resumes from its checkpoint on the volume.
      replicas: run.spec.suspend ? 0 : 1,
      // One writer of the checkpoint volume (ReadWriteOnce): the old pod goes before the new starts.
      strategy: { type: 'Recreate' },
      selector: { matchLabels: selectorOf(run, 'coordinator') },
      template: podTemplate(labels, configHash, container, {
        volumes: [
          { name: 'identity', secret: { secretName: names.identitySecret(run), defaultMode: 0o400 } },
          { name: 'config', configMap: { name: names.config(run) } },
          { name: 'checkpoints', persistentVolumeClaim: { claimName: names.checkpoints(run) } },
          { name: 'tmp', emptyDir: {} },
        ],
      }),
    },
  };
}

/**
 * A pod template of the run: locked down (non-root, no API token), its one container, and the
 * config hash that rolls it when the run's config changes.
 */
function podTemplate(labels: Record<string, string>, configHash: string, container: V1Container, rest: Omit<V1PodSpec, 'containers'>): V1PodTemplateSpec {
  return {
    metadata: { labels, annotations: { [CONFIG_HASH_ANNOTATION]: configHash } },
    spec: { securityContext: POD_SECURITY, automountServiceAccountToken: false, containers: [container], ...rest },
  };
}

/**
 * One StatefulSet per worker group. Replica numbers are unique across the run's groups (a
 * group's trainers count from the replicas of the groups before it), so assign() gives each
 * trainer its own data.
 */
export function trainerStatefulSetOf(run: TrainingRun, group: WorkerGroup, images: Images, configHash: string): V1StatefulSet {
  const labels = labelsOf(run, 'trainer', group.name);
  const offset = replicaOffsetOf(run, group.name);
  const gpus = group.gpu?.count ?? 0;
  const resources = {
    ...(group.resources?.requests !== undefined ? { requests: stringValues(group.resources.requests) } : {}),
    limits: { ...stringValues(group.resources?.limits ?? {}), ...(gpus > 0 ? { [group.gpu!.resource]: String(gpus) } : {}) },
  };
  if (Object.keys(resources.limits).length === 0) delete (resources as { limits?: unknown }).limits;
  const env: V1EnvVar[] = [
    { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
    // The tokenizer is trained once per pod and cached on the writable /tmp (the root is read-only).
    { name: 'CONCORD_CACHE_DIR', value: '/tmp/concord-cache' },
  ];
  const { dataset } = run.spec.data;
  const container: V1Container = {
    name: 'trainer',
    image: images.trainer,
    ...(images.pullPolicy !== undefined ? { imagePullPolicy: images.pullPolicy } : {}),
    command: [
      ...COMMANDS.trainer,
      '--coordinator', `${names.coordinator(run)}:${PORTS.trainers}`,
      '--config', `${MOUNTS.config}/trainer-${group.name}.yaml`,
      '--id', '$(POD_NAME)', '--group', group.name, '--replica-offset', String(offset),
    ],
    env,
    ...(Object.keys(resources).length > 0 ? { resources } : {}),
    securityContext: CONTAINER_SECURITY,
    volumeMounts: [
      { name: 'config', mountPath: MOUNTS.config, readOnly: true }, { name: 'tmp', mountPath: '/tmp' },
      ...(dataset !== undefined ? [{ name: 'dataset', mountPath: MOUNTS.dataset, readOnly: true }] : []),
    ],
  };
  return {
    apiVersion: 'apps/v1', kind: 'StatefulSet',
    metadata: meta(run, names.trainers(run, group.name), labels),
    spec: {
      replicas: run.spec.suspend ? 0 : group.replicas,
      serviceName: names.trainers(run, group.name),
      // Trainers are independent of each other: start and replace them all at once.
      podManagementPolicy: 'Parallel',
      selector: { matchLabels: { ...selectorOf(run, 'trainer'), [LABELS.group]: group.name } },
      template: podTemplate(labels, configHash, container, {
        ...(group.nodeSelector !== undefined ? { nodeSelector: group.nodeSelector } : {}),
        ...(group.tolerations !== undefined ? { tolerations: group.tolerations } : {}),
        volumes: [
          { name: 'config', configMap: { name: names.config(run) } }, { name: 'tmp', emptyDir: {} },
          ...(dataset !== undefined ? [{ name: 'dataset', persistentVolumeClaim: { claimName: dataset.claimName, readOnly: true } }] : []),
        ],
      }),
    },
  };
}

/** The first replica number of a group: the replicas of the groups listed before it. */
export function replicaOffsetOf(run: TrainingRun, groupName: string): number {
  let offset = 0;
  for (const group of run.spec.workers) {
    if (group.name === groupName) return offset;
    offset += group.replicas;
  }
  throw new Error(`no worker group "${groupName}"`);
}

/** Everything the run owns, in the order the reconciler applies it (dependencies first). */
export function childrenOf(run: TrainingRun, peers: readonly Peer[], images: Images) {
  const configMap = configMapOf(run, peers);
  const hash = configHashOf(configMap);
  return {
    configMap,
    checkpoints: checkpointClaimOf(run),
    coordinatorService: coordinatorServiceOf(run),
    federationService: federationServiceOf(run),
    coordinator: coordinatorDeploymentOf(run, images, hash),
    trainers: run.spec.workers.map((group) => trainerStatefulSetOf(run, group, images, hash)),
  };
}

function selectorOf(run: TrainingRun, component: 'coordinator' | 'trainer'): Record<string, string> {
  return { [LABELS.run]: run.metadata.name!, [LABELS.component]: component };
}

function stringValues(values: Record<string, string | number>): Record<string, string> {
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [k, String(v)]));
}
