// The status a Peer should have, as a pure function of its spec, its run and the run
// coordinator's report. Reachable answers "does the endpoint answer"; Verified answers "did
// both sides prove the keys they are configured with" — an unreachable partner and a
// misconfigured one get different reasons (kueue's MultiKueue does the same for clusters).
import { Reason, PeerCondition, setCondition } from '../../api/conditions.js';
import type { Condition, Peer, PeerStatus, TrainingRun } from '../../api/types.js';
import type { CoordinatorReport } from '../../coordinator/report.js';
import { parsePublicKey, peerIdOf } from '../../federation/identity.js';

/**
 * Why a Peer's spec cannot be used ("field: problem"), or undefined. `others`: the run's other
 * Peers; `ownKey`: the run's own public key (status.identity.publicKey), which no Peer may carry.
 */
export function peerProblem(peer: Peer, others: readonly Peer[], ownKey?: string): string | undefined {
  let key: Buffer;
  try {
    key = parsePublicKey(peer.spec.publicKey);
  } catch (error) {
    return `spec.publicKey: ${(error as Error).message}`;
  }
  if (ownKey !== undefined && key.equals(parsePublicKey(ownKey))) return 'spec.publicKey: this is the run\'s own identity (status.identity.publicKey of the TrainingRun), not a partner\'s';
  const twin = others.find((other) => other.metadata.name! < peer.metadata.name! && publicKeyOrUndefined(other)?.equals(key));
  if (twin !== undefined) return `spec.publicKey: the same key as Peer "${twin.metadata.name}" of this run (each partner has its own identity)`;
  return undefined;
}

function publicKeyOrUndefined(peer: Peer): Buffer | undefined {
  try {
    return parsePublicKey(peer.spec.publicKey);
  } catch {
    return undefined;
  }
}

/** The run's Peers the coordinator is configured with: the valid ones. */
export function usablePeers(peers: readonly Peer[], ownKey?: string): Peer[] {
  return peers.filter((peer) => peer.metadata.deletionTimestamp === undefined && peerProblem(peer, peers, ownKey) === undefined);
}

export interface PeerObservation {
  peer: Peer;
  run: TrainingRun | undefined;
  /** Whether the run's spec.federation.peerSelector selects this Peer (true without a run). */
  selected: boolean;
  /** The run's other Peers (for duplicate keys). */
  siblings: readonly Peer[];
  report: CoordinatorReport | undefined;
  now: Date;
}

export function desiredPeerStatus(o: PeerObservation): PeerStatus {
  const { peer, run, report, now } = o;
  const previous = peer.status ?? {};
  const generation = peer.metadata.generation;
  const problem = peerProblem(peer, o.siblings, run?.status?.identity?.publicKey);
  const entry = report?.peers.find((p) => p.name === peer.metadata.name);
  let conditions = previous.conditions ?? [];
  const set = (type: string, status: Condition['status'], reason: string, message: string) => {
    conditions = setCondition(conditions, { type, status, reason, message, ...(generation !== undefined ? { observedGeneration: generation } : {}) }, now);
  };
  const error = entry?.lastError;

  const unselected = `the TrainingRun's spec.federation.peerSelector does not select this Peer's labels: it is not in the run`;
  if (run === undefined) set(PeerCondition.Reachable, 'Unknown', Reason.RunNotFound, `TrainingRun "${peer.spec.runRef.name}" does not exist in this namespace`);
  else if (!o.selected) set(PeerCondition.Reachable, 'Unknown', Reason.NotSelected, unselected);
  else if (problem !== undefined) set(PeerCondition.Reachable, 'Unknown', Reason.InvalidSpec, problem);
  else if (entry === undefined) set(PeerCondition.Reachable, 'Unknown', Reason.AwaitingCoordinator, report === undefined ? 'the run\'s coordinator has not reported yet' : 'the coordinator has not loaded this peer yet');
  else if (error?.kind === 'unreachable') set(PeerCondition.Reachable, 'False', Reason.Unreachable, `${peer.spec.endpoint}: ${error.message}`);
  else if (entry.lastSeen !== undefined || error !== undefined) set(PeerCondition.Reachable, 'True', Reason.HandshakeSucceeded, `${peer.spec.endpoint} answers`);
  else set(PeerCondition.Reachable, 'Unknown', Reason.AwaitingCoordinator, 'not contacted yet');

  if (run === undefined) set(PeerCondition.Verified, 'Unknown', Reason.RunNotFound, `TrainingRun "${peer.spec.runRef.name}" does not exist in this namespace`);
  else if (!o.selected) set(PeerCondition.Verified, 'Unknown', Reason.NotSelected, unselected);
  else if (problem !== undefined) set(PeerCondition.Verified, 'False', Reason.InvalidSpec, problem);
  else if (entry?.ban !== undefined) set(PeerCondition.Verified, 'False', Reason.Banned, `banned in round ${entry.ban.round} for signing two contributions (evidence in status.banned)`);
  else if (error?.kind === 'rejected') set(PeerCondition.Verified, 'False', Reason.KeyMismatch, `the endpoint did not prove spec.publicKey (${error.reason}): ${error.message}`);
  else if (error?.kind === 'refused' && error.reason === 'UnknownPeer') set(PeerCondition.Verified, 'False', Reason.NotAllowedByPeer, 'the partner does not list this cluster\'s public key (give it status.identity.publicKey of the TrainingRun)');
  else if (error?.kind === 'refused' && error.reason === 'WrongRun') set(PeerCondition.Verified, 'False', Reason.RunMismatch, `the partner takes part in another run than "${run.spec.runId}"`);
  else if (error?.kind === 'refused') set(PeerCondition.Verified, 'False', Reason.HandshakeRefused, `${error.reason}: ${error.message}`);
  else if (entry !== undefined && entry.lastSeen !== undefined && error === undefined) set(PeerCondition.Verified, 'True', Reason.HandshakeSucceeded, 'both sides proved their keys');
  else set(PeerCondition.Verified, 'Unknown', Reason.AwaitingCoordinator, entry === undefined ? 'no report for this peer yet' : 'no handshake yet');

  let peerId: string | undefined;
  try {
    peerId = peerIdOf(parsePublicKey(peer.spec.publicKey));
  } catch {
    peerId = undefined;
  }
  const rejectedByReason = entry?.rejected ?? previous.rejectedByReason;
  return {
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
    ...(peerId !== undefined ? { peerId } : {}),
    ...(entry?.lastHandshake ?? previous.lastHandshake ? { lastHandshake: entry?.lastHandshake ?? previous.lastHandshake } : {}),
    ...(entry?.lastSeen ?? previous.lastSeen ? { lastSeen: entry?.lastSeen ?? previous.lastSeen } : {}),
    ...(entry?.rttMs ?? previous.rttMs) !== undefined ? { rttMs: entry?.rttMs ?? previous.rttMs } : {},
    ...(entry?.reputation ?? previous.reputation) !== undefined ? { reputation: round3(entry?.reputation ?? previous.reputation!) } : {},
    ...(entry !== undefined ? { accepted: entry.accepted } : previous.accepted !== undefined ? { accepted: previous.accepted } : {}),
    ...(rejectedByReason !== undefined ? { rejected: Object.values(rejectedByReason).reduce((a, b) => a + b, 0), rejectedByReason } : {}),
    ...(entry?.ban !== undefined ? { banned: { reason: 'Equivocation', round: entry.ban.round, evidence: entry.ban.evidence.join('\n') } } : previous.banned !== undefined ? { banned: previous.banned } : {}),
    conditions,
  };
}

/** Reputation to three decimals: the status changes when the reputation does, not on noise. */
function round3(value: number): number {
  return Math.round(value * 1000) / 1000;
}
