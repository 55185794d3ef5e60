/** @jest-environment ./test/support/ort-environment.cjs */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startFederation, tinySettings, type Federation } from '../support/federation-run.js';

// Three honest clusters run outer rounds over real gRPC, each with a real trainer: every round
// ends with the same model hash everywhere, and every contribution is applied.
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
    console.log(JSON.stringify(first!.summaries.map((s) => ({ r: s.round, acc: s.accepted, rej: s.rejected, scores: s.scores, ph: s.phaseSeconds, loss: s.loss })), (_, v) => (typeof v === 'bigint' ? Number(v) : v), 1));
  });
});
