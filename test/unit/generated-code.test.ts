import { describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';

const root = process.cwd();
const bin = join(root, 'node_modules', '.bin');

async function filesUnder(dir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    files.set(relative(dir, path), await readFile(path, 'utf8'));
  }
  return files;
}

describe('generated protobuf code', () => {
  it('proto/gen/ is exactly what `npm run generate` makes from proto/ (run it after editing a .proto)', async () => {
    const out = await mkdtemp(join(tmpdir(), 'concord-gen-'));
    try {
      await promisify(execFile)(join(bin, 'buf'), ['generate', '--output', out], {
        cwd: root, env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}` },
      });
      const fresh = await filesUnder(join(out, 'proto', 'gen'));
      const committed = await filesUnder(join(root, 'proto', 'gen'));
      expect([...committed.keys()].sort()).toEqual([...fresh.keys()].sort());
      for (const [path, text] of fresh) expect({ path, text: committed.get(path) }).toEqual({ path, text });
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });

  it('the protocol passes buf lint', async () => {
    await expect(promisify(execFile)(join(bin, 'buf'), ['lint'], { cwd: root })).resolves.toBeDefined();
  });
});
