import { describe, expect, it } from '@jest/globals';
import {
  BROWN_GENRES,
  corpusHash,
  corpusText,
  detagDocument,
  joinTokens,
  loadBrown,
  parseGenres,
} from '../../trainer/src/data/corpus.js';

const all = loadBrown();

describe('Brown corpus as running text', () => {
  it('reads all 500 documents in file order with their genre letters', () => {
    expect(all).toHaveLength(500);
    expect(all[0]!.id).toBe('ca01');
    expect(all[499]!.id).toBe('cr09');
    const ids = all.map((d) => d.id);
    expect([...ids].sort()).toEqual(ids);
    for (const d of all) expect(d.genre).toBe(d.id.charAt(1));
    expect(new Set(all.map((d) => d.genre))).toEqual(new Set(Object.keys(BROWN_GENRES)));
  });

  it('writes the first sentence of ca01 as plain English', () => {
    expect(all[0]!.text.startsWith(
      'The Fulton County Grand Jury said Friday an investigation of Atlanta\'s recent primary election ' +
        'produced "no evidence" that any irregularities took place. The jury further said',
    )).toBe(true);
    expect(all[0]!.text).toContain(
      '"Only a relative handful of such reports was received", the jury said, "considering the widespread interest',
    );
    expect(all[0]!.text).toContain('won by Mayor-nominate Ivan Allen Jr. "Only');
  });

  it('leaves no tags, no `` or \'\' quotes and no newline inside a document', () => {
    const text = corpusText(all);
    // A tag follows the word and ends the token (real text has `hr./*0F./in.`, so mind the space).
    const tagged = /\S\/(at|nn|nns|np|in|jj|vbd|vbz|vb|cc|dt|rb|cs|ppo|pps|cd|nn-tl|np\$)(?= |$)/g;
    expect(text.match(tagged) ?? []).toEqual([]);
    expect(text.includes('``')).toBe(false);
    expect(text.includes("''")).toBe(false);
    expect(text.match(/\w [,.;:?!](?= |$)/g) ?? []).toEqual([]); // not ":35.3" (a time)
    for (const d of all) expect(d.text).not.toContain('\n');
    expect(text.split('\n')).toHaveLength(500);
    expect(Buffer.byteLength(text)).toBeGreaterThan(5_000_000);
  });

  it('keeps fractions whose tag follows a slash inside the word', () => {
    expect(detagDocument('\n\n\tabout/rb 1-1/2/cd inches/nns ./.\n\n\tNext/ap ./.\n')).toBe('about 1-1/2 inches. Next.');
  });

  it('attaches punctuation, clitics and quotes to the right neighbour', () => {
    expect(joinTokens(['``', 'I', 'do', "n't", 'know', "''", ',', 'he', 'said', '(', 'twice', ')', '.'])).toBe(
      '"I don\'t know", he said (twice).',
    );
    expect(joinTokens(['a', '1/2\'\'', "''", 'bar', 'of', 'Jr.', '.'])).toBe('a 1/2" bar of Jr.');
    expect(joinTokens(['the', 'teachers', "'", 'union', 'got', '5', '%', ';', 'ok', '?'])).toBe(
      "the teachers' union got 5%; ok?",
    );
  });

  it('selects genres and keeps the corpus order', () => {
    const press = loadBrown({ genres: 'a' });
    expect(press).toHaveLength(44);
    expect(press.every((d) => d.genre === 'a')).toBe(true);
    const two = loadBrown({ genres: ['r', 'k'] });
    expect(two.map((d) => d.id)).toEqual(all.filter((d) => d.genre === 'k' || d.genre === 'r').map((d) => d.id));
    expect(corpusHash(two)).not.toBe(corpusHash(press));
    expect(corpusHash(loadBrown({ genres: 'rk' }))).toBe(corpusHash(two));
  });

  it('refuses unknown genres and a missing corpus with a clear message', () => {
    expect(() => parseGenres('az')).toThrow(/unknown genre 'z'/);
    expect(() => parseGenres('')).toThrow(/selects nothing/);
    expect(() => loadBrown({ dir: '/nonexistent/corpus' })).toThrow(/cannot read the corpus directory/);
  });
});
