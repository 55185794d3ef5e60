import { describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { LOCAL_FEDERATION_MS, TEARDOWN_MS, within } from '../support/deadlines.js';

interface Outcome {
  clusters: Record<string, { honest: boolean; resumedAt?: number; rounds: Array<{ round: string; modelHash: string; accepted: string[]; rejected: Array<{ peer: string; reason: string }> }> }>;
  honestAgree: boolean;
  perRoundAgree: boolean[];
  complete: boolean;
  validation: { initial: number; final: number };
  bytes: { received: number; dense: number };
  bans: Array<{ by: string; peer: string; reason: string; evidence: string[] }>;
  report: string;
  metrics: string;
  impostor: Array<{ attempt: string; refused: boolean; reason: string }>;
}

// `npm start` runs this launcher from the build output (npm test builds first): four clusters as
// separate coordinator and trainer processes on loopback, one of them equivocating; beta's
// coordinator process is killed with SIGKILL while it trains round 1 (once round 1's base is in its
// checkpoint, which is written while the round trains) and started again.
describe('npm start: the local federation', () => {
  it('trains on across rounds with every honest cluster holding the same model, survives a kill -9, bans the equivocator with evidence, and keeps an impostor out', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'concord-start-'));
    try {
      const json = join(dir, 'outcome.json');
      // The launcher's own deadline first (it kills its processes and says it timed out), ours after it.
      const { stdout } = await promisify(execFile)(process.execPath, [
        'dist/scripts/local-federation.js', '--rounds', '4', '--window', '6', '--grace', '4', '--kill', 'beta@1', '--out', join(dir, 'report'), '--json', json,
        '--timeout', String(Math.ceil(LOCAL_FEDERATION_MS / 1000)),
      ], { timeout: LOCAL_FEDERATION_MS + TEARDOWN_MS });
      const outcome = JSON.parse(await readFile(json, 'utf8')) as Outcome;
      expect(outcome.complete).toBe(true);
      expect(outcome.perRoundAgree).toEqual([true, true, true, true]);
      // kill -9 mid-round: beta's coordinator resumed from the checkpoint it wrote after round 0
      // (its restart is quick enough to rejoin round 1 itself, or it resyncs for the next), and
      // ran to the end holding the others' model in every round it ran.
      expect(outcome.clusters.beta!.resumedAt).toBe(1);
      for (const round of outcome.clusters.beta!.rounds) {
        expect(round.modelHash).toBe(outcome.clusters.alpha!.rounds.find((r) => r.round === round.round)!.modelHash);
      }
      expect(Number(outcome.clusters.beta!.rounds.at(-1)!.round)).toBe(3);
      expect(outcome.honestAgree).toBe(true);
      const honest = Object.entries(outcome.clusters).filter(([, c]) => c.honest);
      expect(honest.map(([name]) => name)).toEqual(['alpha', 'beta', 'gamma']);
      for (const [, cluster] of honest) {
        for (const round of cluster.rounds) expect(round.accepted).not.toContain('mallory');
        expect(cluster.rounds.some((r) => r.rejected.some((x) => x.peer === 'mallory' && x.reason === 'Equivocation'))).toBe(true);
      }
      expect(outcome.bans.map((b) => [b.by, b.peer, b.reason, b.evidence.length])).toEqual([
        ['alpha', 'mallory', 'Equivocation', 2], ['beta', 'mallory', 'Equivocation', 2], ['gamma', 'mallory', 'Equivocation', 2],
      ]);
      // An impostor knowing every public fact of the run is refused both ways, with the reason.
      expect(outcome.impostor).toEqual([
        { attempt: 'own-key', refused: true, reason: 'UnknownPeer' },
        { attempt: 'claimed-key', refused: true, reason: 'BadSignature' },
      ]);
      // Real training happened, and the contributions moved compressed.
      expect(outcome.validation.final).toBeLessThan(outcome.validation.initial);
      expect(outcome.bytes.dense / outcome.bytes.received).toBeGreaterThan(100);
      expect(await readFile(join(dir, 'report', 'loss.svg'), 'utf8')).toMatch(/^<svg[\s\S]*alpha[\s\S]*mallory \(attacker\)/);
      expect(await readFile(outcome.report, 'utf8')).toMatch(/same model after every round: \*\*yes\*\*/);
      expect(stdout).toMatch(/Report: .*report\.md/);
      expect(stdout).toMatch(/honest work applied: \d+ of \d+ contributions \(\d+\.\d%\), \d+ rounds applying nothing, lowest reputation of an honest peer 0\.\d\d/);
      // Each coordinator's /metrics, as scraped before it stopped: the round metrics with values.
      const scraped = await readFile(join(outcome.metrics, 'alpha.prom'), 'utf8');
      expect(scraped).toMatch(/^concord_rounds_total 4$/m);
      expect(scraped).toMatch(/^concord_contributions_rejected_total\{reason="Equivocation"\} [1-9]/m);
      expect(scraped).toMatch(/^concord_peer_reputation\{peer="mallory"\} 0\.\d+/m);
      expect(scraped).toMatch(/^concord_model_hash_agreement 1$/m);
      for (const name of ['concord_round_phase_duration_seconds_bucket', 'concord_payload_bytes_total', 'concord_compression_ratio', 'concord_loss', 'concord_tokens_total']) expect(scraped).toContain(name);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, within(LOCAL_FEDERATION_MS, TEARDOWN_MS));
});
