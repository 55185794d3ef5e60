/** @jest-environment ./test/support/ort-environment.cjs */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { peerIdOf } from '../../operator/src/federation/identity.js';
import { startFederation, tinySettings, type Federation } from '../support/federation-run.js';

// Three honest clusters run outer rounds over real gRPC, each with a real trainer: every round
// ends with the same model hash everywhere.
describe('outer rounds between honest clusters', () => {
  let federation: Federation;
  beforeAll(async () => {
    federation = await startFederation([{ name: 'alpha' }, { name: 'beta' }, { name: 'gamma' }], { settings: tinySettings({ rounds: 3 }), maxInnerSteps: 8 });
    federation.run();
    await federation.finished();
  }, 180_000);
  afterAll(async () => federation?.close(), 30_000);

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
// them (PeerPolicy, no penalty); the other three still form a majority for both, and every
// cluster, alpha included, applies them and ends each round with the same model.
describe('a cluster\'s Peer settings are one vote among the members\'', () => {
  let federation: Federation;
  beforeAll(async () => {
    federation = await startFederation([
      { name: 'alpha', peerSettings: { delta: { weight: 0 }, beta: { maxContributionBytes: 1024 } } },
      { name: 'beta' }, { name: 'gamma' }, { name: 'delta' },
    ], { settings: tinySettings({ rounds: 2 }), maxInnerSteps: 8 });
    federation.run();
    await federation.finished();
  }, 180_000);
  afterAll(async () => federation?.close(), 30_000);

  it('alpha votes for neither; the majority applies both everywhere', () => {
    const byName = (name: string) => federation.clusters.find((c) => c.spec.name === name)!;
    const id = (name: string) => peerIdOf(byName(name).identity.publicKey);
    const alpha = byName('alpha');
    expect(alpha.summaries).toHaveLength(2);
    for (const [round, summary] of alpha.summaries.entries()) {
      expect(summary.rejected).toEqual(expect.arrayContaining([
        expect.objectContaining({ peerId: id('delta'), reason: 'PeerPolicy', detail: expect.stringContaining('weight 0') }),
        expect.objectContaining({ peerId: id('beta'), reason: 'PeerPolicy', detail: expect.stringContaining('above this cluster\'s limit') }),
      ]));
      // No other verdict on them at alpha: it never fetched their payloads.
      expect(summary.rejected.filter((r) => r.peerId === id('delta') || r.peerId === id('beta')).map((r) => r.reason)).toEqual(['PeerPolicy', 'PeerPolicy']);
      for (const cluster of federation.clusters) {
        const theirs = cluster.summaries[round]!;
        expect(theirs.modelHash).toBe(summary.modelHash);
        expect(theirs.accepted.map((a) => a.peerId)).toEqual(expect.arrayContaining([id('beta'), id('delta')]));
      }
    }
    // Not the partners' fault: alpha neither scored nor penalised them (a penalty is a score of 0).
    const reputations = alpha.coordinator.reputations();
    expect(reputations.find((r) => r.peerId === id('gamma'))?.scored).toBeGreaterThan(0);
    for (const name of ['beta', 'delta']) expect(reputations.find((r) => r.peerId === id(name))?.scored ?? 0).toBe(0);
  });
});
