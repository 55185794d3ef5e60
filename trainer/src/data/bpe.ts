// Byte-level BPE, trained deterministically on the corpus.
//
// Ids: 0…255 are the raw bytes, 256 + i is merge i (in the order learned), and the last id of the
// vocabulary, vocabSize − 1, is the end-of-text token (EOT) that separates documents in the packed
// token arrays. So a tokenizer of vocabulary V learns at most V − 257 merges and its ids fill
// [0, V) exactly: V is the model's embedding size. If the text runs out of pairs first, the ids
// between the last merge and EOT stay unused.
//
// Training (GPT-2 style): text is split into pre-tokens by PRETOKEN_PATTERN (a word with its
// leading space, a number, a run of punctuation, whitespace); merges never cross a pre-token
// boundary. Unique pre-tokens are counted once, then each step merges the most frequent adjacent
// pair, ties broken by the smallest (left id, right id). Pair counts are kept up to date
// incrementally: only the words that contain the merged pair are rewritten, and a max-heap with
// lazy deletion finds the next best pair. Same text and vocabulary → same merges, on any machine.
//
// Encoding applies the merges to each pre-token lowest rank first (the same result as replaying
// them in training order) and caches the ids of every pre-token seen. Every UTF-8 string
// round-trips exactly: any byte is a token, so nothing is ever unknown. (A JS string with a lone
// surrogate is not valid UTF-16; TextEncoder writes U+FFFD for it, as everywhere in Node.)
//
// Files: `toJSON()` = { format, version, vocabSize, eot, pattern, merges: [[left, right], …] }.
// `loadOrTrainBpe` caches that JSON under `.cache/concord/` (or a given directory), keyed by a
// SHA-256 of (algorithm version, vocabulary size, training text).

import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** Bumped whenever training or encoding would give different ids for the same input. */
export const BPE_ALGORITHM_VERSION = 1;
export const BPE_FORMAT = 'concord-bpe';
/** GPT-2's pre-tokenizer: contractions, words with one leading space, numbers, punctuation
 * runs, whitespace (a run before a word leaves its last space to the word). */
export const PRETOKEN_PATTERN =
  "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
/** What `decode` writes for the end-of-text token. `encode` never produces it from text. */
export const EOT_TEXT = '<|endoftext|>';
export const MIN_VOCAB_SIZE = 257;
export const MAX_VOCAB_SIZE = 1 << 20;

/** Pair (left, right) packed into one number: left · 2^20 + right (< 2^40, exact in a double).
 * Packed keys order like the pairs themselves: lexicographically by left, then right. */
const PAIR = MAX_VOCAB_SIZE;

export interface BpeJson {
  format: typeof BPE_FORMAT;
  version: number;
  vocabSize: number;
  eot: number;
  pattern: string;
  merges: [number, number][];
}

export interface TrainBpeOptions {
  /** Total ids including the 256 bytes and the end-of-text token. */
  vocabSize: number;
}

export class BpeTokenizer {
  readonly vocabSize: number;
  /** End-of-text id: vocabSize − 1. */
  readonly eot: number;
  readonly merges: readonly (readonly [number, number])[];
  /** Packed pair → merge rank. */
  private readonly ranks = new Map<number, number>();
  /** Bytes of each id below 256 + merges.length. */
  private readonly bytes: Uint8Array[] = [];
  private readonly pattern = new RegExp(PRETOKEN_PATTERN, 'gu');
  /** Pre-token → ids; cleared when it grows past CACHE_LIMIT entries. */
  private readonly cache = new Map<string, Int32Array>();

  constructor(vocabSize: number, merges: readonly (readonly [number, number])[]) {
    checkVocabSize(vocabSize);
    if (merges.length > vocabSize - MIN_VOCAB_SIZE) {
      throw new Error(`bpe: ${merges.length} merges do not fit a vocabulary of ${vocabSize}`);
    }
    this.vocabSize = vocabSize;
    this.eot = vocabSize - 1;
    for (let b = 0; b < 256; b++) this.bytes.push(Uint8Array.of(b));
    const copy: (readonly [number, number])[] = [];
    merges.forEach(([left, right], i) => {
      const id = 256 + i;
      for (const part of [left, right]) {
        if (!Number.isInteger(part) || part < 0 || part >= id) {
          throw new Error(`bpe: merge ${i} refers to id ${part}, which is not an earlier token`);
        }
      }
      const key = left * PAIR + right;
      if (this.ranks.has(key)) throw new Error(`bpe: merge ${i} (${left}, ${right}) is a duplicate`);
      this.ranks.set(key, i);
      const a = this.bytes[left]!;
      const b = this.bytes[right]!;
      const joined = new Uint8Array(a.length + b.length);
      joined.set(a);
      joined.set(b, a.length);
      this.bytes.push(joined);
      copy.push(Object.freeze([left, right] as const));
    });
    this.merges = Object.freeze(copy);
  }

  /** Learns merges on `text` (one string, or documents that are pre-tokenised separately). */
  static train(text: string | readonly string[], options: TrainBpeOptions): BpeTokenizer {
    checkVocabSize(options.vocabSize);
    const counts = countPretokens(typeof text === 'string' ? [text] : text);
    return new BpeTokenizer(options.vocabSize, learnMerges(counts, options.vocabSize - MIN_VOCAB_SIZE));
  }

  static fromJSON(json: unknown): BpeTokenizer {
    const j = json as Partial<BpeJson> | null;
    if (j === null || typeof j !== 'object' || j.format !== BPE_FORMAT) {
      throw new Error(`bpe: not a ${BPE_FORMAT} file`);
    }
    if (j.version !== BPE_ALGORITHM_VERSION) {
      throw new Error(`bpe: version ${String(j.version)} is not the supported ${BPE_ALGORITHM_VERSION}`);
    }
    if (j.pattern !== PRETOKEN_PATTERN) throw new Error('bpe: the file uses a different pre-token pattern');
    if (typeof j.vocabSize !== 'number') throw new Error('bpe: vocabSize missing');
    if (j.eot !== j.vocabSize - 1) throw new Error('bpe: eot must be vocabSize - 1');
    if (!Array.isArray(j.merges) || !j.merges.every((m) => Array.isArray(m) && m.length === 2)) {
      throw new Error('bpe: merges must be a list of [left, right] pairs');
    }
    return new BpeTokenizer(j.vocabSize, j.merges);
  }

  toJSON(): BpeJson {
    return {
      format: BPE_FORMAT,
      version: BPE_ALGORITHM_VERSION,
      vocabSize: this.vocabSize,
      eot: this.eot,
      pattern: PRETOKEN_PATTERN,
      merges: this.merges.map(([a, b]) => [a, b]),
    };
  }

  /** SHA-256 (hex) of the canonical JSON: two tokenizers with the same hash encode alike. */
  hash(): string {
    return createHash('sha256').update(JSON.stringify(this.toJSON())).digest('hex');
  }

  /** Bytes that `id` stands for (empty for EOT). */
  tokenBytes(id: number): Uint8Array {
    if (id === this.eot) return new Uint8Array(0);
    const b = this.bytes[id];
    if (b === undefined) throw new Error(`bpe: id ${id} is not in the vocabulary`);
    return b;
  }

  /** Token ids of `text` (never the EOT id). */
  encode(text: string): Int32Array {
    const out = new Int32Array(Buffer.byteLength(text, 'utf8'));
    let n = 0;
    const re = this.pattern;
    re.lastIndex = 0;
    let covered = 0;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      const piece = m[0];
      covered += piece.length;
      let ids = this.cache.get(piece);
      if (ids === undefined) {
        ids = this.encodeBytes(Buffer.from(piece, 'utf8'));
        if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
        this.cache.set(piece, ids);
      }
      out.set(ids, n);
      n += ids.length;
    }
    if (covered !== text.length) throw new Error('bpe: pre-tokenizer skipped part of the text'); // cannot happen
    return out.slice(0, n);
  }

  /** Text of `ids`; EOT is written as EOT_TEXT. */
  decode(ids: ArrayLike<number>): string {
    let total = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      total += id === this.eot ? EOT_BYTES.length : this.tokenBytes(id).length;
    }
    const buf = new Uint8Array(total);
    let at = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      const b = id === this.eot ? EOT_BYTES : this.bytes[id]!;
      buf.set(b, at);
      at += b.length;
    }
    return DECODER.decode(buf);
  }

  /**
   * Merges the bytes of ONE pre-token, lowest merge rank first (leftmost first among equals).
   * `linear` rescans the sequence once per merge applied: fastest for words. `heap` keeps the
   * candidate pairs in a heap: O(n log n), used for pieces longer than LONG_PIECE bytes so that a
   * pathological input (a megabyte of letters without a space) cannot take quadratic time.
   * Both give the same ids; `auto` picks by length.
   */
  encodeBytes(bytes: Uint8Array, method: 'auto' | 'linear' | 'heap' = 'auto'): Int32Array {
    if (method === 'heap' || (method === 'auto' && bytes.length > LONG_PIECE)) return this.mergeHeap(bytes);
    return this.mergeLinear(bytes);
  }

  private mergeLinear(bytes: Uint8Array): Int32Array {
    const s = Array.from(bytes);
    for (;;) {
      let best = -1;
      for (let i = 0; i + 1 < s.length; i++) {
        const r = this.ranks.get(s[i]! * PAIR + s[i + 1]!);
        if (r !== undefined && (best < 0 || r < best)) best = r;
      }
      if (best < 0) break;
      const [left, right] = this.merges[best]!;
      const id = 256 + best;
      let w = 0;
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === left && s[i + 1] === right) {
          s[w++] = id;
          i++;
        } else {
          s[w++] = s[i]!;
        }
      }
      s.length = w;
    }
    return Int32Array.from(s);
  }

  private mergeHeap(bytes: Uint8Array): Int32Array {
    const n = bytes.length;
    const sym = Int32Array.from(bytes);
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    const alive = new Uint8Array(n).fill(1);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    // Candidates (rank, left position) packed as rank · n + position; the heap pops the smallest
    // key among equal counts, i.e. the lowest rank, then the leftmost.
    const heap = new PairHeap();
    const rankAt = (i: number): number | undefined => {
      const j = next[i]!;
      return j < 0 ? undefined : this.ranks.get(sym[i]! * PAIR + sym[j]!);
    };
    const push = (i: number): void => {
      const r = rankAt(i);
      if (r !== undefined) heap.push(0, r * n + i);
    };
    for (let i = 0; i + 1 < n; i++) push(i);
    while (heap.size > 0) {
      const key = heap.pop();
      const r = floor(key / n);
      const i = key - r * n;
      if (alive[i] === 0 || rankAt(i) !== r) continue; // stale
      const j = next[i]!;
      sym[i] = 256 + r;
      alive[j] = 0;
      const k = next[j]!;
      next[i] = k;
      if (k >= 0) prev[k] = i;
      if (prev[i]! >= 0) push(prev[i]!);
      push(i);
    }
    const out: number[] = [];
    for (let i = 0; i >= 0 && i < n; i = next[i]!) out.push(sym[i]!);
    return Int32Array.from(out);
  }
}

/** Pieces longer than this many bytes are merged with the heap (see encodeBytes). */
const LONG_PIECE = 128;

const CACHE_LIMIT = 1 << 18;
/** Bound once: inside jest's vm context each read of the global Math is slow. */
const { floor } = Math;
const DECODER = new TextDecoder('utf-8');
const EOT_BYTES = new TextEncoder().encode(EOT_TEXT);

function checkVocabSize(vocabSize: number): void {
  if (!Number.isInteger(vocabSize) || vocabSize < MIN_VOCAB_SIZE || vocabSize > MAX_VOCAB_SIZE) {
    throw new Error(`bpe: vocabSize must be an integer in [${MIN_VOCAB_SIZE}, ${MAX_VOCAB_SIZE}], got ${vocabSize}`);
  }
}

/** Unique pre-tokens with their counts, in first-seen order. */
export function countPretokens(texts: Iterable<string>): Map<string, number> {
  const counts = new Map<string, number>();
  const re = new RegExp(PRETOKEN_PATTERN, 'gu');
  for (const text of texts) {
    re.lastIndex = 0;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      const piece = m[0];
      counts.set(piece, (counts.get(piece) ?? 0) + 1);
    }
  }
  return counts;
}

/** Splits text into pre-tokens (for tests and inspection). */
export function pretokenize(text: string): string[] {
  return text.match(new RegExp(PRETOKEN_PATTERN, 'gu')) ?? [];
}

/**
 * Learns up to `maxMerges` merges from pre-token counts. The result does not depend on the
 * order of `counts`: every choice is by (count desc, left asc, right asc).
 */
export function learnMerges(counts: ReadonlyMap<string, number>, maxMerges: number): [number, number][] {
  // Words as byte sequences, rewritten in place as merges apply.
  const words: Int32Array[] = [];
  const lengths: number[] = [];
  const freq: number[] = [];
  for (const [piece, count] of counts) {
    const bytes = Buffer.from(piece, 'utf8');
    if (bytes.length < 2) continue; // a single byte has no pair
    words.push(Int32Array.from(bytes));
    lengths.push(bytes.length);
    freq.push(count);
  }

  const pairCount = new Map<number, number>();
  /** Pair → indices of words that contained it when it was last created (may hold stale ones). */
  const where = new Map<number, number[]>();
  for (let w = 0; w < words.length; w++) {
    const s = words[w]!;
    const f = freq[w]!;
    for (let i = 0; i + 1 < s.length; i++) {
      const key = s[i]! * PAIR + s[i + 1]!;
      pairCount.set(key, (pairCount.get(key) ?? 0) + f);
      addWhere(where, key, w);
    }
  }

  const heap = new PairHeap();
  for (const [key, count] of pairCount) heap.push(count, key);

  const merges: [number, number][] = [];
  const stamp = new Int32Array(words.length).fill(-1);
  const delta = new Map<number, number>();
  while (merges.length < maxMerges) {
    // Best pair whose heap entry is current.
    let key = -1;
    while (heap.size > 0) {
      const count = heap.topCount();
      const k = heap.pop();
      if (pairCount.get(k) === count) {
        key = k;
        break;
      }
    }
    if (key < 0) break; // no pairs left
    const left = floor(key / PAIR);
    const right = key - left * PAIR;
    const id = 256 + merges.length;
    merges.push([left, right]);

    delta.clear();
    for (const w of where.get(key) ?? []) {
      if (stamp[w] === id) continue;
      stamp[w] = id;
      const s = words[w]!;
      const n = lengths[w]!;
      let found = false;
      for (let i = 0; i + 1 < n; i++) {
        if (s[i] === left && s[i + 1] === right) {
          found = true;
          break;
        }
      }
      if (!found) continue; // stale entry: an earlier merge changed this word
      const f = freq[w]!;
      for (let i = 0; i + 1 < n; i++) {
        const k = s[i]! * PAIR + s[i + 1]!;
        delta.set(k, (delta.get(k) ?? 0) - f);
      }
      let m = 0;
      for (let i = 0; i < n; i++) {
        if (i + 1 < n && s[i] === left && s[i + 1] === right) {
          s[m++] = id;
          i++;
        } else {
          s[m++] = s[i]!;
        }
      }
      lengths[w] = m;
      for (let i = 0; i + 1 < m; i++) {
        const k = s[i]! * PAIR + s[i + 1]!;
        delta.set(k, (delta.get(k) ?? 0) + f);
        if (s[i] === id || s[i + 1] === id) addWhere(where, k, w);
      }
    }
    where.delete(key);
    for (const [k, d] of delta) {
      if (d === 0) continue;
      const c = (pairCount.get(k) ?? 0) + d;
      if (c > 0) {
        pairCount.set(k, c);
        heap.push(c, k);
      } else {
        pairCount.delete(k);
        where.delete(k);
      }
    }
    if (pairCount.has(key)) throw new Error('bpe: internal error: merged pair still counted');
  }
  return merges;
}

function addWhere(where: Map<number, number[]>, key: number, w: number): void {
  const list = where.get(key);
  if (list === undefined) where.set(key, [w]);
  else if (list[list.length - 1] !== w) list.push(w);
}

/** Max-heap of (count, packed pair): larger count first, then smaller pair. */
class PairHeap {
  private counts: number[] = [];
  private keys: number[] = [];

  get size(): number {
    return this.keys.length;
  }

  topCount(): number {
    return this.counts[0]!;
  }

  push(count: number, key: number): void {
    const c = this.counts;
    const k = this.keys;
    let i = k.length;
    c.push(count);
    k.push(key);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!better(count, key, c[p]!, k[p]!)) break;
      c[i] = c[p]!;
      k[i] = k[p]!;
      i = p;
    }
    c[i] = count;
    k[i] = key;
  }

  /** Removes the best entry and returns its key. */
  pop(): number {
    const c = this.counts;
    const k = this.keys;
    const top = k[0]!;
    const lastCount = c.pop()!;
    const lastKey = k.pop()!;
    const n = k.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        let child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && better(c[child + 1]!, k[child + 1]!, c[child]!, k[child]!)) child++;
        if (!better(c[child]!, k[child]!, lastCount, lastKey)) break;
        c[i] = c[child]!;
        k[i] = k[child]!;
        i = child;
      }
      c[i] = lastCount;
      k[i] = lastKey;
    }
    return top;
  }
}

function better(countA: number, keyA: number, countB: number, keyB: number): boolean {
  return countA > countB || (countA === countB && keyA < keyB);
}

// ---- cache -------------------------------------------------------------------------------

export interface BpeCacheOptions extends TrainBpeOptions {
  /** Directory for cached files; default `$CONCORD_CACHE_DIR` or `.cache/concord` under the cwd. */
  cacheDir?: string;
  /** false: neither read nor write the cache. */
  cache?: boolean;
}

export interface LoadedBpe {
  tokenizer: BpeTokenizer;
  /** True when it came from the cache file. */
  cached: boolean;
  /** Cache file (written or read), undefined when caching is off. */
  path: string | undefined;
  /** Seconds spent training (0 when cached). */
  trainSeconds: number;
}

/** The default cache directory: `$CONCORD_CACHE_DIR`, else `.cache/concord` under the cwd. */
export function defaultCacheDir(): string {
  return resolve(process.env['CONCORD_CACHE_DIR'] ?? join(process.cwd(), '.cache', 'concord'));
}

/** Cache key of a BPE trained on `text` with `vocabSize`: SHA-256 hex. */
export function bpeCacheKey(text: string | readonly string[], vocabSize: number): string {
  const h = createHash('sha256');
  h.update(`${BPE_FORMAT}\0v${BPE_ALGORITHM_VERSION}\0${PRETOKEN_PATTERN}\0${vocabSize}\0`);
  if (typeof text === 'string') h.update(`1\0${text}`);
  else {
    h.update(`${text.length}\0`);
    for (const t of text) h.update(`${Buffer.byteLength(t, 'utf8')}\0${t}`);
  }
  return h.digest('hex');
}

/**
 * Loads the tokenizer for (text, vocabSize) from the cache, or trains and caches it. `text` may
 * be a function, called only when training is needed, together with `options.key`: a cache key
 * the caller derived from the text's source (e.g. bpeCacheKey over the raw files' hash), so a
 * warm cache never builds the text.
 */
export function loadOrTrainBpe(
  text: string | readonly string[] | (() => string | readonly string[]),
  options: BpeCacheOptions & { key?: string },
): LoadedBpe {
  checkVocabSize(options.vocabSize);
  const texts = () => (typeof text === 'function' ? text() : text);
  if (typeof text === 'function' && options.key === undefined) throw new Error('loadOrTrainBpe: text given as a function needs options.key');
  if (options.cache === false) {
    const t0 = performance.now();
    const tokenizer = BpeTokenizer.train(texts(), options);
    return { tokenizer, cached: false, path: undefined, trainSeconds: (performance.now() - t0) / 1000 };
  }
  const key = options.key ?? bpeCacheKey(texts(), options.vocabSize);
  const dir = options.cacheDir ?? defaultCacheDir();
  const path = join(dir, `bpe-v${BPE_ALGORITHM_VERSION}-${options.vocabSize}-${key.slice(0, 16)}.json`);
  try {
    const file = JSON.parse(readFileSync(path, 'utf8')) as { key?: string; tokenizer?: unknown };
    if (file.key === key) return { tokenizer: BpeTokenizer.fromJSON(file.tokenizer), cached: true, path, trainSeconds: 0 };
  } catch {
    // absent or unreadable: train below and overwrite
  }
  const t0 = performance.now();
  const tokenizer = BpeTokenizer.train(texts(), options);
  const trainSeconds = (performance.now() - t0) / 1000;
  writeFileAtomic(path, JSON.stringify({ key, tokenizer: tokenizer.toJSON() }) + '\n');
  return { tokenizer, cached: false, path, trainSeconds };
}

/** Writes via a temporary file and rename, so a reader never sees half a file. */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  mkdirSync(resolve(path, '..'), { recursive: true });
  const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}
