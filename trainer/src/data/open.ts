// The dataset a training config names: the bundled Brown corpus (data.genres, the demo default)
// or a prepared dataset (data.dir: shards, manifest and tokenizer, from `npm run dataset`). Every
// process that trains, scores or exports opens its data here, so all of them read the same one.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { endianness } from 'node:os';
import { ConfigError } from '../config-error.js';
import type { TrainConfig } from '../train/config.js';
import { loadTokenizerJson } from './tokenizer-json.js';
import { allocTokens, loadDataset, type Dataset, type TokenArray } from './dataset.js';
import { bytesPerToken, DatasetError, TOKENIZER_FILE, verifyDataset, type DatasetManifest, type ShardEntry } from './shards.js';

export async function openDataset(config: Pick<TrainConfig, 'model' | 'data'>): Promise<Dataset & { manifest?: DatasetManifest }> {
  const { data, model } = config;
  if (data.dir === undefined) {
    return loadDataset({ vocabSize: model.vocabSize, validationEvery: data.validationEvery, ...(data.genres === 'all' ? {} : { genres: data.genres }) });
  }
  return loadPreparedDataset(data.dir, model.vocabSize, data.hash);
}

/**
 * A prepared dataset, every shard checked against its manifest, read into memory. The manifest
 * must have the hash the run pins (if given); the tokenizer must be the one the manifest names
 * and have the model's vocabulary.
 */
export async function loadPreparedDataset(dir: string, vocabSize: number, expectedHash?: string): Promise<Dataset & { manifest: DatasetManifest }> {
  const manifest = await verifyDataset(dir);
  if (expectedHash !== undefined && manifest.hash !== expectedHash) {
    throw new DatasetError(dir, `holds dataset ${manifest.hash.slice(0, 16)}…, but the run pins ${expectedHash.slice(0, 16)}… (data.hash): this volume has other data`);
  }
  const file = join(dir, TOKENIZER_FILE);
  const tokenizer = await loadTokenizerJson(file);
  if (tokenizer.hash() !== manifest.tokenizer.hash) throw new DatasetError(file, `is not the tokenizer the manifest names (${manifest.tokenizer.hash.slice(0, 16)}…)`);
  if (tokenizer.vocabSize !== vocabSize) throw new ConfigError('model.vocabSize', `is ${vocabSize}, but the dataset in ${dir} was tokenised with ${tokenizer.vocabSize} ids: set model.vocabSize to ${tokenizer.vocabSize}`);
  const read = (split: 'train' | 'validation') => readShards(dir, manifest, manifest.shards[split]);
  return {
    manifest, tokenizer, eot: tokenizer.eot, train: await read('train'), validation: await read('validation'),
    trainDocs: manifest.shards.train.map((s) => s.name), validationDocs: manifest.shards.validation.map((s) => s.name), cached: false,
  };
}

async function readShards(dir: string, manifest: DatasetManifest, shards: readonly ShardEntry[]): Promise<TokenArray> {
  const total = shards.reduce((sum, s) => sum + s.tokens, 0);
  const tokens = allocTokens(manifest.tokenizer.vocabSize, total);
  const width = bytesPerToken(manifest.dtype);
  let at = 0;
  for (const shard of shards) {
    const bytes = await readFile(join(dir, shard.name));
    if (endianness() === 'LE' && width === (tokens instanceof Uint16Array ? 2 : 4)) {
      new Uint8Array(tokens.buffer, at * width, bytes.length).set(bytes);
    } else {
      for (let i = 0; i < shard.tokens; i++) tokens[at + i] = width === 2 ? bytes.readUInt16LE(2 * i) : bytes.readUInt32LE(4 * i);
    }
    at += shard.tokens;
  }
  return tokens;
}
