// Importing a dataset that is already tokenised: flat little-endian uint16/uint32 token files, as
// nanoGPT (`train.bin`, `val.bin`) and Megatron-style pipelines write them, with the tokenizer
// that made them. The tokens are copied as they are, re-cut into this project's shards, every id
// checked against the vocabulary; documents are counted by their end-of-text tokens. The result
// is the dataset the same text prepared with the same tokenizer gives (same shards, same hash)
// when the files hold documents each followed by end-of-text, as both pipelines write them.
import { createReadStream } from 'node:fs';
import { mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { givenTokenizer, requireEmpty, writeManifest, writeTokenizerFiles } from './prepare.js';
import { ShardWriter } from './shard-writer.js';
import { bytesPerToken, checkDtype, DatasetError, dtypeFor, type DatasetManifest, type Split, type TokenDtype } from './shards.js';

export interface ImportTokensOptions {
  /** A directory of `.bin` token files: those whose name starts with "val" are the validation
   * split, the others the training split, each read in code-point order of their names. */
  input: string;
  /** The tokenizer.json the tokens came from (its vocabulary and end-of-text). */
  tokenizerFile: string;
  /** The input files' token type (default: the narrowest that holds the vocabulary, as nanoGPT). */
  inputDtype?: TokenDtype;
  out: string;
  shardTokens?: number;
  onProgress?: (progress: { files: number; tokens: number }) => void;
}

export async function importTokenShards(options: ImportTokensOptions): Promise<DatasetManifest> {
  const { tokenizer, files } = await givenTokenizer(options.tokenizerFile);
  const inputDtype = options.inputDtype ?? dtypeFor(tokenizer.vocabSize);
  checkDtype(inputDtype, tokenizer.vocabSize);
  const shardTokens = options.shardTokens ?? 1 << 24;
  if (!Number.isInteger(shardTokens) || shardTokens < 1) throw new DatasetError('shardTokens', `must be a positive integer, got ${shardTokens}`);
  const inputs = await tokenFiles(options.input);
  await requireEmpty(options.out);
  await mkdir(options.out, { recursive: true });

  const dtype = dtypeFor(tokenizer.vocabSize);
  const writers = { train: new ShardWriter(options.out, 'train', dtype, shardTokens), validation: new ShardWriter(options.out, 'validation', dtype, shardTokens) };
  const documents = { train: 0, validation: 0 };
  let tokens = 0;
  for (const [i, { path, split }] of inputs.entries()) {
    let open = false; // a document begun and not yet ended by end-of-text
    let offset = 0; // tokens read from this file
    for await (const ids of readTokens(path, inputDtype)) {
      for (let j = 0; j < ids.length; j++) {
        const id = ids[j]!;
        if (id >= tokenizer.vocabSize) throw new DatasetError(path, `token ${offset + j} is id ${id}, outside the tokenizer's vocabulary of ${tokenizer.vocabSize} (wrong tokenizer, or wrong --token-dtype?)`);
        if (id === tokenizer.eot) documents[split]++;
        open = id !== tokenizer.eot;
      }
      await writers[split].push(ids);
      offset += ids.length;
      tokens += ids.length;
      options.onProgress?.({ files: i, tokens });
    }
    if (open) documents[split]++; // a last document without end-of-text still counts
  }
  if (documents.train === 0) throw new DatasetError(options.input, 'the training split is empty: no tokens in its files');
  if (documents.validation === 0) throw new DatasetError(options.input, 'the validation split is empty: give a val*.bin file with tokens');
  const manifest = await writeManifest(options.out, dtype, tokenizer, documents, writers);
  writeTokenizerFiles(options.out, files);
  return manifest;
}

/** The input's token files with their split; refuses a directory without both. */
async function tokenFiles(dir: string): Promise<Array<{ path: string; split: Split }>> {
  const info = await stat(dir).catch(() => undefined);
  if (info === undefined || !info.isDirectory()) throw new DatasetError(dir, 'is not a directory of .bin token files (e.g. nanoGPT\'s train.bin and val.bin)');
  const names = (await readdir(dir)).filter((n) => n.endsWith('.bin')).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const files = names.map((name) => ({ path: join(dir, name), split: (name.startsWith('val') ? 'validation' : 'train') as Split }));
  if (!files.some((f) => f.split === 'train')) throw new DatasetError(dir, 'has no training token file (a .bin file whose name does not start with "val", e.g. train.bin)');
  if (!files.some((f) => f.split === 'validation')) throw new DatasetError(dir, 'has no validation token file (a .bin file whose name starts with "val", e.g. val.bin)');
  return files;
}

/** A token file's ids, streamed in chunks (little-endian whatever the machine). */
async function* readTokens(path: string, dtype: TokenDtype): AsyncGenerator<Uint32Array> {
  const width = bytesPerToken(dtype);
  const { size } = await stat(path);
  if (size % width !== 0) throw new DatasetError(path, `is ${size} bytes, not a whole number of ${dtype} tokens (${width} bytes each)`);
  let carry: Buffer = Buffer.alloc(0);
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    const bytes = carry.length === 0 ? chunk : Buffer.concat([carry, chunk]);
    const whole = bytes.length - (bytes.length % width);
    const ids = new Uint32Array(whole / width);
    for (let i = 0; i < ids.length; i++) ids[i] = width === 2 ? bytes.readUInt16LE(2 * i) : bytes.readUInt32LE(4 * i);
    carry = bytes.subarray(whole);
    yield ids;
  }
}
