// `npm run dataset -- --input PATH --out DIR [--format text|jsonl] [--text-field text] [--vocab 4096]
//                     [--shard-tokens N] [--validation-every 20]`
// (not `npm run prepare`: npm runs a script of that name on every install)
// Prepares a dataset from the user's own text (trainer/src/data/prepare.ts): trains the project's
// byte-level BPE on the training documents (cached), tokenises every document into shards, and
// writes manifest.json (with the dataset hash partners compare) and the tokenizer beside it.
// Live progress while it reads; at the end the dataset hash and what the shards hold.
import { readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { bpeCacheKey, loadOrTrainBpe, MAX_VOCAB_SIZE, MIN_VOCAB_SIZE, writeFileAtomic } from '../data/bpe.js';
import { documentsOf, prepareDataset, type Source, type SourceFormat } from '../data/prepare.js';
import { DatasetError } from '../data/shards.js';
import { formatDuration, ProgressLine } from '../report/progress.js';

export const TOKENIZER_FILE = 'tokenizer.concord-bpe.json';

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      input: { type: 'string' }, out: { type: 'string' }, format: { type: 'string', default: 'text' }, 'text-field': { type: 'string', default: 'text' },
      vocab: { type: 'string', default: '4096' }, 'shard-tokens': { type: 'string', default: String(1 << 24) }, 'validation-every': { type: 'string', default: '20' },
    },
  });
  if (values.input === undefined || values.out === undefined) {
    console.error('usage: npm run dataset -- --input PATH --out DIR [--format text|jsonl] [--text-field text] [--vocab 4096] [--shard-tokens N] [--validation-every 20]');
    return 2;
  }
  if (values.format !== 'text' && values.format !== 'jsonl') {
    console.error(`--format must be text or jsonl, got ${values.format}`);
    return 2;
  }
  const vocabSize = Number(values.vocab);
  if (!Number.isInteger(vocabSize) || vocabSize < MIN_VOCAB_SIZE || vocabSize > MAX_VOCAB_SIZE) {
    console.error(`--vocab must be an integer from ${MIN_VOCAB_SIZE} to ${MAX_VOCAB_SIZE}, got ${values.vocab}`);
    return 2;
  }
  const source: Source = { path: resolve(values.input), format: values.format as SourceFormat, textField: values['text-field']! };
  const every = Number(values['validation-every']);
  const out = resolve(values.out);
  const progress = new ProgressLine(process.stdout, 5_000);
  const started = Date.now();
  try {
    if ((await readdir(out).catch(() => [])).length > 0) throw new DatasetError(out, 'exists and is not empty: prepare into a new directory (nothing is overwritten)');
    // The tokenizer learns from the training documents only (the same split rule as the shards).
    const trainTexts: string[] = [];
    let k = 0;
    for await (const doc of documentsOf(source)) {
      if (k++ % every !== 0) trainTexts.push(doc.text);
      if (k % 100 === 0) progress.update(`reading ${k.toLocaleString('en-US')} documents for the tokenizer`);
    }
    progress.done();
    const { tokenizer, cached, trainSeconds } = loadOrTrainBpe(trainTexts, { vocabSize, key: bpeCacheKey(trainTexts, vocabSize) });
    console.log(`tokenizer: byte-level BPE, ${vocabSize} ids, ${cached ? 'from the cache' : `trained in ${trainSeconds.toFixed(1)} s`} on ${trainTexts.length.toLocaleString('en-US')} training documents`);
    const manifest = await prepareDataset({
      documents: documentsOf(source), tokenizer, out, shardTokens: Number(values['shard-tokens']), validationEvery: every,
      onProgress: ({ documents, tokens }) => progress.update(`${formatDuration((Date.now() - started) / 1000)}  ${documents.toLocaleString('en-US')} of ${k.toLocaleString('en-US')} documents, ${tokens.toLocaleString('en-US')} tokens`),
    });
    progress.done();
    writeFileAtomic(join(out, TOKENIZER_FILE), `${JSON.stringify(tokenizer.toJSON())}\n`);
    const count = (split: 'train' | 'validation') => manifest.shards[split].reduce((sum, s) => sum + s.tokens, 0).toLocaleString('en-US');
    console.log(`${manifest.documents.train} training documents (${count('train')} tokens in ${manifest.shards.train.length} shards), ${manifest.documents.validation} validation (${count('validation')} tokens), ${manifest.dtype}`);
    console.log(`dataset hash ${manifest.hash}`);
    console.log(`wrote ${join(out, 'manifest.json')} and ${join(out, TOKENIZER_FILE)} in ${formatDuration((Date.now() - started) / 1000)}`);
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
