// Kubernetes Events for a resource's transitions (a condition that changed), as `kubectl
// describe` shows them. Best effort: an event that cannot be written is logged, never retried.
import { CoreV1Api, type KubeConfig, type V1ObjectMeta } from '@kubernetes/client-node';
import type { Logger } from '../log.js';

export interface EventTarget {
  apiVersion: string;
  kind: string;
  metadata: V1ObjectMeta;
}

export class EventRecorder {
  private readonly api: CoreV1Api;

  constructor(config: KubeConfig, private readonly component: string, private readonly log: Logger) {
    this.api = config.makeApiClient(CoreV1Api);
  }

  async record(target: EventTarget, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const namespace = target.metadata.namespace ?? 'default';
    const now = new Date();
    try {
      await this.api.createNamespacedEvent({
        namespace,
        body: {
          metadata: { generateName: `${target.metadata.name}.`, namespace },
          involvedObject: { apiVersion: target.apiVersion, kind: target.kind, name: target.metadata.name!, namespace, uid: target.metadata.uid! },
          reason, message: message.slice(0, 1024), type,
          firstTimestamp: now, lastTimestamp: now, count: 1,
          source: { component: this.component },
          reportingComponent: this.component,
        },
      });
    } catch (error) {
      this.log.warn('event-not-recorded', { kind: target.kind, name: target.metadata.name, reason, error: error instanceof Error ? error.message : String(error) });
    }
  }
}
