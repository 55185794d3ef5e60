// Preparing a dataset: documents from the files people have, tokenised into shards and a
// manifest (shards.ts). Deterministic: the same input and tokenizer give the same bytes and the
// same dataset hash on every machine, so partners can compare hashes instead of data.
//
// Documents: a text file is one document, a directory of text files is one document per file
// (in code-point order of their paths below the directory); a JSONL file is one document per
// non-blank line, the string in its text field; a Parquet file (how Hugging Face datasets ship)
// is one document per row, the string in its text column, read one row group at a time. The same texts in the same order prepare to the
// same shards whatever format they came in. Split: document k (counted from 0 over the whole
// input) is a validation document when k mod validationEvery is 0, as the Brown corpus's split.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, type FileMetaData } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import {
  checkDtype, datasetHash, DATASET_FORMAT, DATASET_VERSION, DatasetError, dtypeFor, MANIFEST_FILE, TOKENIZER_CONFIG_FILE, TOKENIZER_FILE,
  type DatasetManifest, type Split, type TokenDtype,
} from './shards.js';
import { bpeCacheKey, EOT_TEXT, loadOrTrainBpe, writeFileAtomic } from './bpe.js';
import { ShardWriter } from './shard-writer.js';
import { bpeToTokenizerJson, loadTokenizerJson, tokenizerConfigJson } from './tokenizer-json.js';

export type SourceFormat = 'text' | 'jsonl' | 'parquet';

export interface Source {
  path: string;
  format: SourceFormat;
  /** JSONL and Parquet: the field (column) holding the text (default "text"). */
  textField?: string;
}

export interface SourceDocument {
  text: string;
  /** Where it came from (file, or file:line), for errors. */
  where: string;
}

/** The documents of a source, in order. */
export async function* documentsOf(source: Source): AsyncGenerator<SourceDocument> {
  const files = await filesOf(source.path, source.format === 'text' ? undefined : `.${source.format}`);
  for (const file of files) {
    if (source.format === 'text') {
      yield { text: await readFile(file, 'utf8'), where: file };
      continue;
    }
    const field = source.textField ?? 'text';
    if (source.format === 'parquet') {
      yield* parquetDocuments(file, field);
      continue;
    }
    let n = 0;
    for await (const line of createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity })) {
      n++;
      if (line.trim() === '') continue;
      let record: unknown;
      try {
        record = JSON.parse(line);
      } catch (error) {
        throw new DatasetError(`${file}:${n}`, `not a JSON line (${(error as Error).message})`);
      }
      const text = (record as Record<string, unknown> | null)?.[field];
      if (typeof text !== 'string') throw new DatasetError(`${file}:${n}`, `no string field "${field}" (the text field: set textField to the one your records use)`);
      yield { text, where: `${file}:${n}` };
    }
  }
}

/** The rows' text column of a Parquet file, one row group in memory at a time. */
async function* parquetDocuments(file: string, field: string): AsyncGenerator<SourceDocument> {
  const buffer = await asyncBufferFromFile(file);
  let metadata: FileMetaData;
  try {
    metadata = await parquetMetadataAsync(buffer);
  } catch (error) {
    throw new DatasetError(file, `not a Parquet file (${(error as Error).message})`);
  }
  const columns = metadata.schema.slice(1).map((c) => c.name);
  if (!columns.includes(field)) throw new DatasetError(file, `no column "${field}" (the text field: set textField to one of ${columns.join(', ')})`);
  let rowStart = 0;
  for (const group of metadata.row_groups) {
    const rowEnd = rowStart + Number(group.num_rows);
    const rows = await parquetReadObjects({ file: buffer, metadata, columns: [field], rowStart, rowEnd, compressors });
    for (const [i, row] of rows.entries()) {
      const text = row[field];
      if (typeof text !== 'string') throw new DatasetError(`${file}: row ${rowStart + i}`, `column "${field}" is not a string (${text === null || text === undefined ? 'empty' : typeof text})`);
      yield { text, where: `${file}: row ${rowStart + i}` };
    }
    rowStart = rowEnd;
  }
}

/** A file, or the files below a directory (with `extension` only, if given) in code-point order of their relative paths. */
async function filesOf(path: string, extension: string | undefined): Promise<string[]> {
  const info = await stat(path).catch(() => {
    throw new DatasetError(path, 'no such file or directory');
  });
  if (!info.isDirectory()) return [path];
  const entries = await readdir(path, { recursive: true, withFileTypes: true });
  const files = entries.filter((e) => e.isFile() && !e.name.startsWith('.') && (extension === undefined || e.name.endsWith(extension)))
    .map((e) => join(e.parentPath, e.name));
  return files.sort((a, b) => {
    const [x, y] = [relative(path, a), relative(path, b)];
    return x < y ? -1 : x > y ? 1 : 0;
  });
}

/** A dataset is prepared into a new (or empty) directory: nothing already stored is overwritten. */
export async function requireEmpty(dir: string): Promise<void> {
  if ((await readdir(dir).catch(() => [])).length > 0) throw new DatasetError(dir, 'exists and is not empty: prepare into a new directory (nothing is overwritten)');
}

export interface PrepareTokenizer {
  encode(text: string): ArrayLike<number>;
  vocabSize: number;
  eot: number;
  hash(): string;
}

export interface PrepareOptions {
  documents: AsyncIterable<SourceDocument>;
  tokenizer: PrepareTokenizer;
  /** A new directory (or an empty one): nothing already there is overwritten. */
  out: string;
  /** Default: the narrowest that holds the vocabulary. */
  dtype?: TokenDtype;
  /** Tokens per shard (default 2^24: 32 MiB of uint16). */
  shardTokens?: number;
  validationEvery?: number;
  onProgress?: (progress: { documents: number; tokens: number }) => void;
}

/** Tokenises the documents into shards and writes the manifest; returns it. */
export async function prepareDataset(options: PrepareOptions): Promise<DatasetManifest> {
  const { tokenizer, out } = options;
  const dtype = options.dtype ?? dtypeFor(tokenizer.vocabSize);
  checkDtype(dtype, tokenizer.vocabSize);
  const shardTokens = options.shardTokens ?? 1 << 24;
  if (!Number.isInteger(shardTokens) || shardTokens < 1) throw new DatasetError('shardTokens', `must be a positive integer, got ${shardTokens}`);
  const every = options.validationEvery ?? 20;
  if (!Number.isInteger(every) || every < 2) throw new DatasetError('validationEvery', `must be an integer of at least 2, got ${every}`);
  await requireEmpty(out);
  await mkdir(out, { recursive: true });

  const writers = { train: new ShardWriter(out, 'train', dtype, shardTokens), validation: new ShardWriter(out, 'validation', dtype, shardTokens) };
  const documents = { train: 0, validation: 0 };
  let k = 0;
  let tokens = 0;
  for await (const doc of options.documents) {
    const split: Split = k % every === 0 ? 'validation' : 'train';
    k++;
    const ids = tokenizer.encode(doc.text);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!Number.isInteger(id) || id < 0 || id >= tokenizer.vocabSize) throw new DatasetError(doc.where, `the tokenizer gave id ${id}, outside its vocabulary of ${tokenizer.vocabSize}`);
    }
    await writers[split].push(ids);
    await writers[split].push([tokenizer.eot]);
    documents[split]++;
    tokens += ids.length + 1;
    options.onProgress?.({ documents: k, tokens });
  }
  if (k === 0) throw new DatasetError('documents', 'the dataset is empty: no documents were read');
  if (documents.train === 0) throw new DatasetError('documents', `only ${k} document(s): every ${every}th goes to validation, and none is left to train on`);
  return writeManifest(out, dtype, tokenizer, documents, writers);
}

/** Closes both splits' writers and writes manifest.json (with the dataset hash); returns it. */
export async function writeManifest(out: string, dtype: TokenDtype, tokenizer: PrepareTokenizer, documents: Record<Split, number>, writers: Record<Split, ShardWriter>): Promise<DatasetManifest> {
  const body: Omit<DatasetManifest, 'hash'> = {
    format: DATASET_FORMAT, version: DATASET_VERSION, dtype,
    tokenizer: { hash: tokenizer.hash(), vocabSize: tokenizer.vocabSize, eot: tokenizer.eot },
    documents, shards: { train: await writers.train.close(), validation: await writers.validation.close() },
  };
  const manifest: DatasetManifest = { ...body, hash: datasetHash(body) };
  writeFileAtomic(join(out, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

/**
 * Prepares a source with a tokenizer.json given (`tokenizerFile`: GPT-2's, Llama 3's, …) or, by
 * default, the project's byte-level BPE trained on the source's training documents (cached by
 * their content) at `vocabSize`. Either way the tokenizer is written beside the manifest as a
 * Hugging Face tokenizer.json (with its tokenizer_config.json), and the manifest pins that
 * file's hash. What `npm run dataset` and `npm start -- --data` do.
 */
export async function prepareWithTokenizer(options: Omit<PrepareOptions, 'documents' | 'tokenizer'> & {
  source: Source;
  vocabSize?: number;
  tokenizerFile?: string;
  onTokenizer?: (info: { vocabSize: number; trained?: { documents: number; cached: boolean; seconds: number } }) => void;
}): Promise<DatasetManifest> {
  const every = options.validationEvery ?? 20;
  await requireEmpty(options.out);
  let tokenizer: PrepareTokenizer;
  let files: { json: string; config: string };
  if (options.tokenizerFile !== undefined) {
    ({ tokenizer, files } = await givenTokenizer(options.tokenizerFile));
    options.onTokenizer?.({ vocabSize: tokenizer.vocabSize });
  } else {
    if (options.vocabSize === undefined) throw new DatasetError('vocabSize', 'is required to train a tokenizer (or give a tokenizer.json)');
    // The tokenizer learns from the training documents only (the same split rule as the shards).
    const trainTexts: string[] = [];
    let k = 0;
    for await (const doc of documentsOf(options.source)) if (k++ % every !== 0) trainTexts.push(doc.text);
    const { tokenizer: bpe, cached, trainSeconds } = loadOrTrainBpe(trainTexts, { vocabSize: options.vocabSize, key: bpeCacheKey(trainTexts, options.vocabSize) });
    options.onTokenizer?.({ vocabSize: bpe.vocabSize, trained: { documents: trainTexts.length, cached, seconds: trainSeconds } });
    files = { json: `${JSON.stringify(bpeToTokenizerJson(bpe))}\n`, config: `${JSON.stringify(tokenizerConfigJson(EOT_TEXT), null, 2)}\n` };
    // Encoding with the project's BPE is the same as with its tokenizer.json (tested), and faster;
    // the manifest pins the file.
    const hash = createHash('sha256').update(files.json).digest('hex');
    tokenizer = { encode: (text) => bpe.encode(text), vocabSize: bpe.vocabSize, eot: bpe.eot, hash: () => hash };
  }
  const manifest = await prepareDataset({ ...options, documents: documentsOf(options.source), tokenizer });
  writeTokenizerFiles(options.out, files);
  return manifest;
}

/** The tokenizer.json a user gives, and the two files to write beside the manifest (its
 * tokenizer_config.json when one sits next to it, else one made for it). */
export async function givenTokenizer(file: string): Promise<{ tokenizer: PrepareTokenizer; files: { json: string; config: string } }> {
  const hf = await loadTokenizerJson(file);
  const config = await readFile(join(dirname(file), TOKENIZER_CONFIG_FILE), 'utf8').then((t) => JSON.parse(t) as unknown, () => tokenizerConfigJson(hf.decode([hf.eot])));
  return { tokenizer: hf, files: { json: await readFile(file, 'utf8'), config: `${JSON.stringify(config, null, 2)}\n` } };
}

export function writeTokenizerFiles(out: string, files: { json: string; config: string }): void {
  writeFileAtomic(join(out, TOKENIZER_FILE), files.json);
  writeFileAtomic(join(out, TOKENIZER_CONFIG_FILE), files.config);
}
