// The Peer reconciler: mirrors what the run's coordinator reported about this partner (link,
// reputation, contributions, ban with evidence) into the Peer's status, with Reachable and
// Verified conditions. The coordinator's configuration (who may handshake) follows the Peers
// through the TrainingRun reconciler: a deleted Peer leaves the run's config, and the
// coordinator, rolled by the config hash, refuses it from then on.
import type { KubeConfig } from '@kubernetes/client-node';
import type { ReconcileResult } from '../../runtime/controller.js';
import type { EventRecorder } from '../../runtime/events.js';
import { StatusWriter, type EventPolicy } from '../../runtime/status-writer.js';
import type { ClusterCache } from '../cache.js';
import type { ReportBook } from '../reports.js';
import { peersOfRun } from '../peer-selection.js';
import { desiredPeerStatus } from './status.js';

export interface PeerReconcilerOptions {
  config: KubeConfig;
  cache: ClusterCache;
  reports: ReportBook;
  events: EventRecorder;
  now?: () => Date;
}

export class PeerReconciler {
  private readonly status: StatusWriter;

  constructor(private readonly options: PeerReconcilerOptions) {
    this.status = new StatusWriter(options.config, options.events);
  }

  readonly reconcile = async (key: string): Promise<ReconcileResult> => {
    const { cache, reports } = this.options;
    const [namespace, name] = key.split('/') as [string, string];
    const peer = cache.peers.get(name, namespace);
    if (peer === undefined || peer.metadata.deletionTimestamp !== undefined) return {};
    const runName = peer.spec.runRef.name;
    const run = cache.runs.get(runName, namespace);
    // Twins of a key count among the run's members only: an unselected Peer is not in its config.
    const members = run === undefined ? [] : peersOfRun(run, cache.peers.list(namespace)).selected;
    const selected = run === undefined || members.some((p) => p.metadata.name === peer.metadata.name);
    const status = desiredPeerStatus({ peer, run, selected, siblings: members, report: reports.get(`${namespace}/${runName}`), now: this.options.now?.() ?? new Date() });
    await this.status.write('peers', peer, status, PeerReconciler.events);
    // The TrainingRun controller hands the run's Peers over after each report: no polling here.
    return {};
  };

  /** Events: every change after the first value; a first value only when it is bad news. */
  private static readonly events: EventPolicy = (condition, from) => {
    if (from === undefined && condition.status !== 'False') return undefined;
    return condition.status === 'True' ? 'Normal' : 'Warning';
  };

}
