// Which Peers take part in a run: those whose spec.runRef names it and, when the run sets
// spec.federation.peerSelector, whose labels the selector matches (Kubernetes label-selector
// semantics, as a Service selects Pods). Pure: both controllers call it on cached objects.
import type { LabelSelector, Peer, TrainingRun } from '../api/types.js';

/** Whether `selector` matches `labels`; an absent or empty selector matches everything. */
export function selectorMatches(selector: LabelSelector | undefined, labels: Readonly<Record<string, string>> | undefined): boolean {
  if (selector === undefined) return true;
  const has = (key: string) => labels !== undefined && Object.hasOwn(labels, key);
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (!has(key) || labels![key] !== value) return false;
  }
  for (const { key, operator, values = [] } of selector.matchExpressions ?? []) {
    const present = has(key);
    const matched =
      operator === 'In' ? present && values.includes(labels![key]!)
      : operator === 'NotIn' ? !present || !values.includes(labels![key]!)
      : operator === 'Exists' ? present
      : !present; // DoesNotExist
    if (!matched) return false;
  }
  return true;
}

/** The Peers that name `run` in their runRef, split by whether its peerSelector selects them. */
export function peersOfRun(run: TrainingRun, peers: readonly Peer[]): { selected: Peer[]; unselected: Peer[] } {
  const selected: Peer[] = [];
  const unselected: Peer[] = [];
  for (const peer of peers) {
    if (peer.spec?.runRef?.name !== run.metadata.name || peer.metadata.namespace !== run.metadata.namespace) continue;
    (selectorMatches(run.spec.federation.peerSelector, peer.metadata.labels) ? selected : unselected).push(peer);
  }
  return { selected, unselected };
}

/** What is wrong with a selector the schema cannot check on clusters without CEL, or undefined. */
export function selectorProblem(selector: LabelSelector | undefined, field: string): { field: string; problem: string } | undefined {
  for (const [i, e] of (selector?.matchExpressions ?? []).entries()) {
    const values = e.values ?? [];
    if ((e.operator === 'In' || e.operator === 'NotIn') && values.length === 0) {
      return { field: `${field}.matchExpressions[${i}].values`, problem: `operator ${e.operator} needs at least one value` };
    }
    if ((e.operator === 'Exists' || e.operator === 'DoesNotExist') && values.length > 0) {
      return { field: `${field}.matchExpressions[${i}].values`, problem: `operator ${e.operator} takes no values` };
    }
  }
  return undefined;
}
