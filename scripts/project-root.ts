// The checkout's root, for scripts, benchmarks and test helpers that read its files (crds/, the
// chart, scripts/kube/): they run from their sources under jest and from dist/ once built, so the
// root is found by walking up to the directory that holds crds/.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function findRoot(from: string): string {
  let dir = from;
  while (!existsSync(join(dir, 'crds', 'concord.dev_trainingruns.yaml')) || !existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`no Concord checkout above ${from}`);
    dir = up;
  }
  return dir;
}

export const PROJECT_ROOT = findRoot(dirname(fileURLToPath(import.meta.url)));
