import { readFileSync } from 'node:fs';
import { describe, expect, it } from '@jest/globals';

// No Dockerfile linter (hadolint) can be had on these machines and no image can be built here:
// these checks hold the images to what the chart and the pods the operator makes rely on.
const root = new URL('../../', import.meta.url).pathname;
const lines = (file: string) => readFileSync(`${root}${file}`, 'utf8').split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));

describe.each(['operator/Dockerfile', 'trainer/Dockerfile'])('%s', (file) => {
  it('is multi-stage, from pinned bases, and runs as a numeric non-root user', () => {
    const from = lines(file).filter((l) => l.startsWith('FROM '));
    expect(from.length).toBeGreaterThanOrEqual(2);
    for (const line of from) expect(line).toMatch(/^FROM \S+:\d[\w.-]*( AS \w+)?$/);
    const users = lines(file).filter((l) => l.startsWith('USER '));
    expect(users.at(-1)).toMatch(/^USER [1-9]\d*:[1-9]\d*$/);
    expect(lines(file).at(-1)).toMatch(/^CMD \["node", "dist\/.+\.js"\]$/);
  });

  it('builds dist/ with the project\'s tsc and keeps no dev dependencies', () => {
    const text = lines(file).join('\n');
    expect(text).toContain('npm ci');
    expect(text).toContain('npx tsc -p tsconfig.json');
    expect(text).toContain('npm prune --omit=dev');
  });
});
