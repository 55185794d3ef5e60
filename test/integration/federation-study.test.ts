import { describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DEFAULT_ROUND_SETTINGS } from '../../operator/src/coordinator/round-settings.js';
import type { ArmResult, StudySummary } from '../../scripts/federation/study.js';
import { FEDERATION_STUDY_MS, TEARDOWN_MS, within } from '../support/deadlines.js';

// The study's runner end to end, short: one seed, three rounds, the centralised arm, the
// all-honest federation and the colluding coalition (two of six), as `npm run study -- federation`
// runs them from the build output. The full study (3 seeds × 20 rounds × every arm, over an hour
// here) is in docs/convergence.md; this checks that what it reports is measured, not assumed.
describe('npm run study -- federation', () => {
  it('runs centralised and federated arms at equal tokens from one initialisation, and measures work applied, attackers\' share and bytes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'concord-study-'));
    try {
      const { stdout } = await promisify(execFile)(process.execPath, [
        'dist/scripts/study.js', 'federation', '--seeds', '1', '--rounds', '3', '--steps', '5', '--arms', 'centralised,honest,coalition', '--out', dir,
        // Rounds end on the step budget: a window this long never cuts a loaded trainer short,
        // and costs nothing when every member takes part (a round ends once all are in).
        '--window', '60', '--grace', '10',
      ], { timeout: FEDERATION_STUDY_MS });
      const results = JSON.parse(await readFile(join(dir, 'results.json'), 'utf8')) as ArmResult[];
      const summary = JSON.parse(await readFile(join(dir, 'summary.json'), 'utf8')) as StudySummary;
      expect(results.map((r) => r.arm)).toEqual(['centralised', 'honest', 'coalition']);
      const [centralised, honest, coalition] = results as [ArmResult, ArmResult, ArmResult];
      // Equal tokens, the same starting model: the comparison is fair by construction.
      expect(centralised.honestTokens).toBe(4 * 3 * 5 * 8 * 64);
      expect(honest.honestTokens).toBe(centralised.honestTokens);
      expect(coalition.honestTokens).toBe(centralised.honestTokens);
      for (const r of results) {
        expect(r.initialLoss).toBeCloseTo(centralised.initialLoss, 4);
        expect(r.finalLoss).toBeLessThan(r.initialLoss);
        expect(r.curve).toHaveLength(3);
      }
      // Every honest contribution of every round, each counted once.
      expect(honest.honest).toMatchObject({ contributions: 4 * 3, emptyRounds: 0, agreeEveryRound: true });
      expect(coalition.honest).toMatchObject({ contributions: 4 * 3, agreeEveryRound: true });
      expect(honest.honest.minReputation).toBeGreaterThan(DEFAULT_ROUND_SETTINGS.validation.reputationFloor);
      // The coalition's two members were judged every round, and whatever was applied of them
      // stayed within the share cap.
      expect(coalition.attackers.contributions).toBe(2 * 3);
      expect(coalition.attackers.maxWeight).toBeLessThanOrEqual(DEFAULT_ROUND_SETTINGS.claims.maxShare + 1e-9);
      // Bytes: the centralised arm moves a float32 gradient per step; a federation peer, its
      // compressed payload per round to each of the others.
      expect(summary.honestVsCentralised!.bytesRatio).toBeGreaterThan(100);
      expect(coalition.bytesPerPeer).toBeGreaterThan(0);
      expect(summary.arms.find((a) => a.arm === 'coalition')!.vsFairBar!.arm).toBe('honest');
      expect(await readFile(join(dir, 'table.md'), 'utf8')).toMatch(/^\| arm \|[\s\S]*\| coalition \|/);
      expect(await readFile(join(dir, 'federation.svg'), 'utf8')).toMatch(/^<svg[\s\S]*centralised[\s\S]*coalition/);
      expect(await readFile(join(dir, 'final-loss.svg'), 'utf8')).toMatch(/^<svg[\s\S]*coalition[\s\S]*all-honest federation/);
      expect(await readFile(join(dir, 'seed-1', 'coalition', 'report.md'), 'utf8')).toMatch(/mallory and trudy colluding/);
      expect(stdout).toMatch(/honest contributions applied: \d+\/\d+/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, within(FEDERATION_STUDY_MS, TEARDOWN_MS));
});
