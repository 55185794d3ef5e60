/** @jest-environment ./test/support/ort-environment.cjs */
import { describe, expect, it } from '@jest/globals';
import type { Misbehaviour } from '../../operator/src/coordinator/misbehaviour.js';
import { generateIdentity, peerIdOf } from '../../operator/src/federation/identity.js';
import { decodePayload, densify } from '../../trainer/src/codec/index.js';
import { attack, BIAS_SCALE, biasDirection } from '../../scripts/attacks.js';
import { federationRunMs, federationStartMs, TEARDOWN_MS, within, WORKERS_MS } from '../support/deadlines.js';
import { isHonest, startFederation, tinySettings, validationLoss, type ClusterSpec } from '../support/federation-run.js';

// Bounded drift (issue #19, point 5): an attacker that trains honestly but adds, every round, a
// push of half its update's norm along one fixed direction u passes every per-round check. Its
// pull on the model is bounded by what its contribution may weigh: per round at most its share
// of the update times its (clipped) norm — so over R rounds with the tests' outer step (SGD, lr
// 1), the model can move along u by at most Σ share × clip × norm. The test runs the same four
// clusters with the same keys twice for 20 rounds, mallory honest and mallory biased, and
// measures d = θ_biased − θ_honest along u against that bound and against chance (a random
// direction: |cos| ≈ 1/√N). docs/rounds.md, "Bounded drift", has the figures. It also measures
// whether a long-run statistic could tell the biased peer from honest ones: how alike each peer's
// updates of consecutive rounds are (cosine), as alpha saw them.
const ROUNDS = 20;
const settings = tinySettings({ rounds: ROUNDS, windowMs: 3000, graceMs: 2000, quorum: 4, validation: { batches: 6, harm: 3, help: 2, relative: 0.4, sample: undefined, reputationFloor: 0.3 } });
const NAMES = ['alpha', 'beta', 'gamma', 'mallory'];

/**
 * Alpha votes as any honest cluster (its manifest is its validation's) and keeps, per round, every
 * peer's decoded update it held: what a coordinator could compute a direction statistic from.
 */
function observer(updates: Map<string, Float32Array[]>): Misbehaviour {
  return {
    manifest: (entries, ctx) => {
      for (const commit of ctx.book.ready()) {
        const list = updates.get(commit.peerId) ?? [];
        list[Number(ctx.round)] = densify(decodePayload(commit.payload!, ctx.modelLength));
        updates.set(commit.peerId, list);
      }
      return entries;
    },
  };
}

/**
 * Per peer, the mean cosine of each of its updates with the sum of its earlier ones: how
 * persistently it pushes one way. (Consecutive updates alone share no positions: error feedback
 * empties what was just sent, so their cosine is 0 for everyone.)
 */
function consistency(updates: Map<string, Float32Array[]>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [peerId, list] of updates) {
    const cosines: number[] = [];
    let sum: Float32Array | undefined;
    for (const b of list) {
      if (b === undefined) continue;
      const a = sum;
      sum = sum === undefined ? b.slice() : sum.map((v, i) => v + b[i]!);
      if (a === undefined) continue;
      let dot = 0;
      let na = 0;
      let nb = 0;
      for (let i = 0; i < a.length; i++) {
        dot += a[i]! * b[i]!;
        na += a[i]! * a[i]!;
        nb += b[i]! * b[i]!;
      }
      if (na > 0 && nb > 0) cosines.push(dot / Math.sqrt(na * nb));
    }
    out.set(peerId, cosines.reduce((x, y) => x + y, 0) / Math.max(1, cosines.length));
  }
  return out;
}

async function run(specs: ClusterSpec[], identities: ReturnType<typeof generateIdentity>[]) {
  const federation = await startFederation(specs, { settings, maxInnerSteps: 8, identities });
  try {
    federation.run();
    await federation.finished();
    const honest = federation.clusters.filter((c) => isHonest(c.spec));
    return { params: honest[0]!.coordinator.model().params.slice(), summaries: honest[0]!.summaries, loss: await validationLoss(honest[0]!.coordinator.model().params) };
  } finally {
    await federation.close();
  }
}

describe('bounded drift: a fixed-direction bias under every per-round check', () => {
  it(`moves the model along its direction by no more than its bounded share allows over ${ROUNDS} rounds`, async () => {
    const identities = NAMES.map(() => generateIdentity());
    const mallory = peerIdOf(identities[3]!.publicKey);
    const honestRun = await run(NAMES.map((name) => ({ name })), identities);
    const seen = new Map<string, Float32Array[]>();
    const biasedRun = await run(NAMES.map((name): ClusterSpec => (name === 'mallory' ? { name, misbehaviour: attack('bias') }
      : name === 'alpha' ? { name, misbehaviour: observer(seen), honest: true } : { name })), identities);
    const alike = consistency(seen);

    const u = biasDirection(honestRun.params.length);
    let along = 0;
    let norm2 = 0;
    for (let i = 0; i < u.length; i++) {
      const d = biasedRun.params[i]! - honestRun.params[i]!;
      along += d * u[i]!;
      norm2 += d * d;
    }
    // What mallory's contributions could move the model by at most (SGD, lr 1): Σ share × clip × norm.
    const bound = biasedRun.summaries.reduce((sum, s) => {
      const a = s.accepted.find((x) => x.peerId === mallory);
      return sum + (a === undefined ? 0 : a.weight * a.clip * a.norm);
    }, 0);
    const applied = biasedRun.summaries.filter((s) => s.accepted.some((x) => x.peerId === mallory)).length;
    const cos = along / Math.sqrt(norm2);
    const names = new Map(identities.map((identity, i) => [peerIdOf(identity.publicKey), NAMES[i]!]));
    const report = {
      rounds: ROUNDS, applied, biasScale: BIAS_SCALE, along, bound, cos, chance: 1 / Math.sqrt(u.length), lossHonest: honestRun.loss, lossBiased: biasedRun.loss,
      persistence: Object.fromEntries([...alike].map(([peerId, c]) => [names.get(peerId) ?? peerId, Number(c.toFixed(3))])),
    };
    process.stdout.write(`drift: ${JSON.stringify(report)}\n`);
    expect(Math.abs(along)).toBeLessThanOrEqual(bound);
    // The honest clusters still learn: within 3% of the run where mallory is honest.
    expect(Math.abs(biasedRun.loss - honestRun.loss) / honestRun.loss).toBeLessThan(0.03);
  }, within(federationStartMs(4), federationRunMs(ROUNDS), WORKERS_MS, federationStartMs(4), federationRunMs(ROUNDS), WORKERS_MS, TEARDOWN_MS, TEARDOWN_MS));
});
