/** @jest-environment ./test/support/ort-environment.cjs */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { peerIdOf } from '../../operator/src/federation/identity.js';
import { federationRunMs, federationStartMs, TEARDOWN_MS, within } from '../support/deadlines.js';
import { startFederation, tinySettings, type Federation } from '../support/federation-run.js';

// Three honest clusters run outer rounds over real gRPC, each with a real trainer: every round
// ends with the same model hash everywhere.
describe('outer rounds between honest clusters', () => {
  let federation: Federation;
  beforeAll(async () => {
    federation = await startFederation([{ name: 'alpha' }, { name: 'beta' }, { name: 'gamma' }], { settings: tinySettings({ rounds: 3 }), maxInnerSteps: 8 });
    federation.run();
    await federation.finished();
  }, within(federationStartMs(3), federationRunMs(3)));
  afterAll(async () => federation?.close(), within(TEARDOWN_MS));

  it('ends every round with the same model hash on every cluster', () => {
    const [first, ...rest] = federation.clusters;
    expect(first!.summaries).toHaveLength(3);
    for (const [i, summary] of first!.summaries.entries()) {
      expect(summary.agreed).toBe(true);
      for (const other of rest) expect(other.summaries[i]!.modelHash).toBe(summary.modelHash);
    }
  });
});

// A Peer's weight and maxContributionBytes are its owner's vote, not a veto: alpha gives delta
// weight 0 and caps beta's payloads below their size, so alpha neither fetches nor votes for
// them (PeerPolicy, no penalty), yet whatever the other three all vote for is a majority of the
// four and applied by every cluster, alpha included, which ends each round with the same model.
// gamma gives alpha weight 0.5: its vote for alpha's contributions is half its score.
describe('a cluster\'s Peer settings are one vote among the members\'', () => {
  let federation: Federation;
  beforeAll(async () => {
    federation = await startFederation([
      { name: 'alpha', peerSettings: { delta: { weight: 0 }, beta: { maxContributionBytes: 1024 } } },
      { name: 'beta' }, { name: 'gamma', peerSettings: { alpha: { weight: 0.5 } } }, { name: 'delta' },
    ], { settings: tinySettings({ rounds: 3 }), maxInnerSteps: 8 });
    federation.run();
    await federation.finished();
  }, within(federationStartMs(4), federationRunMs(3)));
  afterAll(async () => federation?.close(), within(TEARDOWN_MS));

  it('alpha refuses to vote for two partners; the majority still decides, the same everywhere', () => {
    const byName = (name: string) => federation.clusters.find((c) => c.spec.name === name)!;
    const id = (name: string) => peerIdOf(byName(name).identity.publicKey);
    const alpha = byName('alpha');
    expect(alpha.summaries).toHaveLength(3);
    let appliedWithoutAlpha = 0;
    for (const [round, summary] of alpha.summaries.entries()) {
      expect(summary.rejected).toEqual(expect.arrayContaining([
        expect.objectContaining({ peerId: id('delta'), reason: 'PeerPolicy', detail: expect.stringContaining('weight 0') }),
        expect.objectContaining({ peerId: id('beta'), reason: 'PeerPolicy', detail: expect.stringContaining('above this cluster\'s limit') }),
      ]));
      // No other verdict on them at alpha: it never fetched their payloads, nor voted for them.
      expect(summary.rejected.filter((r) => r.peerId === id('delta') || r.peerId === id('beta')).map((r) => r.reason)).toEqual(['PeerPolicy', 'PeerPolicy']);
      expect(Object.keys(summary.votes)).not.toEqual(expect.arrayContaining([id('delta')]));
      expect(Object.keys(summary.votes)).not.toEqual(expect.arrayContaining([id('beta')]));
      const everyones = federation.clusters.map((c) => c.summaries[round]!);
      for (const theirs of everyones) expect(theirs.modelHash).toBe(summary.modelHash);
      for (const partner of ['beta', 'delta']) {
        // Applied iff more than half of the four manifests list it: here, iff the other three all do.
        const votes = everyones.filter((s) => s.votes[id(partner)] !== undefined).length;
        for (const theirs of everyones) expect(theirs.accepted.some((a) => a.peerId === id(partner))).toBe(votes > 2);
        if (votes > 2) appliedWithoutAlpha++;
      }
    }
    expect(appliedWithoutAlpha).toBeGreaterThan(0); // the case above happened, at least once
    // gamma's manifest: alpha's contribution at half gamma's score, the others at their score.
    const gamma = byName('gamma');
    let halved = 0;
    for (const summary of gamma.summaries) {
      for (const [peerId, vote] of Object.entries(summary.votes)) {
        expect(vote).toBe(Math.round(summary.scores[peerId]! * (peerId === id('alpha') ? 0.5 : 1) * 1e6));
        if (peerId === id('alpha')) halved++;
      }
    }
    expect(halved).toBeGreaterThan(0);
    // Not the partners' fault: alpha neither scored nor penalised them (a penalty is a score of 0).
    const reputations = alpha.coordinator.reputations();
    expect(reputations.find((r) => r.peerId === id('gamma'))?.scored).toBeGreaterThan(0);
    for (const name of ['beta', 'delta']) expect(reputations.find((r) => r.peerId === id(name))?.scored ?? 0).toBe(0);
  });
});
