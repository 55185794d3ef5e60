// The Peer reconciler: mirrors what the run's coordinator reported about this partner (link,
// reputation, contributions, ban with evidence) into the Peer's status, with Reachable and
// Verified conditions. The coordinator's configuration (who may handshake) follows the Peers
// through the TrainingRun reconciler: a deleted Peer leaves the run's config, and the
// coordinator, rolled by the config hash, refuses it from then on.
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { conditionTransitions } from '../../api/conditions.js';
import { GROUP, VERSION, type Peer, type PeerStatus } from '../../api/types.js';
import type { ReconcileResult } from '../../runtime/controller.js';
import type { EventRecorder } from '../../runtime/events.js';
import { canonical } from '../../runtime/kube.js';
import type { ClusterCache } from '../cache.js';
import type { ReportBook } from '../reports.js';
import { desiredPeerStatus } from './status.js';

export interface PeerReconcilerOptions {
  config: KubeConfig;
  cache: ClusterCache;
  reports: ReportBook;
  events: EventRecorder;
  now?: () => Date;
}

export class PeerReconciler {
  private readonly custom: CustomObjectsApi;

  constructor(private readonly options: PeerReconcilerOptions) {
    this.custom = options.config.makeApiClient(CustomObjectsApi);
  }

  readonly reconcile = async (key: string): Promise<ReconcileResult> => {
    const { cache, reports } = this.options;
    const [namespace, name] = key.split('/') as [string, string];
    const peer = cache.peers.get(name, namespace);
    if (peer === undefined || peer.metadata.deletionTimestamp !== undefined) return {};
    const runName = peer.spec.runRef.name;
    const run = cache.runs.get(runName, namespace);
    const siblings = cache.peers.list(namespace).filter((p) => p.spec?.runRef?.name === runName);
    const status = desiredPeerStatus({ peer, run, siblings, report: reports.get(`${namespace}/${runName}`), now: this.options.now?.() ?? new Date() });
    await this.writeStatus(peer, status);
    // The TrainingRun controller hands the run's Peers over after each report: no polling here.
    return {};
  };

  private async writeStatus(peer: Peer, status: PeerStatus): Promise<void> {
    if (canonical(status) === canonical(peer.status ?? {})) return;
    await this.custom.replaceNamespacedCustomObjectStatus({
      group: GROUP, version: VERSION, plural: 'peers', namespace: peer.metadata.namespace!, name: peer.metadata.name!,
      body: { ...peer, status },
    });
    for (const { condition, from } of conditionTransitions(peer.status?.conditions, status.conditions ?? [])) {
      if (from === undefined && condition.status !== 'False') continue;
      await this.options.events.record(peer, condition.status === 'True' ? 'Normal' : 'Warning', condition.reason, `${condition.type}=${condition.status}: ${condition.message ?? ''}`);
    }
  }
}
