// Every condition a Concord resource can carry, with its CamelCase reasons: one file, so that a
// reader sees every state a TrainingRun or Peer can be in (jobset keeps its constants the same way).
import type { Condition } from './types.js';

/** TrainingRun condition types. */
export const RunCondition = {
  /** The spec is valid and the coordinator and trainers are up. */
  Ready: 'Ready',
  /** The coordinator has verified sessions with a majority of the configured peers. */
  Federated: 'Federated',
  /** Rounds are being trained and applied. */
  Training: 'Training',
  /** Something needs attention although the run goes on (a banned peer, missing trainers, out of sync). */
  Degraded: 'Degraded',
} as const;

/** Peer condition types. */
export const PeerCondition = {
  /** The coordinator reached the peer's endpoint (a handshake got an answer). */
  Reachable: 'Reachable',
  /** The peer proved the configured key and accepted this cluster's (a handshake succeeded). */
  Verified: 'Verified',
} as const;

export const Reason = {
  // Ready
  InvalidSpec: 'InvalidSpec',
  ChildrenCreated: 'ChildrenCreated',
  CoordinatorNotReady: 'CoordinatorNotReady',
  TrainersNotReady: 'TrainersNotReady',
  AllReady: 'AllReady',
  Suspended: 'Suspended',
  // Federated
  NoPeers: 'NoPeers',
  CoordinatorUnreachable: 'CoordinatorUnreachable',
  PeersVerified: 'PeersVerified',
  TooFewPeersVerified: 'TooFewPeersVerified',
  // Training
  WaitingForRounds: 'WaitingForRounds',
  RoundsProgressing: 'RoundsProgressing',
  RoundsCompleted: 'RoundsCompleted',
  // Degraded
  AsExpected: 'AsExpected',
  PeerBanned: 'PeerBanned',
  TrainersMissing: 'TrainersMissing',
  // Peer
  RunNotFound: 'RunNotFound',
  /** The run's spec.federation.peerSelector does not match the Peer's labels: it is not a member. */
  NotSelected: 'NotSelected',
  AwaitingCoordinator: 'AwaitingCoordinator',
  HandshakeSucceeded: 'HandshakeSucceeded',
  /** The endpoint did not answer (DNS, connection refused, timeout): a network problem. */
  Unreachable: 'Unreachable',
  /** The endpoint answered but refused or failed the handshake: a configuration problem. */
  KeyMismatch: 'KeyMismatch',
  NotAllowedByPeer: 'NotAllowedByPeer',
  RunMismatch: 'RunMismatch',
  HandshakeRefused: 'HandshakeRefused',
  Banned: 'Banned',
} as const;
export type Reason = (typeof Reason)[keyof typeof Reason];

export type ConditionStatus = Condition['status'];

/**
 * The conditions with `next` set: lastTransitionTime moves only when the status changes (as
 * Kubernetes' meta.SetStatusCondition does); reason, message and observedGeneration always follow.
 */
export function setCondition(conditions: readonly Condition[] | undefined, next: Omit<Condition, 'lastTransitionTime'>, now: Date): Condition[] {
  const list = [...(conditions ?? [])];
  const index = list.findIndex((c) => c.type === next.type);
  const previous = index >= 0 ? list[index] : undefined;
  const condition: Condition = {
    ...next,
    lastTransitionTime: previous !== undefined && previous.status === next.status ? previous.lastTransitionTime : now.toISOString(),
  };
  if (index >= 0) list[index] = condition;
  else list.push(condition);
  return list;
}

export function findCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/** Transitions between two condition lists (type, old status, new), for events. */
export function conditionTransitions(before: readonly Condition[] | undefined, after: readonly Condition[]): Array<{ condition: Condition; from: ConditionStatus | undefined }> {
  return after.flatMap((condition) => {
    const old = findCondition(before, condition.type);
    return old?.status === condition.status && old.reason === condition.reason ? [] : [{ condition, from: old?.status }];
  });
}
