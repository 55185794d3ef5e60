// The status a TrainingRun should have, as a pure function of what the reconciler observed:
// the spec's validity, the identity, the children's readiness and the coordinator's report.
// The reconciler writes it once per pass, only when it differs from the stored one.
import type { V1Deployment, V1StatefulSet } from '@kubernetes/client-node';
import { Reason, RunCondition, setCondition } from '../../api/conditions.js';
import type { Condition, Peer, RunPhase, TrainingRun, TrainingRunStatus } from '../../api/types.js';
import type { CoordinatorReport, PeerReport } from '../../coordinator/report.js';

export interface Observation {
  run: TrainingRun;
  /** Why the spec cannot run ("field: problem"), if it cannot. */
  invalid?: string;
  identity?: { secretName: string; peerId: string; publicKey: string };
  coordinator?: V1Deployment;
  trainers: Array<{ desired: number; live: V1StatefulSet | undefined }>;
  peers: readonly Peer[];
  /** The coordinator's last report, if it answered this pass. */
  report?: CoordinatorReport;
  now: Date;
}

/** A peer counts as verified when its last call succeeded (a signed, checked answer). */
export function isVerified(peer: PeerReport | undefined): boolean {
  return peer !== undefined && peer.lastSeen !== undefined && peer.lastError === undefined;
}

export function desiredStatus(o: Observation): TrainingRunStatus {
  const { run, report, now } = o;
  const previous = run.status ?? {};
  const generation = run.metadata.generation;
  const rounds = run.spec.outer?.rounds;
  const round = report?.round ?? previous.round ?? 0;
  const suspended = run.spec.suspend === true;
  const succeeded = rounds !== undefined && round >= rounds;
  const coordinatorReady = (o.coordinator?.status?.availableReplicas ?? 0) >= 1;
  const trainersWanted = o.trainers.reduce((sum, t) => sum + t.desired, 0);
  const trainersReady = o.trainers.reduce((sum, t) => sum + Math.min(t.desired, t.live?.status?.readyReplicas ?? 0), 0);
  const byName = new Map((report?.peers ?? []).map((p) => [p.name, p]));
  const verified = o.peers.filter((p) => isVerified(byName.get(p.metadata.name!))).length;
  const reachable = o.peers.filter((p) => {
    const entry = byName.get(p.metadata.name!);
    return entry !== undefined && (entry.lastSeen !== undefined || (entry.lastError !== undefined && entry.lastError.kind !== 'unreachable'));
  }).length;
  const banned = o.peers.filter((p) => byName.get(p.metadata.name!)?.ban !== undefined).length;

  const phase: RunPhase = o.invalid !== undefined ? 'Failed'
    : succeeded ? 'Succeeded'
      : suspended ? 'Suspended'
        : coordinatorReady && report !== undefined ? 'Running' : 'Pending';

  let conditions = previous.conditions ?? [];
  const set = (type: string, status: Condition['status'], reason: string, message: string) => {
    conditions = setCondition(conditions, { type, status, reason, message, ...(generation !== undefined ? { observedGeneration: generation } : {}) }, now);
  };

  // Ready
  if (o.invalid !== undefined) set(RunCondition.Ready, 'False', Reason.InvalidSpec, o.invalid);
  else if (suspended) set(RunCondition.Ready, 'False', Reason.Suspended, 'spec.suspend is true: coordinator and trainers are scaled to zero; identity and checkpoints are kept');
  else if (!coordinatorReady) set(RunCondition.Ready, 'False', Reason.CoordinatorNotReady, 'the coordinator Deployment has no available replica');
  else if (trainersReady < trainersWanted) set(RunCondition.Ready, 'False', Reason.TrainersNotReady, `${trainersReady} of ${trainersWanted} trainers ready`);
  else set(RunCondition.Ready, 'True', Reason.AllReady, `coordinator and ${trainersWanted} trainers ready`);

  // Federated
  if (o.invalid !== undefined) set(RunCondition.Federated, 'False', Reason.InvalidSpec, o.invalid);
  else if (o.peers.length === 0) set(RunCondition.Federated, 'False', Reason.NoPeers, 'no Peer refers to this run');
  else if (report === undefined) set(RunCondition.Federated, 'Unknown', Reason.CoordinatorUnreachable, 'the coordinator did not answer its status request');
  else if (2 * verified > o.peers.length) set(RunCondition.Federated, 'True', Reason.PeersVerified, `${verified} of ${o.peers.length} peers verified`);
  else set(RunCondition.Federated, 'False', Reason.TooFewPeersVerified, `${verified} of ${o.peers.length} peers verified; a majority is needed`);

  // Training
  if (o.invalid !== undefined) set(RunCondition.Training, 'False', Reason.InvalidSpec, o.invalid);
  else if (succeeded) set(RunCondition.Training, 'False', Reason.RoundsCompleted, `all ${rounds} rounds applied`);
  else if (suspended) set(RunCondition.Training, 'False', Reason.Suspended, 'the run is suspended');
  else if (report !== undefined && report.trainers > 0 && report.phase !== 'Idle') set(RunCondition.Training, 'True', Reason.RoundsProgressing, `round ${report.round} of ${report.rounds}: ${report.phase}`);
  else set(RunCondition.Training, 'False', Reason.WaitingForRounds, report === undefined ? 'waiting for the coordinator'
    : report.peers.length === 0 ? 'waiting for Peers: a run trains with its partners (add a Peer per partner)'
      : `waiting for trainers and partners (${report.trainers} trainers connected)`);

  // Degraded
  if (banned > 0) set(RunCondition.Degraded, 'True', Reason.PeerBanned, `${banned} peer(s) banned for equivocation (evidence in their Peer status)`);
  else if (!suspended && o.invalid === undefined && coordinatorReady && trainersReady < trainersWanted) set(RunCondition.Degraded, 'True', Reason.TrainersMissing, `${trainersReady} of ${trainersWanted} trainers ready`);
  else set(RunCondition.Degraded, 'False', Reason.AsExpected, 'nothing needs attention');

  const status: TrainingRunStatus = {
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
    phase,
    round,
    ...(rounds !== undefined ? { rounds, progress: `${round}/${rounds}` } : {}),
    ...optional('modelHash', report?.modelHash ?? previous.modelHash),
    ...optional('loss', report?.loss ?? previous.loss),
    ...optional('tokens', report?.tokens ?? previous.tokens),
    ...optional('eta', report !== undefined && rounds !== undefined && !succeeded ? etaOf(report.meanRoundSeconds, rounds - round) : undefined),
    ...optional('lastProgressTime', report?.lastRoundAt ?? previous.lastProgressTime),
    ...(o.identity !== undefined ? { identity: o.identity } : previous.identity !== undefined ? { identity: previous.identity } : {}),
    peers: { configured: o.peers.length, reachable, verified, banned, summary: `${verified}/${o.peers.length}` },
    conditions,
  };
  return status;
}

/** "1h20m", "4m10s", "35s" for the remaining rounds at the mean round time so far. */
export function etaOf(meanRoundSeconds: number | undefined, roundsLeft: number): string | undefined {
  if (meanRoundSeconds === undefined || roundsLeft <= 0) return undefined;
  const seconds = Math.round(meanRoundSeconds * roundsLeft);
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return h > 0 ? `${h}h${m}m` : m > 0 ? `${m}m${s}s` : `${s}s`;
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}
