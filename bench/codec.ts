// `npm run bench -- codec [--values N] [--runs N] [--json FILE]`
//
// Encode and decode throughput of the SparseLoCo codec (top 64 of each 4096-value chunk, 2-bit
// values: Templar's density) on a vector of 64M float32 values, in MB/s of float32 input, against
// copying the same array in the same run (TypedArray.set), all interleaved. Also: a plain
// per-chunk quickselect top-k in JS (selection only, no quantisation or packing) as the baseline
// the issue names, the compression ratio, and the bytes an encode allocates besides its output.
import { getHeapStatistics } from 'node:v8';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { decodePayload, ParallelSparseLoCoEncoder, SparseLoCoEncoder } from '../trainer/src/codec/index.js';
import { fmt, median, progress, progressDone, table } from './report.js';

const PARAMS = { chunk: 4096, k: 64, bits: 2 };
const GOALS = { encode: 0.08, decode: 0.3 };
const USAGE = 'usage: npm run bench -- codec [--values N (default 67108864)] [--runs N (default 5)] [--json FILE]';

type Path = 'copy' | 'encode' | 'encode2' | 'decode' | 'quickselect';

export async function main(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args, options: { values: { type: 'string', default: String(64 * 1024 * 1024) }, runs: { type: 'string', default: '5' }, json: { type: 'string' } } }));
  } catch (error) {
    console.error(`${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  const n = Number(values.values);
  const runs = Number(values.runs);
  if (!Number.isSafeInteger(n) || n < PARAMS.chunk || !Number.isInteger(runs) || runs < 1) {
    console.error(USAGE);
    return 2;
  }

  progress(`preparing ${fmt(n / 1e6, 0)}M values`);
  const delta = pseudoGradient(n);
  const copyTarget = new Float32Array(n);
  const encoder = new SparseLoCoEncoder(n, PARAMS);
  // The parallel encoder reads Δ from shared memory; a coordinator computes Δ there directly.
  const parallel = await ParallelSparseLoCoEncoder.create(n, PARAMS, 2);
  parallel.sharedDelta().set(delta);
  await parallel.encode(parallel.sharedDelta());
  const selectOut = new Uint32Array(PARAMS.k);
  const scratch = new Float32Array(PARAMS.chunk);
  // Warm up every path once (JIT, page faults of fresh buffers), and keep one payload to decode.
  copyTarget.set(delta);
  const payload = encoder.encode(delta).slice();
  decodePayload(payload, n);
  quickselectAll(delta, scratch, selectOut);

  const seconds: Record<Path, number[]> = { copy: [], encode: [], encode2: [], decode: [], quickselect: [] };
  const paths: Array<[Path, () => unknown]> = [
    ['copy', () => copyTarget.set(delta)],
    ['encode', () => encoder.encode(delta)],
    ['encode2', () => parallel.encode(parallel.sharedDelta())],
    ['decode', () => decodePayload(payload, n)],
    ['quickselect', () => quickselectAll(delta, scratch, selectOut)],
  ];
  for (let run = 1; run <= runs; run++) {
    for (const [path, op] of paths) {
      progress(`run ${run}/${runs}: ${path}`);
      const started = performance.now();
      await op();
      seconds[path].push((performance.now() - started) / 1000);
    }
  }
  const allocated = allocatedPerEncode(() => encoder.encode(delta));
  const allocatedParallel = await allocatedPerEncodeAsync(async () => (await parallel.encode(parallel.sharedDelta())).length);
  await parallel.close();
  progressDone();

  const inputMB = (n * 4) / 1e6;
  const rate = (path: Path) => inputMB / median(seconds[path]);
  const ratio = (path: Path) => rate(path) / rate('copy');
  const verdict = (path: 'encode' | 'encode2' | 'decode') => {
    const goal = GOALS[path === 'encode2' ? 'encode' : path];
    return ratio(path) >= goal ? `≥ ${goal} MET` : `≥ ${goal} MISSED`;
  };
  console.log(`codec: ${fmt(n / 2 ** 20, 0)} Mi float32 values, chunk ${PARAMS.chunk}, top ${PARAMS.k}, ${PARAMS.bits} bits; median of ${runs} interleaved runs\n`);
  console.log(table(['path', 'MB/s of float32 input', 'ratio to copy', 'goal'], [
    ['copy (TypedArray.set), baseline', fmt(rate('copy'), 0), '1.000', ''],
    ['encode (error feedback, top-k, quantise, pack)', fmt(rate('encode'), 0), fmt(ratio('encode'), 3), verdict('encode')],
    ['encode, 2 worker threads (same bytes)', fmt(rate('encode2'), 0), fmt(ratio('encode2'), 3), verdict('encode2')],
    ['decode (to sparse indices + values)', fmt(rate('decode'), 0), fmt(ratio('decode'), 3), verdict('decode')],
    ['plain per-chunk quickselect top-k in JS', fmt(rate('quickselect'), 0), fmt(ratio('quickselect'), 3), ''],
  ]));
  const compression = (n * 4) / payload.length;
  console.log(`\npayload ${fmt(payload.length / 1e6, 2)} MB: ${fmt(compression, 1)}× smaller than float32 (goal > 146×, aim 200×)`);
  console.log(`allocated per encode besides its output: ${fmt(allocated, 0)} bytes; 2 threads: ${fmt(allocatedParallel, 0)} bytes on the main thread (goal: none)`);

  if (values.json !== undefined) {
    writeFileSync(values.json, `${JSON.stringify({ benchmark: 'codec', date: new Date().toISOString(), values: n, params: PARAMS, seconds, payloadBytes: payload.length, compression, allocatedPerEncode: allocated }, null, 2)}\n`);
  }
  return 0;
}

/** Gaussian-like values whose scale varies along the vector, as a real pseudo-gradient's does. */
function pseudoGradient(n: number): Float32Array {
  const values = new Float32Array(n);
  let state = 12345;
  for (let i = 0; i < n; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    const u = state / 2 ** 32 - 0.5;
    values[i] = u * u * u * (1 + ((i >>> 16) % 7)) * 1e-3;
  }
  return values;
}

/**
 * Bytes the encoder allocates per call besides the returned view: heap growth over 3 encodes
 * between forced collections (needs --expose-gc, which bench/run.js is started with; without it,
 * reported as NaN).
 */
function allocatedPerEncode(encode: () => unknown): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) return NaN;
  gc();
  const before = getHeapStatistics();
  const calls = 3;
  for (let i = 0; i < calls; i++) encode();
  const after = getHeapStatistics();
  const heap = after.used_heap_size - before.used_heap_size;
  const external = after.external_memory - before.external_memory;
  return Math.max(0, (heap + external) / calls);
}

/** The same for an encoder that resolves to its payload's length; the payload itself is subtracted. */
async function allocatedPerEncodeAsync(encode: () => Promise<number>): Promise<number> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) return NaN;
  gc();
  const before = getHeapStatistics();
  const calls = 3;
  let output = 0;
  for (let i = 0; i < calls; i++) output += await encode();
  const after = getHeapStatistics();
  const total = after.used_heap_size - before.used_heap_size + after.external_memory - before.external_memory;
  return Math.max(0, (total - output) / calls);
}

/** The baseline: per chunk, a plain quickselect of the k-th largest magnitude, then a scan. */
function quickselectAll(values: Float32Array, scratch: Float32Array, out: Uint32Array): void {
  const { chunk, k } = PARAMS;
  for (let start = 0; start + chunk <= values.length; start += chunk) {
    for (let i = 0; i < chunk; i++) scratch[i] = Math.abs(values[start + i]!);
    const threshold = quickselect(scratch, chunk - k);
    let taken = 0;
    for (let i = 0; i < chunk && taken < k; i++) if (Math.abs(values[start + i]!) >= threshold) out[taken++] = i;
  }
}

function quickselect(a: Float32Array, target: number): number {
  let lo = 0;
  let hi = a.length - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >>> 1]!;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i] = a[j]!;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (target <= j) hi = j;
    else if (target >= i) lo = i;
    else break;
  }
  return a[target]!;
}
