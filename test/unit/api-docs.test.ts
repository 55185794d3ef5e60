import { readFileSync } from 'node:fs';
import { describe, expect, it } from '@jest/globals';
import { apiDocs } from '../../scripts/api-docs.js';

describe('docs/api.md', () => {
  it('is what `npm run docs:api` generates from crds/ (run it after changing a CRD)', () => {
    const root = new URL('../../', import.meta.url).pathname;
    expect(readFileSync(`${root}docs/api.md`, 'utf8')).toBe(apiDocs(root));
  });
});
