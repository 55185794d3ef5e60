// `npm run dataset -- --input PATH --out DIR [--format text|jsonl|parquet|tokens] [--text-field text]
//                     [--tokenizer tokenizer.json | --vocab 4096] [--shard-tokens N] [--validation-every 20]
//                     [--token-dtype uint16|uint32]`
// (not `npm run prepare`: npm runs a script of that name on every install)
// Prepares a dataset from the user's own text (trainer/src/data/prepare.ts): with the
// tokenizer.json given, or the project's byte-level BPE trained on the training documents
// (cached); tokenises every document into shards, and writes manifest.json (with the dataset hash
// partners compare) and the tokenizer beside it, as a Hugging Face tokenizer.json. `--format
// tokens` imports text that is already tokenised (nanoGPT's train.bin and val.bin, with the
// tokenizer.json that made them: trainer/src/data/import-tokens.ts).
// Live progress while it reads; at the end the dataset hash and what the shards hold.
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { MAX_VOCAB_SIZE, MIN_VOCAB_SIZE } from '../data/bpe.js';
import { prepareWithTokenizer, type SourceFormat } from '../data/prepare.js';
import { importTokenShards } from '../data/import-tokens.js';
import { DatasetError, MANIFEST_FILE, TOKENIZER_FILE, type TokenDtype } from '../data/shards.js';
import { formatDuration, ProgressLine } from '../report/progress.js';

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      input: { type: 'string' }, out: { type: 'string' }, format: { type: 'string', default: 'text' }, 'text-field': { type: 'string', default: 'text' },
      vocab: { type: 'string', default: '4096' }, tokenizer: { type: 'string' }, 'shard-tokens': { type: 'string', default: String(1 << 24) }, 'validation-every': { type: 'string', default: '20' },
      'token-dtype': { type: 'string' },
    },
  });
  if (values.input === undefined || values.out === undefined) {
    console.error('usage: npm run dataset -- --input PATH --out DIR [--format text|jsonl|parquet|tokens] [--text-field text] [--tokenizer tokenizer.json | --vocab 4096] [--shard-tokens N] [--validation-every 20] [--token-dtype uint16|uint32]');
    return 2;
  }
  if (values.format !== 'text' && values.format !== 'jsonl' && values.format !== 'parquet' && values.format !== 'tokens') {
    console.error(`--format must be text, jsonl, parquet or tokens, got ${values.format}`);
    return 2;
  }
  if (values.format === 'tokens' && values.tokenizer === undefined) {
    console.error('--format tokens needs --tokenizer: the tokenizer.json that made the tokens (its vocabulary and end-of-text)');
    return 2;
  }
  if (values['token-dtype'] !== undefined && values['token-dtype'] !== 'uint16' && values['token-dtype'] !== 'uint32') {
    console.error(`--token-dtype must be uint16 or uint32, got ${values['token-dtype']}`);
    return 2;
  }
  const vocabSize = Number(values.vocab);
  if (!Number.isInteger(vocabSize) || vocabSize < MIN_VOCAB_SIZE || vocabSize > MAX_VOCAB_SIZE) {
    console.error(`--vocab must be an integer from ${MIN_VOCAB_SIZE} to ${MAX_VOCAB_SIZE}, got ${values.vocab}`);
    return 2;
  }
  const out = resolve(values.out);
  const progress = new ProgressLine(process.stdout, 5_000);
  const started = Date.now();
  try {
    const manifest = values.format === 'tokens' ? await importTokenShards({
      input: resolve(values.input), tokenizerFile: resolve(values.tokenizer!), out, shardTokens: Number(values['shard-tokens']),
      ...(values['token-dtype'] !== undefined ? { inputDtype: values['token-dtype'] as TokenDtype } : {}),
      onProgress: ({ files, tokens }) => progress.update(`${formatDuration((Date.now() - started) / 1000)}  file ${files + 1}, ${tokens.toLocaleString('en-US')} tokens`),
    }) : await prepareWithTokenizer({
      source: { path: resolve(values.input), format: values.format as SourceFormat, textField: values['text-field']! },
      ...(values.tokenizer !== undefined ? { tokenizerFile: resolve(values.tokenizer) } : { vocabSize }),
      out, shardTokens: Number(values['shard-tokens']), validationEvery: Number(values['validation-every']),
      onTokenizer: ({ vocabSize: ids, trained }) => console.log(trained === undefined ? `tokenizer: ${values.tokenizer}, ${ids} ids`
        : `tokenizer: byte-level BPE, ${ids} ids, ${trained.cached ? 'from the cache' : `trained in ${trained.seconds.toFixed(1)} s`} on ${trained.documents.toLocaleString('en-US')} training documents`),
      onProgress: ({ documents, tokens }) => progress.update(`${formatDuration((Date.now() - started) / 1000)}  ${documents.toLocaleString('en-US')} documents, ${tokens.toLocaleString('en-US')} tokens`),
    });
    progress.done();
    const count = (split: 'train' | 'validation') => manifest.shards[split].reduce((sum, s) => sum + s.tokens, 0).toLocaleString('en-US');
    console.log(`${manifest.documents.train} training documents (${count('train')} tokens in ${manifest.shards.train.length} shards), ${manifest.documents.validation} validation (${count('validation')} tokens), ${manifest.dtype}`);
    console.log(`dataset hash ${manifest.hash}`);
    console.log(`wrote ${join(out, MANIFEST_FILE)} and ${join(out, TOKENIZER_FILE)} in ${formatDuration((Date.now() - started) / 1000)}`);
    return 0;
  } catch (error) {
    progress.done();
    if (error instanceof DatasetError) {
      console.error(error.message);
      return 1;
    }
    throw error;
  }
}

process.exitCode = await main();
