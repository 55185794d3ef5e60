// The dataset a training config names: the bundled Brown corpus (data.genres, the demo default)
// or a prepared dataset (data.dir: shards, manifest and tokenizer, from `npm run dataset`). Every
// process that trains, scores or exports opens its data here, so all of them read the same one.
import { join } from 'node:path';
import { ConfigError } from '../config-error.js';
import type { TrainConfig } from '../train/config.js';
import { loadTokenizerJson } from './tokenizer-json.js';
import { loadDataset, type Dataset } from './dataset.js';
import { ShardReader } from './shard-reader.js';
import { DatasetError, TOKENIZER_FILE, verifyDataset, type DatasetManifest } from './shards.js';

export async function openDataset(config: Pick<TrainConfig, 'model' | 'data'>): Promise<Dataset & { manifest?: DatasetManifest }> {
  const { data, model } = config;
  if (data.dir === undefined) {
    return loadDataset({ vocabSize: model.vocabSize, validationEvery: data.validationEvery, ...(data.genres === 'all' ? {} : { genres: data.genres }) });
  }
  return loadPreparedDataset(data.dir, model.vocabSize, data.hash);
}

/**
 * A prepared dataset, every shard checked against its manifest, read from its files. The manifest
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
  // Read from the files as training asks, not into memory: a dataset may be larger than memory.
  return {
    manifest, tokenizer, eot: tokenizer.eot,
    train: new ShardReader(dir, manifest, manifest.shards.train), validation: new ShardReader(dir, manifest, manifest.shards.validation),
    trainDocs: manifest.shards.train.map((s) => s.name), validationDocs: manifest.shards.validation.map((s) => s.name), cached: false,
  };
}
