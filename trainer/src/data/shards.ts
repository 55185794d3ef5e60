// A prepared dataset on disk: token shards and the manifest that pins them.
//
// Shards are flat little-endian arrays of token ids, uint16 when the vocabulary fits 16 bits and
// uint32 otherwise, with no header: the layout nanoGPT's and Megatron-style pipelines write, so
// their shards can be listed in a manifest as they are. Each document's tokens are followed by
// the end-of-text token, documents one after the other; a split's token stream is cut into
// shards of a fixed number of tokens, so a document may continue into the next shard.
//
// manifest.json names every shard with its token count and SHA-256, the tokenizer's hash and
// vocabulary, and the documents in each split. The dataset hash is the SHA-256 of the manifest's
// canonical JSON without its `hash` field: two owners with the same hash hold the same bytes, and
// a shard changed by one byte no longer matches its entry.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';

export const DATASET_FORMAT = 'concord-dataset';
export const DATASET_VERSION = 1;
export const MANIFEST_FILE = 'manifest.json';
/** A prepared dataset's tokenizer, beside the manifest: Hugging Face's format (the manifest pins its hash). */
export const TOKENIZER_FILE = 'tokenizer.json';
export const TOKENIZER_CONFIG_FILE = 'tokenizer_config.json';

export type TokenDtype = 'uint16' | 'uint32';
export type Split = 'train' | 'validation';

export interface ShardEntry {
  /** File name, relative to the dataset directory. */
  name: string;
  tokens: number;
  sha256: string;
}

export interface DatasetManifest {
  format: typeof DATASET_FORMAT;
  version: typeof DATASET_VERSION;
  dtype: TokenDtype;
  tokenizer: { hash: string; vocabSize: number; eot: number };
  documents: Record<Split, number>;
  shards: Record<Split, ShardEntry[]>;
  /** SHA-256 of the rest of the manifest (datasetHash). */
  hash: string;
}

/** A problem with a dataset, naming the file or field at fault. */
export class DatasetError extends Error {
  constructor(readonly where: string, reason: string) {
    super(`${where}: ${reason}`);
    this.name = 'DatasetError';
  }
}

export function bytesPerToken(dtype: TokenDtype): number {
  return dtype === 'uint16' ? 2 : 4;
}

/** The narrowest shard type that holds every id of a `vocabSize` vocabulary. */
export function dtypeFor(vocabSize: number): TokenDtype {
  if (!Number.isInteger(vocabSize) || vocabSize < 2) throw new DatasetError('vocabSize', `must be an integer of at least 2, got ${vocabSize}`);
  if (vocabSize <= 1 << 16) return 'uint16';
  if (vocabSize <= 2 ** 32) return 'uint32';
  throw new DatasetError('vocabSize', `${vocabSize} does not fit the largest shard type (uint32)`);
}

/** Checks that `dtype` holds every id of the vocabulary. */
export function checkDtype(dtype: TokenDtype, vocabSize: number): void {
  if (dtype === 'uint16' && vocabSize > 1 << 16) throw new DatasetError('dtype', `uint16 holds ids below 65536, but the vocabulary has ${vocabSize}: use uint32`);
}

/** The dataset hash: SHA-256 of the manifest's canonical JSON (keys sorted, `hash` left out). */
export function datasetHash(manifest: Omit<DatasetManifest, 'hash'> | DatasetManifest): string {
  const { hash: _ignored, ...rest } = manifest as DatasetManifest;
  return createHash('sha256').update(canonicalJson(rest)).digest('hex');
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Reads and checks `dir/manifest.json` (fields and hash); the shards are checked by verifyDataset. */
export async function readManifest(dir: string): Promise<DatasetManifest> {
  const file = join(dir, MANIFEST_FILE);
  const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new DatasetError(file, error.code === 'ENOENT' ? 'no manifest: prepare the dataset first' : String(error));
  });
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text) as Record<string, unknown>;
  } catch (error) {
    throw new DatasetError(file, `not JSON (${(error as Error).message})`);
  }
  const field = (name: string) => `${file}: ${name}`;
  if (raw.format !== DATASET_FORMAT) throw new DatasetError(field('format'), `must be "${DATASET_FORMAT}"`);
  if (raw.version !== DATASET_VERSION) throw new DatasetError(field('version'), `must be ${DATASET_VERSION}, got ${String(raw.version)}`);
  if (raw.dtype !== 'uint16' && raw.dtype !== 'uint32') throw new DatasetError(field('dtype'), 'must be uint16 or uint32');
  const manifest = raw as unknown as DatasetManifest;
  checkDtype(manifest.dtype, manifest.tokenizer?.vocabSize);
  for (const split of ['train', 'validation'] as const) {
    const shards = manifest.shards?.[split];
    if (!Array.isArray(shards)) throw new DatasetError(field(`shards.${split}`), 'must be a list');
    for (const [i, s] of shards.entries()) {
      if (typeof s.name !== 'string' || s.name.includes('/') || s.name.startsWith('.')) throw new DatasetError(field(`shards.${split}[${i}].name`), 'must be a file name in the dataset directory');
      if (!Number.isSafeInteger(s.tokens) || s.tokens < 1) throw new DatasetError(field(`shards.${split}[${i}].tokens`), 'must be a positive integer');
      if (typeof s.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(s.sha256)) throw new DatasetError(field(`shards.${split}[${i}].sha256`), 'must be 64 hex digits');
    }
  }
  if (manifest.shards.train.length === 0) throw new DatasetError(field('shards.train'), 'the dataset has no training tokens');
  if (manifest.hash !== datasetHash(manifest)) throw new DatasetError(field('hash'), `does not match the manifest's contents (${datasetHash(manifest).slice(0, 16)}…): the manifest was edited`);
  return manifest;
}

/** SHA-256 and size of a file, streamed (a shard may be larger than memory). */
export async function fileDigest(path: string): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), bytes };
}

/**
 * Checks every shard against the manifest: present, the right size, the same SHA-256. The error
 * names the first shard that differs. Returns the manifest.
 */
export async function verifyDataset(dir: string, onShard?: (done: number, total: number) => void): Promise<DatasetManifest> {
  const manifest = await readManifest(dir);
  const all = [...manifest.shards.train, ...manifest.shards.validation];
  for (const [i, shard] of all.entries()) {
    const path = join(dir, shard.name);
    const size = await stat(path).then((s) => s.size, () => undefined);
    if (size === undefined) throw new DatasetError(path, 'missing: the dataset on this volume is not the one in its manifest');
    const expected = shard.tokens * bytesPerToken(manifest.dtype);
    if (size !== expected) throw new DatasetError(path, `${size} bytes, but the manifest lists ${shard.tokens} ${manifest.dtype} tokens (${expected} bytes)`);
    const { sha256 } = await fileDigest(path);
    if (sha256 !== shard.sha256) throw new DatasetError(path, `SHA-256 ${sha256.slice(0, 16)}… differs from the manifest's ${shard.sha256.slice(0, 16)}…: the shard was changed`);
    onShard?.(i + 1, all.length);
  }
  return manifest;
}
