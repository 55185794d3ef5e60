import { describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

// `npm start` runs this launcher from the build output (npm test builds first).
describe('npm start: the local federation', () => {
  it('authenticates two coordinator processes to each other and keeps the impostor out', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'concord-start-'));
    try {
      const json = join(dir, 'outcome.json');
      const { stdout } = await promisify(execFile)(process.execPath, ['dist/scripts/local-federation.js', '--json', json, '--timeout', '40'], { timeout: 45_000 });
      const outcome = JSON.parse(await readFile(json, 'utf8'));
      expect(outcome.clusters.alpha.greeted).toEqual(['beta']);
      expect(outcome.clusters.beta.greeted).toEqual(['alpha']);
      expect(outcome.clusters.alpha.acceptedFrom).toContain('beta');
      expect(outcome.clusters.beta.acceptedFrom).toContain('alpha');
      expect(outcome.impostor).toEqual([
        expect.objectContaining({ attempt: 'own-key', refused: true, code: 'PERMISSION_DENIED', reason: 'UnknownPeer' }),
        expect.objectContaining({ attempt: 'claimed-key', refused: true, code: 'UNAUTHENTICATED', reason: 'BadSignature' }),
      ]);
      expect(outcome.clusters.alpha.rejectedMessages).toEqual({ UnknownPeer: 1, BadSignature: 1 });
      expect(outcome.clusters.beta.rejectedMessages).toEqual({});
      expect(stdout).toMatch(/Report/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
