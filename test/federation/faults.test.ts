/** @jest-environment ./test/support/ort-environment.cjs */
import { afterEach, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { peerIdOf } from '../../operator/src/federation/identity.js';
import { federationRunMs, federationStartMs, roundsMs, TEARDOWN_MS, TRAINERS_JOIN_MS, within } from '../support/deadlines.js';
import { startFederation, tinySettings, type ClusterHandle, type ClusterRecord, type Federation } from '../support/federation-run.js';
import { waitFor } from '../support/wait.js';

// Faults (issue #5): a coordinator killed mid-round and restarted from its checkpoint, and a
// cluster that joins at round 3. Four honest clusters, real gRPC, real trainers.
const NAMES = ['alpha', 'beta', 'gamma', 'delta'];
const settings = tinySettings({ rounds: 7, windowMs: 3000, graceMs: 2000 });

/** Round → model hash after it, for the rounds a cluster completed. */
const hashes = (cluster: ClusterHandle) => new Map(cluster.summaries.map((s) => [s.round, s.modelHash]));

describe('faults', () => {
  let federation: Federation | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await federation?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  }, within(TEARDOWN_MS));

  it('a coordinator killed mid-round: the others finish the round; restarted, it resumes from its checkpoint and rejoins with the majority\'s model', async () => {
    dir = await mkdtemp(join(tmpdir(), 'concord-faults-'));
    const checkpointDirs = Object.fromEntries(NAMES.map((n) => [n, join(dir!, n)]));
    // Round 2 has started at delta (it trained rounds 0 and 1): kill it mid-round. The moment
    // delta has written round 2's base to its checkpoint (the write runs while round 2 trains;
    // delta's contribution to round 2 waits for it), before it can contribute to round 2, kill it:
    // from inside the call that records the event, not some time later when a poll sees it.
    const checkpointed = (events: ClusterHandle['events'], round: bigint) => events.some((e) => e.event === 'checkpointed' && e.fields.round === round);
    let crashed: Promise<void> | undefined;
    const onRecord = ({ name, events, summaries }: ClusterRecord) => {
      if (name === 'delta' && crashed === undefined && summaries.length === 2 && checkpointed(events, 2n)) crashed = federation!.crash('delta');
    };
    // Checkpoints after even rounds only (TrainingRun spec.checkpoint.everyRounds: 2).
    federation = await startFederation(NAMES.map((name) => ({ name })), { settings, maxInnerSteps: 8, checkpointDirs, checkpointEveryRounds: 2, onRecord });
    federation.run();
    const victim = () => federation!.clusters.find((c) => c.spec.name === 'delta')!;
    await waitFor(() => crashed !== undefined, federationRunMs(2), 'delta to finish round 1 and checkpoint round 2\'s base', 20);
    await crashed;
    expect(checkpointed(victim().events, 1n)).toBe(false); // round 1's base was not written: not a multiple of 2
    const survivors = federation.clusters.filter((c) => c.spec.name !== 'delta');
    // The others finish round 2 without it, and one more.
    await waitFor(() => survivors.every((c) => c.summaries.length >= 4), roundsMs(2), 'the survivors to finish rounds 2 and 3', 20);
    for (const round of [2n, 3n]) expect(new Set(survivors.map((c) => hashes(c).get(round))).size).toBe(1);
    const killedAt = survivors[0]!.summaries.find((s) => s.round === 2n)!;
    expect(killedAt.rejected).toEqual(expect.arrayContaining([expect.objectContaining({ peerId: peerIdOf(victim().identity.publicKey), reason: 'Unavailable' })]));

    // Restarted: it resumes from its own checkpoint (round 2's base), then resyncs to the majority.
    const restarted = await federation.restart('delta');
    await federation.finished(NAMES);
    const resumed = restarted.events.find((e) => e.event === 'resumed');
    expect(resumed?.fields.round).toBe(2n);
    const written = (c: ClusterHandle) => c.events.filter((e) => e.event === 'checkpointed').map((e) => e.fields.round as bigint);
    for (const c of survivors) expect(written(c)).toEqual([2n, 4n, 6n]);
    expect(restarted.events.some((e) => e.event === 'resync-done')).toBe(true);
    const reference = hashes(survivors[0]!);
    const rejoined = restarted.summaries.filter((s) => s.round > 3n);
    expect(rejoined.length).toBeGreaterThan(0);
    for (const s of rejoined) expect(s.modelHash).toBe(reference.get(s.round));
    for (const c of survivors) expect(c.summaries.at(-1)!.modelHash).toBe(restarted.summaries.at(-1)!.modelHash);
    // And it contributes again: its updates are applied by the others after it rejoined.
    const deltaId = peerIdOf(restarted.identity.publicKey);
    expect(survivors[0]!.summaries.some((s) => s.round > 3n && s.accepted.some((a) => a.peerId === deltaId))).toBe(true);
  }, within(federationStartMs(NAMES.length), federationRunMs(2), roundsMs(2), TRAINERS_JOIN_MS, federationRunMs(settings.rounds)));

  it('a cluster joining at round 3 syncs the majority\'s model and contributes', async () => {
    federation = await startFederation(NAMES.map((name) => ({ name })), { settings, maxInnerSteps: 8 });
    federation.run(['alpha', 'beta', 'gamma']);
    const first = federation.clusters[0]!;
    await waitFor(() => first.summaries.length === 3, federationRunMs(3), 'round 3 to start', 20);
    federation.run(['delta']);
    await federation.finished(NAMES);
    const late = federation.clusters.find((c) => c.spec.name === 'delta')!;
    expect(late.events.some((e) => e.event === 'resync-done')).toBe(true);
    expect(late.summaries[0]!.round).toBeGreaterThanOrEqual(3n);
    const reference = hashes(first);
    for (const s of late.summaries) expect(s.modelHash).toBe(reference.get(s.round));
    const lateId = peerIdOf(late.identity.publicKey);
    expect(first.summaries.some((s) => s.accepted.some((a) => a.peerId === lateId))).toBe(true);
  }, within(federationStartMs(NAMES.length), federationRunMs(3), federationRunMs(settings.rounds)));
});
