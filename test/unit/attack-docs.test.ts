import { readFileSync } from 'node:fs';
import { describe, expect, it } from '@jest/globals';
import { PROJECT_ROOT } from '../../scripts/project-root.js';
import { attackTableRows } from '../../scripts/attacks.js';

describe('docs/rounds.md', () => {
  it('lists every attack with what it exploits and what stops it, as scripts/attacks.ts says', () => {
    const doc = readFileSync(`${PROJECT_ROOT}/docs/rounds.md`, 'utf8');
    for (const row of attackTableRows()) expect(doc).toContain(row);
  });
});
