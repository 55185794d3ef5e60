/** @jest-environment ./test/support/ort-environment.cjs */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { writeFileSync } from 'node:fs';
import { peerIdOf } from '../../operator/src/federation/identity.js';
import { decodeEvidence, verifyEquivocationEvidence } from '../../operator/src/rounds/equivocation.js';
import { ATTACK_INFO, ATTACKS, attack, coalition, type AttackName } from '../../scripts/attacks.js';
import { federationRunMs, federationStartMs, TEARDOWN_MS, within, WORKERS_MS } from '../support/deadlines.js';
import { isHonest, rejectedCounts, startFederation, tinySettings, validationLoss, type ClusterHandle, type ClusterSpec } from '../support/federation-run.js';

// The adversarial suite (issue #5): 1 malicious cluster of 4, for every attack. Each run is
// compared with a run of the three honest clusters alone, same run seed and schedule.
const ROUNDS = 4;
// Six batches a side: Gauntlet scores of a tiny model after 8 inner steps are noisy, and training
// on other data differs from honest work only by how much more it helps its own batches.
const settings = tinySettings({ rounds: ROUNDS, windowMs: 3000, graceMs: 2000, quorum: 3, validation: { batches: 6, harm: 3, help: 2, relative: 0.4, sample: undefined, reputationFloor: 0.3 } });
const MAX_STEPS = 8;
/** One run() of four clusters: start, rounds, the validation loss on a trainer thread, and closing. */
const RUN_MS = within(federationStartMs(4), federationRunMs(ROUNDS), WORKERS_MS, TEARDOWN_MS);

interface Outcome {
  honest: ClusterHandle[];
  attacker: ClusterHandle | undefined;
  attackers: ClusterHandle[];
  loss: number;
  rejected: Record<string, number>;
}

async function run(specs: ClusterSpec[]): Promise<Outcome> {
  const federation = await startFederation(specs, { settings, maxInnerSteps: MAX_STEPS });
  try {
    federation.run();
    await federation.finished();
    const honest = federation.clusters.filter((c) => isHonest(c.spec));
    const rejected: Record<string, number> = {};
    for (const cluster of honest) for (const [reason, n] of Object.entries(await rejectedCounts(cluster))) rejected[reason] = (rejected[reason] ?? 0) + n;
    const attackers = federation.clusters.filter((c) => !isHonest(c.spec));
    // An attack is beaten by a defence, never by its own mistake: no attacker's rounds threw.
    expect(attackers.map((c) => [c.spec.name, c.failure])).toEqual(attackers.map((c) => [c.spec.name, undefined]));
    return { honest, attacker: attackers[0], attackers, loss: await validationLoss(honest[0]!.coordinator.model().params), rejected };
  } finally {
    await federation.close();
  }
}

const HONEST: ClusterSpec[] = [{ name: 'alpha' }, { name: 'beta' }, { name: 'gamma' }];

describe('adversarial suite: one malicious cluster of four', () => {
  let baseline: Outcome;
  beforeAll(async () => {
    baseline = await run(HONEST);
  }, RUN_MS);

  it('the honest-only baseline agrees every round', () => {
    const [first, ...rest] = baseline.honest;
    expect(first!.summaries).toHaveLength(ROUNDS);
    for (const [i, s] of first!.summaries.entries()) for (const other of rest) expect(other.summaries[i]!.modelHash).toBe(s.modelHash);
  });

  it.each(ATTACKS.map((name) => [name]))('%s', async (name: AttackName) => {
    const outcome = await run([...HONEST, { name: 'mallory', misbehaviour: attack(name) }]);
    const attackerId = peerIdOf(outcome.attacker!.identity.publicKey);
    const [first, ...rest] = outcome.honest;
    if (process.env.DEBUG_ATTACK) writeFileSync(`${process.env.DEBUG_ATTACK}/attack-${name}.json`, JSON.stringify([...outcome.honest, outcome.attacker!].map((c) => ({ name: c.spec.name, s: c.summaries, ev: c.events.filter((e) => e.event !== 'round-done') })), (_, v) => (typeof v === 'bigint' ? Number(v) : v), 1));
    // Same model on every honest cluster after every round.
    expect(first!.summaries).toHaveLength(ROUNDS);
    for (const [i, summary] of first!.summaries.entries()) {
      for (const other of rest) expect(other.summaries[i]!.modelHash).toBe(summary.modelHash);
    }
    // Each honest cluster decided that model itself: no resync in any round (issue #19).
    for (const cluster of outcome.honest) for (const s of cluster.summaries) expect({ round: s.round, agreed: s.agreed, resynced: s.resynced }).toEqual({ round: s.round, agreed: true, resynced: false });
    // The attacker's contributions are rejected or carry no weight, for the expected reason; or,
    // for an attack whose work may be applied, its share of every round stays within the bound.
    const info = ATTACK_INFO[name];
    const applied = first!.summaries.flatMap((s) => s.accepted.filter((a) => a.peerId === attackerId && a.weight > 0));
    const detail = JSON.stringify({ rejected: outcome.rejected, applied, loss: outcome.loss, baseline: baseline.loss });
    if (info.outcome === 'rejected') {
      expect({ applied, detail }).toEqual({ applied: [], detail });
      expect(info.reasons.some((reason) => (outcome.rejected[reason] ?? 0) > 0)).toBe(true);
    } else {
      for (const s of first!.summaries) {
        const mine = s.accepted.find((a) => a.peerId === attackerId)?.weight ?? 0;
        expect(mine).toBeLessThanOrEqual(settings.claims.maxShare + 1e-9);
        // Its token claim counted at most relativeTokenCap × the largest honest claim: weight /
        // score is a contribution's counted tokens in the round's common unit (while no honest
        // share was cut to the cap, which would understate that honest claim).
        const attacker = s.accepted.find((a) => a.peerId === attackerId);
        const honest = s.accepted.filter((a) => a.peerId !== attackerId);
        const tokensOf = (a: { weight: number; scorePpm: number }) => a.weight / (a.scorePpm / 1e6);
        if (attacker !== undefined && honest.length > 0 && honest.every((a) => a.weight < settings.claims.maxShare - 1e-9)) {
          expect(tokensOf(attacker)).toBeLessThanOrEqual(settings.claims.relativeTokenCap * Math.max(...honest.map(tokensOf)) * (1 + 1e-9));
        }
      }
    }
    if (name === 'noise') {
      // Noise may help a fresh initialisation (docs/rounds.md, "Score"); once the model has
      // trained a round it does a small fraction of the honest work, or harm, and is rejected.
      for (const s of first!.summaries.slice(1)) expect({ round: s.round, applied: s.accepted.filter((a) => a.peerId === attackerId && a.weight > 0) }).toEqual({ round: s.round, applied: [] });
    }
    if (name === 'equivocate') {
      for (const cluster of outcome.honest) {
        const ban = cluster.coordinator.reputations().find((p) => p.peerId === attackerId)?.ban;
        expect(ban?.reason).toBe('Equivocation');
        expect(verifyEquivocationEvidence(decodeEvidence(ban!.evidence), outcome.attacker!.identity.publicKey)).toEqual(expect.objectContaining({ ok: true }));
      }
    }
    // The honest clusters train as well as they would alone.
    expect(Math.abs(outcome.loss - baseline.loss) / baseline.loss).toBeLessThan(0.03);
  }, RUN_MS);

  it('two colluders of five: announcements to one honest cluster only, votes for each other only, full scores', async () => {
    const together = coalition('alpha');
    const outcome = await run([...HONEST, { name: 'mallory', misbehaviour: together.member() }, { name: 'trudy', misbehaviour: together.member() }]);
    const colluders = new Set(outcome.attackers.map((c) => peerIdOf(c.identity.publicKey)));
    const [first, ...rest] = outcome.honest;
    expect(first!.summaries).toHaveLength(ROUNDS);
    for (const [i, summary] of first!.summaries.entries()) {
      // The same model on every honest cluster, each having decided it itself: no resync.
      for (const other of rest) expect(other.summaries[i]!.modelHash).toBe(summary.modelHash);
      for (const cluster of outcome.honest) expect(cluster.summaries[i]).toMatchObject({ agreed: true, resynced: false });
      for (const a of summary.accepted.filter((x) => colluders.has(x.peerId))) {
        expect(a.weight).toBeLessThanOrEqual(settings.claims.maxShare + 1e-9);
        // Score stuffing: the agreed score is never above every honest vote for it.
        expect(a.scorePpm).toBeLessThanOrEqual(Math.max(...outcome.honest.map((c) => c.summaries[i]!.votes[a.peerId] ?? 0)));
      }
    }
    // The honest clusters train as well as the three of them alone.
    expect(Math.abs(outcome.loss - baseline.loss) / baseline.loss).toBeLessThan(0.03);
  }, within(federationStartMs(5), federationRunMs(ROUNDS), WORKERS_MS, TEARDOWN_MS));

  afterAll(() => undefined);
});
