// The operator's view of the cluster: one resilient informer per kind it reads. Children are
// watched only with the operator's managed-by label, so the cache holds what the operator made,
// not every Deployment of the cluster.
import {
  AppsV1Api, CoreV1Api, CustomObjectsApi, type KubeConfig, type KubernetesListObject, type KubernetesObject,
  type V1ConfigMap, type V1Deployment, type V1PersistentVolumeClaim, type V1Service, type V1StatefulSet,
} from '@kubernetes/client-node';
import { GROUP, VERSION, type Peer, type TrainingRun } from '../api/types.js';
import { ResilientInformer, type InformerEvent } from '../runtime/informer.js';
import { FIELD_MANAGER, LABELS } from './trainingrun/names.js';

export const MANAGED_SELECTOR = `${LABELS.managedBy}=${FIELD_MANAGER}`;

export type Handler<T> = (event: InformerEvent, object: T) => void;

export interface CacheHandlers {
  run: Handler<TrainingRun>;
  peer: Handler<Peer>;
  child: Handler<KubernetesObject>;
}

/** The operator never reads managedFields; on server-side-applied objects they are often the largest part. */
function withoutManagedFields(object: KubernetesObject): void {
  if (object.metadata !== undefined) delete object.metadata.managedFields;
}

export class ClusterCache {
  readonly runs: ResilientInformer<TrainingRun>;
  readonly peers: ResilientInformer<Peer>;
  readonly deployments: ResilientInformer<V1Deployment>;
  readonly statefulSets: ResilientInformer<V1StatefulSet>;
  readonly services: ResilientInformer<V1Service>;
  readonly configMaps: ResilientInformer<V1ConfigMap>;
  readonly claims: ResilientInformer<V1PersistentVolumeClaim>;

  /** `namespace`: watch one namespace only; all when undefined. */
  constructor(config: KubeConfig, handlers: CacheHandlers, options: { namespace?: string; onError?: (kind: string, error: unknown, retryInMs: number) => void; maxRetryDelayMs?: number } = {}) {
    const { namespace } = options;
    const apps = config.makeApiClient(AppsV1Api);
    const core = config.makeApiClient(CoreV1Api);
    const custom = config.makeApiClient(CustomObjectsApi);
    const ns = namespace === undefined ? '' : `/namespaces/${namespace}`;
    const labelSelector = MANAGED_SELECTOR;
    const common = <T extends KubernetesObject>(kind: string, onEvent: Handler<T>) => ({
      onEvent, transform: withoutManagedFields, ...(options.maxRetryDelayMs !== undefined ? { maxDelayMs: options.maxRetryDelayMs } : {}),
      onError: (error: unknown, retryInMs: number) => options.onError?.(kind, error, retryInMs),
    });
    const listCustom = <T extends KubernetesObject>(plural: string) => async () => (namespace === undefined
      ? await custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural })
      : await custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, plural, namespace })) as KubernetesListObject<T>;
    this.runs = new ResilientInformer<TrainingRun>(config, { path: `/apis/${GROUP}/${VERSION}${ns}/trainingruns`, list: listCustom<TrainingRun>('trainingruns'), ...common('TrainingRun', handlers.run) });
    this.peers = new ResilientInformer<Peer>(config, { path: `/apis/${GROUP}/${VERSION}${ns}/peers`, list: listCustom<Peer>('peers'), ...common('Peer', handlers.peer) });
    const child: Handler<KubernetesObject> = handlers.child;
    this.deployments = new ResilientInformer<V1Deployment>(config, {
      path: `/apis/apps/v1${ns}/deployments`, labelSelector, ...common('Deployment', child),
      list: () => namespace === undefined ? apps.listDeploymentForAllNamespaces({ labelSelector }) : apps.listNamespacedDeployment({ namespace, labelSelector }),
    });
    this.statefulSets = new ResilientInformer<V1StatefulSet>(config, {
      path: `/apis/apps/v1${ns}/statefulsets`, labelSelector, ...common('StatefulSet', child),
      list: () => namespace === undefined ? apps.listStatefulSetForAllNamespaces({ labelSelector }) : apps.listNamespacedStatefulSet({ namespace, labelSelector }),
    });
    this.services = new ResilientInformer<V1Service>(config, {
      path: `/api/v1${ns}/services`, labelSelector, ...common('Service', child),
      list: () => namespace === undefined ? core.listServiceForAllNamespaces({ labelSelector }) : core.listNamespacedService({ namespace, labelSelector }),
    });
    this.configMaps = new ResilientInformer<V1ConfigMap>(config, {
      path: `/api/v1${ns}/configmaps`, labelSelector, ...common('ConfigMap', child),
      list: () => namespace === undefined ? core.listConfigMapForAllNamespaces({ labelSelector }) : core.listNamespacedConfigMap({ namespace, labelSelector }),
    });
    this.claims = new ResilientInformer<V1PersistentVolumeClaim>(config, {
      path: `/api/v1${ns}/persistentvolumeclaims`, labelSelector, ...common('PersistentVolumeClaim', child),
      list: () => namespace === undefined ? core.listPersistentVolumeClaimForAllNamespaces({ labelSelector }) : core.listNamespacedPersistentVolumeClaim({ namespace, labelSelector }),
    });
  }

  private all() {
    return [this.runs, this.peers, this.deployments, this.statefulSets, this.services, this.configMaps, this.claims] as const;
  }

  /** Starts every informer; resolves when each has listed once. */
  async start(signal?: AbortSignal): Promise<void> {
    await Promise.all(this.all().map((informer) => informer.start(signal)));
  }

  async stop(): Promise<void> {
    await Promise.all(this.all().map((informer) => informer.stop()));
  }
}
