// The end of every reconcile pass: write the status once, only if it differs from what was read
// (a write that changes nothing would wake every watcher for nothing), then record events for the
// conditions that changed.
import { CustomObjectsApi, type KubeConfig, type V1ObjectMeta } from '@kubernetes/client-node';
import { conditionTransitions } from '../api/conditions.js';
import { GROUP, VERSION, type Condition } from '../api/types.js';
import type { EventRecorder } from './events.js';
import { canonical } from './kube.js';

interface WithStatus<S> {
  apiVersion: string;
  kind: string;
  metadata: V1ObjectMeta;
  status?: S;
}

/** Which event a condition change deserves (`from`: the previous status, undefined for a first value), or none. */
export type EventPolicy = (condition: Condition, from: Condition['status'] | undefined) => 'Normal' | 'Warning' | undefined;

export class StatusWriter {
  private readonly custom: CustomObjectsApi;

  constructor(config: KubeConfig, private readonly events: EventRecorder) {
    this.custom = config.makeApiClient(CustomObjectsApi);
  }

  /** Replaces the status subresource (optimistic concurrency on the object's resourceVersion: a conflict is retried by the queue). */
  async write<S extends { conditions?: Condition[] }>(plural: string, object: WithStatus<S>, status: S, policy: EventPolicy): Promise<boolean> {
    if (canonical(status) === canonical(object.status ?? {})) return false;
    await this.custom.replaceNamespacedCustomObjectStatus({
      group: GROUP, version: VERSION, plural, namespace: object.metadata.namespace!, name: object.metadata.name!,
      body: { ...object, status },
    });
    for (const { condition, from } of conditionTransitions(object.status?.conditions, status.conditions ?? [])) {
      const type = policy(condition, from);
      if (type !== undefined) await this.events.record(object, type, condition.reason, `${condition.type}=${condition.status}: ${condition.message ?? ''}`);
    }
    return true;
  }
}
