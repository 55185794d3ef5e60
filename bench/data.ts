// `npm run bench -- data [--gib N (4)] [--seq N (1024)] [--batch N (16)] [--read-mib N (512)] [--dir DIR] [--json FILE]`
//
// The data loader of prepared datasets (trainer/src/data/shard-reader.ts), on a dataset of
// --gib GiB of uint16 shards written for the run (pseudo-random tokens: the loader does not look
// at them):
//   throughput  tokens/s the loader delivers as training reads them — batches of --batch
//               sequences of --seq + 1 tokens at offsets drawn over the whole split, into the
//               trainer's int32 input and target buffers — against reading the same bytes raw
//               (one readSync per sequence at the same offsets, nothing else), interleaved in the
//               same run (goal ≥ 0.5×); and, to show what the access pattern costs, as many bytes
//               read sequentially in 1 MiB reads;
//   memory      peak RSS above the start while a fresh process verifies every shard (SHA-256,
//               streamed) and reads the whole dataset through the loader (goal ≤ 256 MiB).
import { fork } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { batchTokens } from '../trainer/src/data/assign.js';
import { ShardReader } from '../trainer/src/data/shard-reader.js';
import { datasetHash, DATASET_FORMAT, DATASET_VERSION, MANIFEST_FILE, verifyDataset, type DatasetManifest, type ShardEntry } from '../trainer/src/data/shards.js';
import { seededRandom } from '../trainer/src/random.js';
import { fmt, median, progress, progressDone, table } from './report.js';

const SHARD_TOKENS = 128 * 1024 * 1024; // 256 MiB of uint16 per shard
const GOALS = { throughput: 0.5, rssMiB: 256 };
const USAGE = 'usage: npm run bench -- data [--gib N (4)] [--seq N (1024)] [--batch N (16)] [--read-mib N (512)] [--dir DIR] [--json FILE]';

export async function main(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args, options: {
      gib: { type: 'string', default: '4' }, seq: { type: 'string', default: '1024' }, batch: { type: 'string', default: '16' },
      'read-mib': { type: 'string', default: '512' }, runs: { type: 'string', default: '3' }, dir: { type: 'string' }, json: { type: 'string' }, 'memory-child': { type: 'string' },
    } }));
  } catch (error) {
    console.error(`${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values['memory-child'] !== undefined) return memoryChild(values['memory-child']);
  const gib = Number(values.gib);
  const seqLen = Number(values.seq);
  const batch = Number(values.batch);
  const readBytes = Number(values['read-mib']) * 2 ** 20;
  const runs = Number(values.runs);
  if (!(gib > 0) || !Number.isInteger(seqLen) || !Number.isInteger(batch) || !(readBytes > 0) || !Number.isInteger(runs)) {
    console.error(USAGE);
    return 2;
  }
  const dir = values.dir ?? mkdtempSync(join(tmpdir(), 'concord-bench-data-'));
  try {
    const manifest = writeDataset(dir, Math.round((gib * 2 ** 30) / 2));
    const reader = new ShardReader(dir, manifest, manifest.shards.train);
    const tokensToRead = readBytes / 2;
    const seconds = { loader: [] as number[], raw: [] as number[], sequential: [] as number[] };
    for (let run = 1; run <= runs; run++) {
      const offsets = randomOffsets(reader.length - seqLen - 1, Math.ceil(tokensToRead / (seqLen + 1)), run);
      progress(`run ${run}/${runs}: loader`);
      seconds.loader.push(timeLoader(reader, offsets, { seqLen, batch }));
      progress(`run ${run}/${runs}: raw reads of the same sequences`);
      seconds.raw.push(timeRawSequences(dir, manifest.shards.train, offsets, seqLen));
      progress(`run ${run}/${runs}: sequential reads`);
      seconds.sequential.push(timeSequential(dir, manifest.shards.train, readBytes));
    }
    reader.close();
    progress('memory: a fresh process verifies and reads every shard');
    const memory = await measureMemory(dir);
    progressDone();

    const rate = (s: number[]) => tokensToRead / median(s);
    const ratio = rate(seconds.loader) / rate(seconds.raw);
    console.log(`data: ${fmt(reader.length / 1e9, 2)} G tokens in ${manifest.shards.train.length} uint16 shards (${fmt((reader.length * 2) / 2 ** 30, 2)} GiB); batches of ${batch} × ${seqLen + 1} tokens at random offsets; ${fmt(readBytes / 2 ** 20, 0)} MiB per run, median of ${runs}\n`);
    console.log(table(['path', 'M tokens/s', 'ratio to raw', 'goal'], [
      ['raw: one readSync per sequence, same offsets', fmt(rate(seconds.raw) / 1e6, 1), '1.00', ''],
      ['loader (ShardReader + batchTokens)', fmt(rate(seconds.loader) / 1e6, 1), fmt(ratio, 2), `≥ ${GOALS.throughput} ${ratio >= GOALS.throughput ? 'MET' : 'MISSED'}`],
      ['sequential reads of as many bytes, 1 MiB', fmt(rate(seconds.sequential) / 1e6, 1), fmt(rate(seconds.sequential) / rate(seconds.raw), 2), ''],
    ]));
    console.log('');
    console.log(table(['memory, whole dataset verified and read', 'MiB'], [
      ['RSS at start', fmt(memory.startRss / 2 ** 20, 0)],
      ['peak RSS', fmt(memory.peakRss / 2 ** 20, 0)],
      [`peak above start (goal ≤ ${GOALS.rssMiB} MiB: ${memory.peakRss - memory.startRss <= GOALS.rssMiB * 2 ** 20 ? 'MET' : 'MISSED'})`, fmt((memory.peakRss - memory.startRss) / 2 ** 20, 0)],
      ['tokens read', fmt(memory.tokens / 1e9, 2) + ' G'],
    ]));
    if (values.json) writeFileSync(values.json, JSON.stringify({ tokens: reader.length, seqLen, batch, seconds, ratio, memory }, null, 2));
    return 0;
  } finally {
    if (values.dir === undefined) rmSync(dir, { recursive: true, force: true });
  }
}

/** Shards of pseudo-random uint16 tokens and their manifest, written 16 MiB at a time. */
function writeDataset(dir: string, tokens: number): DatasetManifest {
  const random = seededRandom(7);
  const block = new Uint16Array(8 * 2 ** 20);
  const shards: ShardEntry[] = [];
  for (let written = 0; written < tokens;) {
    const count = Math.min(SHARD_TOKENS, tokens - written);
    const name = `train-${String(shards.length).padStart(5, '0')}.bin`;
    const fd = openSync(join(dir, name), 'w');
    const hash = createHash('sha256');
    for (let done = 0; done < count;) {
      const n = Math.min(block.length, count - done);
      for (let i = 0; i < n; i++) block[i] = Math.floor(random() * 50_257);
      const bytes = new Uint8Array(block.buffer, 0, 2 * n);
      writeSync(fd, bytes);
      hash.update(bytes);
      done += n;
      progress(`writing ${fmt(((written + done) * 2) / 2 ** 30, 2)} of ${fmt((tokens * 2) / 2 ** 30, 2)} GiB`);
    }
    closeSync(fd);
    shards.push({ name, tokens: count, sha256: hash.digest('hex') });
    written += count;
  }
  const body: Omit<DatasetManifest, 'hash'> = {
    format: DATASET_FORMAT, version: DATASET_VERSION, dtype: 'uint16', tokenizer: { hash: '0'.repeat(64), vocabSize: 50_257, eot: 50_256 },
    documents: { train: 1, validation: 0 }, shards: { train: shards, validation: [] },
  };
  const manifest = { ...body, hash: datasetHash(body) };
  writeFileSync(join(dir, MANIFEST_FILE), JSON.stringify(manifest, null, 2));
  return manifest;
}

/** `count` sequence offsets in [0, limit), uniformly, from `seed`. */
function randomOffsets(limit: number, count: number, seed: number): number[] {
  const random = seededRandom(seed);
  return Array.from({ length: count }, () => Math.floor(random() * limit));
}

/** Seconds for the loader to deliver the sequences at `offsets` as training batches. */
function timeLoader(reader: ShardReader, offsets: readonly number[], options: { seqLen: number; batch: number }): number {
  const buffers = { input: new Int32Array(options.batch * options.seqLen), target: new Int32Array(options.batch * options.seqLen) };
  const started = performance.now();
  for (let b = 0; b + options.batch <= offsets.length; b += options.batch) batchTokens(reader, offsets.slice(b, b + options.batch), options.seqLen, buffers);
  return (performance.now() - started) / 1000;
}

/** Seconds to read the bytes of the same sequences with one readSync each (two at a shard boundary), into one buffer. */
function timeRawSequences(dir: string, shards: readonly ShardEntry[], offsets: readonly number[], seqLen: number): number {
  const fds = shards.map((s) => openSync(join(dir, s.name), 'r'));
  const starts = [0];
  for (const s of shards) starts.push(starts.at(-1)! + s.tokens);
  const buffer = new Uint8Array(2 * (seqLen + 1));
  const started = performance.now();
  for (const offset of offsets) {
    let i = 0;
    while (starts[i + 1]! <= offset) i++;
    const first = Math.min(seqLen + 1, starts[i + 1]! - offset);
    readSync(fds[i]!, buffer, 0, 2 * first, 2 * (offset - starts[i]!));
    if (first < seqLen + 1) readSync(fds[i + 1]!, buffer, 2 * first, 2 * (seqLen + 1 - first), 0);
  }
  const elapsed = (performance.now() - started) / 1000;
  for (const fd of fds) closeSync(fd);
  return elapsed;
}

/** Seconds to read `bytes` bytes of the shards sequentially, 1 MiB a read. */
function timeSequential(dir: string, shards: readonly ShardEntry[], bytes: number): number {
  const buffer = new Uint8Array(2 ** 20);
  const started = performance.now();
  let left = bytes;
  for (const shard of shards) {
    const fd = openSync(join(dir, shard.name), 'r');
    try {
      for (let position = 0; left > 0 && position < shard.tokens * 2; position += buffer.length) {
        left -= readSync(fd, buffer, 0, Math.min(buffer.length, left), position);
      }
    } finally {
      closeSync(fd);
    }
    if (left <= 0) break;
  }
  return (performance.now() - started) / 1000;
}

/** RSS of a fresh process that verifies the dataset and reads all of it through the loader. */
function measureMemory(dir: string): Promise<{ startRss: number; peakRss: number; tokens: number }> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(new URL('./run.js', import.meta.url)), ['data', '--memory-child', dir], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child.once('message', (message) => resolve(message as { startRss: number; peakRss: number; tokens: number }));
    child.once('exit', (code) => (code === 0 ? undefined : reject(new Error(`the memory child exited with ${code}`))));
  });
}

async function memoryChild(dir: string): Promise<number> {
  const startRss = process.memoryUsage().rss;
  const manifest = await verifyDataset(dir);
  const reader = new ShardReader(dir, manifest, manifest.shards.train);
  let tokens = 0;
  for (let at = 0; at < reader.length; at += 2 ** 20) tokens += reader.subarray(at, Math.min(reader.length, at + 2 ** 20)).length;
  reader.close();
  process.send!({ startRss, peakRss: process.resourceUsage().maxRSS * 1024, tokens });
  return 0;
}
