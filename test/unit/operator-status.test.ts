import { describe, expect, it } from '@jest/globals';
import type { V1Deployment, V1StatefulSet } from '@kubernetes/client-node';
import { conditionTransitions, setCondition } from '../../operator/src/api/conditions.js';
import type { Condition, TrainingRun } from '../../operator/src/api/types.js';
import { desiredPeerStatus, peerProblem } from '../../operator/src/controllers/peer/status.js';
import { desiredStatus, etaOf, type Observation } from '../../operator/src/controllers/trainingrun/status.js';
import { REPORT_VERSION, type CoordinatorReport, type PeerReport } from '../../operator/src/coordinator/report.js';
import { encodePublicKey, generateIdentity } from '../../operator/src/federation/identity.js';
import { canonical, holds } from '../../operator/src/runtime/kube.js';
import { defaultedPeer, defaultedRun } from '../support/crd-defaults.js';

const now = new Date('2026-11-26T12:00:00Z');
const key = () => encodePublicKey(generateIdentity().publicKey);
const available: V1Deployment = { status: { availableReplicas: 1 } };
const ready = (n: number): V1StatefulSet => ({ status: { replicas: n, readyReplicas: n } });

function peerReport(name: string, fields: Partial<PeerReport> = {}): PeerReport {
  return { name, peerId: 'ab', lastSeen: now.toISOString(), lastHandshake: now.toISOString(), rttMs: 3, lastError: undefined, reputation: 0.4, excluded: undefined, ban: undefined, accepted: 2, rejected: {}, ...fields };
}

function report(fields: Partial<CoordinatorReport> = {}): CoordinatorReport {
  return {
    apiVersion: REPORT_VERSION, runId: 'shared-run', peerId: 'aa', publicKey: 'k', phase: 'Training', round: 3, rounds: 100, modelHash: 'f00d',
    loss: 4.25, tokens: 123456, agreed: true, meanRoundSeconds: 630, lastRoundAt: now.toISOString(), trainers: 2, peers: [], ...fields,
  };
}

function observe(run: TrainingRun, fields: Partial<Observation> = {}): Observation {
  return { run, peers: [], trainers: [{ desired: 2, live: ready(2) }], coordinator: available, now, ...fields };
}

const condition = (status: { conditions?: Condition[] }, type: string) => status.conditions!.find((c) => c.type === type);

describe('TrainingRun status (pure)', () => {
  it('reports progress from the coordinator: round of rounds, loss, tokens, model hash and an ETA', () => {
    const peers = [defaultedPeer('b', { publicKey: key() })];
    const status = desiredStatus(observe(defaultedRun(), { peers, report: report({ peers: [peerReport('b')] }) }));
    expect(status).toMatchObject({ phase: 'Running', round: 3, rounds: 100, progress: '3/100', loss: 4.25, tokens: 123456, modelHash: 'f00d', eta: '16h58m', observedGeneration: 1 });
    expect(status.peers).toEqual({ configured: 1, reachable: 1, verified: 1, banned: 0, summary: '1/1' });
    expect(condition(status, 'Ready')).toMatchObject({ status: 'True', reason: 'AllReady' });
    expect(condition(status, 'Federated')).toMatchObject({ status: 'True', reason: 'PeersVerified' });
    expect(condition(status, 'Training')).toMatchObject({ status: 'True', reason: 'RoundsProgressing' });
    expect(condition(status, 'Degraded')).toMatchObject({ status: 'False', reason: 'AsExpected' });
  });

  it('keeps the last known progress while the coordinator does not answer', () => {
    const run = defaultedRun();
    run.status = desiredStatus(observe(run, { report: report() }));
    const later = desiredStatus(observe(run, { coordinator: { status: {} } }));
    expect(later).toMatchObject({ phase: 'Pending', round: 3, loss: 4.25, modelHash: 'f00d' });
    expect(condition(later, 'Ready')).toMatchObject({ status: 'False', reason: 'CoordinatorNotReady' });
  });

  it('says InvalidSpec with the field on every condition and phase Failed', () => {
    const status = desiredStatus(observe(defaultedRun(), { invalid: 'spec.model.heads: 4 does not divide model.dModel (30)' }));
    expect(status.phase).toBe('Failed');
    for (const type of ['Ready', 'Federated', 'Training']) expect(condition(status, type)).toMatchObject({ status: 'False', reason: 'InvalidSpec', message: 'spec.model.heads: 4 does not divide model.dModel (30)' });
  });

  it('is Suspended, Succeeded, or degraded by a banned peer or missing trainers', () => {
    expect(desiredStatus(observe(defaultedRun({ suspend: true }))).phase).toBe('Suspended');
    const done = desiredStatus(observe(defaultedRun({ outer: { rounds: 3 } }), { report: report({ round: 3, rounds: 3 }) }));
    expect(done.phase).toBe('Succeeded');
    expect(condition(done, 'Training')).toMatchObject({ status: 'False', reason: 'RoundsCompleted' });
    expect(done.eta).toBeUndefined();
    const peers = [defaultedPeer('m', { publicKey: key() })];
    const banned = desiredStatus(observe(defaultedRun(), { peers, report: report({ peers: [peerReport('m', { ban: { round: 2, evidence: ['x', 'y'] } })] }) }));
    expect(condition(banned, 'Degraded')).toMatchObject({ status: 'True', reason: 'PeerBanned' });
    const short = desiredStatus(observe(defaultedRun(), { trainers: [{ desired: 2, live: ready(1) }], report: report() }));
    expect(condition(short, 'Degraded')).toMatchObject({ status: 'True', reason: 'TrainersMissing' });
    expect(condition(short, 'Ready')).toMatchObject({ status: 'False', reason: 'TrainersNotReady', message: '1 of 2 trainers ready' });
  });

  it('needs a majority of the Peers verified to be Federated', () => {
    const peers = ['b', 'c', 'd'].map((n) => defaultedPeer(n, { publicKey: key() }));
    const unreachable = { kind: 'unreachable' as const, reason: 'grpc:14', message: 'connection refused', at: now.toISOString() };
    const one = desiredStatus(observe(defaultedRun(), { peers, report: report({ peers: [peerReport('b'), peerReport('c', { lastSeen: undefined, lastError: unreachable }), peerReport('d', { lastSeen: undefined })] }) }));
    expect(condition(one, 'Federated')).toMatchObject({ status: 'False', reason: 'TooFewPeersVerified', message: '1 of 3 peers verified; a majority is needed' });
    const two = desiredStatus(observe(defaultedRun(), { peers, report: report({ peers: [peerReport('b'), peerReport('c'), peerReport('d', { lastSeen: undefined })] }) }));
    expect(condition(two, 'Federated')!.status).toBe('True');
  });

  it('moves lastTransitionTime only when a condition\'s status changes, and the status is stable', () => {
    const run = defaultedRun();
    run.status = desiredStatus(observe(run, { report: report() }));
    const again = desiredStatus({ ...observe(run, { report: report() }), now: new Date(now.getTime() + 60_000) });
    expect(canonical(again)).toBe(canonical(run.status));
    const changed = desiredStatus({ ...observe(run, { coordinator: { status: {} }, report: report() }), now: new Date(now.getTime() + 60_000) });
    expect(condition(changed, 'Ready')).toMatchObject({ lastTransitionTime: '2026-11-26T12:01:00.000Z' });
    expect(condition(changed, 'Training')).toMatchObject({ lastTransitionTime: now.toISOString() });
  });

  it('formats an ETA', () => {
    expect([etaOf(30, 1), etaOf(61, 2), etaOf(3600, 3), etaOf(undefined, 3), etaOf(10, 0)]).toEqual(['30s', '2m2s', '3h0m', undefined, undefined]);
  });
});

describe('Peer status (pure)', () => {
  const run = defaultedRun();
  const withReport = (peerName: string, entry: Partial<PeerReport>) => {
    const peer = defaultedPeer(peerName, { publicKey: key() });
    return desiredPeerStatus({ peer, run, selected: true, siblings: [peer], report: report({ peers: [peerReport(peerName, entry)] }), now });
  };
  const at = now.toISOString();

  it('is Reachable and Verified after a handshake, mirroring reputation, counts and link', () => {
    const status = withReport('b', { rejected: { LowScore: 2, Copy: 1 }, accepted: 5, reputation: 0.41234 });
    expect(condition(status, 'Reachable')).toMatchObject({ status: 'True', reason: 'HandshakeSucceeded' });
    expect(condition(status, 'Verified')).toMatchObject({ status: 'True', reason: 'HandshakeSucceeded' });
    expect(status).toMatchObject({ accepted: 5, rejected: 3, rejectedByReason: { LowScore: 2, Copy: 1 }, reputation: 0.412, rttMs: 3, lastSeen: at });
    expect(status.peerId).toMatch(/^[0-9a-f]{32,}$/);
  });

  it('tells an unreachable partner from a misconfigured one', () => {
    const down = withReport('b', { lastSeen: undefined, lastError: { kind: 'unreachable', reason: 'grpc:14', message: 'No connection established', at } });
    expect(condition(down, 'Reachable')).toMatchObject({ status: 'False', reason: 'Unreachable' });
    const wrongKey = withReport('b', { lastSeen: undefined, lastError: { kind: 'rejected', reason: 'UnknownPeer', message: 'the server presented key X', at } });
    expect(condition(wrongKey, 'Reachable')!.status).toBe('True');
    expect(condition(wrongKey, 'Verified')).toMatchObject({ status: 'False', reason: 'KeyMismatch' });
    const notListed = withReport('b', { lastError: { kind: 'refused', reason: 'UnknownPeer', message: 'not a peer', at } });
    expect(condition(notListed, 'Verified')).toMatchObject({ status: 'False', reason: 'NotAllowedByPeer' });
    const otherRun = withReport('b', { lastError: { kind: 'refused', reason: 'WrongRun', message: 'other run', at } });
    expect(condition(otherRun, 'Verified')).toMatchObject({ status: 'False', reason: 'RunMismatch' });
  });

  it('shows a ban with its evidence', () => {
    const status = withReport('m', { ban: { round: 4, evidence: ['first', 'second'] } });
    expect(condition(status, 'Verified')).toMatchObject({ status: 'False', reason: 'Banned' });
    expect(status.banned).toEqual({ reason: 'Equivocation', round: 4, evidence: 'first\nsecond' });
  });

  it('waits for the run and the coordinator, and refuses a bad key, a twin key or the run\'s own', () => {
    const peer = defaultedPeer('b', { publicKey: key() });
    const orphan = desiredPeerStatus({ peer, run: undefined, selected: true, siblings: [peer], report: undefined, now });
    expect(condition(orphan, 'Reachable')).toMatchObject({ status: 'Unknown', reason: 'RunNotFound' });
    const waiting = desiredPeerStatus({ peer, run, selected: true, siblings: [peer], report: undefined, now });
    expect(condition(waiting, 'Verified')).toMatchObject({ status: 'Unknown', reason: 'AwaitingCoordinator' });
    const twin = defaultedPeer('c', { publicKey: peer.spec.publicKey });
    expect(peerProblem(twin, [peer, twin])).toMatch(/^spec\.publicKey: the same key as Peer "b"/);
    expect(peerProblem(peer, [peer, twin])).toBeUndefined();
    expect(peerProblem(peer, [peer], peer.spec.publicKey)).toMatch(/own identity/);
    const bad = defaultedPeer('d', { publicKey: 'not a key' });
    expect(peerProblem(bad, [bad])).toMatch(/^spec\.publicKey: /);
    expect(condition(desiredPeerStatus({ peer: bad, run, selected: true, siblings: [bad], report: undefined, now }), 'Verified')).toMatchObject({ status: 'False', reason: 'InvalidSpec' });
  });

  it('says NotSelected for a Peer the run\'s peerSelector leaves out, whatever else holds', () => {
    const peer = defaultedPeer('b', { publicKey: key() });
    const status = desiredPeerStatus({ peer, run, selected: false, siblings: [], report: report({ peers: [peerReport('b', {})] }), now });
    for (const type of ['Reachable', 'Verified']) {
      expect(condition(status, type)).toMatchObject({ status: 'Unknown', reason: 'NotSelected', message: expect.stringContaining('spec.federation.peerSelector') });
    }
  });
});

describe('conditions and comparisons', () => {
  it('setCondition keeps lastTransitionTime while the status holds; transitions list changes', () => {
    const first = setCondition(undefined, { type: 'Ready', status: 'False', reason: 'A', message: 'm' }, now);
    const same = setCondition(first, { type: 'Ready', status: 'False', reason: 'B', message: 'n' }, new Date(now.getTime() + 1000));
    expect(same[0]).toMatchObject({ reason: 'B', lastTransitionTime: now.toISOString() });
    const flipped = setCondition(same, { type: 'Ready', status: 'True', reason: 'C', message: '' }, new Date(now.getTime() + 2000));
    expect(flipped[0]!.lastTransitionTime).toBe('2026-11-26T12:00:02.000Z');
    expect(conditionTransitions(same, flipped).map((t) => [t.condition.reason, t.from])).toEqual([['C', 'False']]);
    expect(conditionTransitions(flipped, flipped)).toEqual([]);
  });

  it('holds: the live object holds every desired field; extra live fields do not matter', () => {
    const desired = { spec: { replicas: 1, template: { containers: [{ name: 'c', image: 'i' }] } } };
    expect(holds({ spec: { replicas: 1, paused: false, template: { containers: [{ name: 'c', image: 'i', imagePullPolicy: 'Always' }] } } }, desired)).toBe(true);
    expect(holds({ spec: { replicas: 2, template: { containers: [{ name: 'c', image: 'i' }] } } }, desired)).toBe(false);
    expect(holds({ spec: { replicas: 1, template: { containers: [{ name: 'c', image: 'i' }, { name: 'd' }] } } }, desired)).toBe(false);
    expect(holds({ metadata: { creationTimestamp: new Date('2026-01-01T00:00:00Z') } }, { metadata: { creationTimestamp: '2026-01-01T00:00:00Z' } })).toBe(true);
    expect(canonical({ b: 1, a: { d: 2, c: 3 } })).toBe(canonical({ a: { c: 3, d: 2 }, b: 1 }));
  });
});
