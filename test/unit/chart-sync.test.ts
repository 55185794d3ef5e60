import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { CHART, crdTemplates, readmeWithTable, valuesRows } from '../../scripts/chart.js';

const root = new URL('../../', import.meta.url).pathname;

describe('what the chart copies is in step with its source (run `npm run chart:sync` after a change)', () => {
  it('templates/crd/ holds the CRDs of crds/', () => {
    for (const [file, content] of crdTemplates(root)) expect(readFileSync(join(root, CHART, 'templates/crd', file), 'utf8')).toBe(content);
  });

  it('the README values table is generated from values.yaml, and every value is documented', () => {
    const rows = valuesRows(readFileSync(join(root, CHART, 'values.yaml'), 'utf8'));
    expect(rows.every((row) => row.description.length > 10)).toBe(true);
    const readme = readFileSync(join(root, CHART, 'README.md'), 'utf8');
    expect(readme).toBe(readmeWithTable(readme, rows));
  });

  it('refuses a value without a "# --" comment', () => {
    expect(() => valuesRows('# -- documented\na: 1\nb: 2\n')).toThrow(/values.yaml: b has no "# --" comment/);
  });
});
