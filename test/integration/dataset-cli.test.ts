import { describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadBrown } from '../../trainer/src/data/corpus.js';
import { verifyDataset } from '../../trainer/src/data/shards.js';
import { COMMAND_MS, within } from '../support/deadlines.js';

const run = (args: string[], env: NodeJS.ProcessEnv) => promisify(execFile)(process.execPath, ['dist/trainer/src/cli/prepare.js', ...args], { timeout: COMMAND_MS, env });

describe('npm run dataset', () => {
  it('prepares a JSONL file into verified shards, prints the dataset hash, and refuses to overwrite', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'concord-dataset-'));
    try {
      const env = { ...process.env, CONCORD_CACHE_DIR: join(dir, 'cache') };
      await writeFile(join(dir, 'news.jsonl'), loadBrown({ genres: 'a' }).slice(0, 30).map((d) => JSON.stringify({ body: d.text })).join('\n'));
      const args = ['--input', join(dir, 'news.jsonl'), '--format', 'jsonl', '--text-field', 'body', '--vocab', '512', '--out', join(dir, 'out')];
      const { stdout } = await run(args, env);
      const manifest = await verifyDataset(join(dir, 'out'));
      expect(stdout).toContain(`dataset hash ${manifest.hash}`);
      expect(manifest.documents).toEqual({ train: 28, validation: 2 });
      expect(JSON.parse(await readFile(join(dir, 'out', 'tokenizer.json'), 'utf8'))).toMatchObject({ model: { type: 'BPE' }, added_tokens: [{ id: 511, content: '<|endoftext|>' }] });
      await expect(run(args, env)).rejects.toMatchObject({ code: 1, stderr: expect.stringMatching(/out: exists and is not empty/) });
      await expect(run([...args.slice(0, -1), join(dir, 'other'), '--vocab', '10'], env)).rejects.toMatchObject({ code: 2, stderr: expect.stringMatching(/--vocab must be an integer from 257/) });
      await expect(run(['--input', dir, '--format', 'tokens', '--out', join(dir, 'other')], env)).rejects.toMatchObject({ code: 2, stderr: expect.stringMatching(/--format tokens needs --tokenizer/) });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, within(COMMAND_MS, COMMAND_MS));
});
