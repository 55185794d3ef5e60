// Which training sequences a trainer must use in a round, computable by anyone.
//
// Windows. The packed train array of N tokens is cut into W = floor((N − 1) / seqLen)
// non-overlapping windows; window w is the sequence starting at offset w·seqLen, seqLen + 1 tokens
// long (inputs are tokens [0, seqLen), targets are tokens [1, seqLen]; the last target of one
// window is the first input of the next, which is all two windows ever share).
//
// Round permutation. Round r shuffles the windows with a keyed pseudo-random permutation π_r of
// [0, W): a 24-round Feistel network on the smallest even number of bits covering W, with
// cycle-walking to stay inside [0, W), its round keys expanded from
// SHA-256("concord/assign/v1", runSeed, r). It needs no table and no Math.random: π_r(i) costs a
// few dozen integer operations, identical on every machine, and a new round gives a new
// permutation. (8 rounds left a measurable bias in which pairs of windows come first when W is
// tiny; 24 rounds showed none in a chi-square test.)
//
// Slices. Position p of the shuffled order holds window π_r(p). The positions [0, W) are split
// into P contiguous slices, one per peer, by the peer's index in the sorted list of the round's
// peer ids (peer i: [⌊iW/P⌋, ⌊(i+1)W/P⌋)); a peer's slice is split the same way among its own R
// replicas. Slices never overlap, so within a round no two peers (and no two replicas of one
// peer) train on the same window, whatever their batch sizes or replica counts. All parties must
// use the same peer list and seqLen for the round.
//
// Order and running out. A replica takes the windows of its slice in shuffled order: sequence k
// of the round (k = batch · batchSize + row) is position sliceStart + (k mod sliceLength). A
// replica that needs more windows than its slice holds wraps around to the start of its own
// slice — it sees its data again this round but never steps into another's slice, so the
// disjointness holds at any speed. `firstBatch` lets a trainer ask for batches as it goes (a
// round ends on the clock, not after a fixed number of steps).
//
// Random batches for validation (`randomBatches`) use the same kind of permutation over all W
// windows, keyed by a seed the caller derives from data fixed only after contributions are
// committed; they are drawn without replacement while the request is no larger than W.

import { createHash } from 'node:crypto';
import type { TokenSource } from './dataset.js';

export type Seed = string | bigint | Uint8Array;

// Globals read in hot loops are bound once here: inside jest's vm context every read of a global
// such as Math goes through an interceptor and made at() ~50× slower.
const { floor, imul } = Math;
const { isInteger } = Number;

const MAX_WINDOWS = 2 ** 32;
const FEISTEL_ROUNDS = 24;

/** Number of non-overlapping windows of seqLen + 1 tokens in `tokens` tokens. */
export function windowCount(tokens: number, seqLen: number): number {
  checkCount('tokens', tokens, 0);
  checkCount('seqLen', seqLen, 1);
  return Math.max(0, Math.floor((tokens - 1) / seqLen));
}

/**
 * A pseudo-random permutation of [0, n) keyed by 32 bytes: `at(i)` is the element at position i.
 * Feistel network with FEISTEL_ROUNDS rounds on 2h bits (2^(2h) ≥ n, at most 4n), round function
 * MurmurHash3's finaliser of (half ⊕ round key), cycle-walking into [0, n). Round keys: the
 * 32-bit little-endian words of SHA-256(key ‖ block) for blocks 0, 1, 2.
 */
export class KeyedPermutation {
  private readonly half: number;
  private readonly mask: number;
  private readonly keys: Uint32Array;

  constructor(readonly n: number, key: Uint8Array) {
    if (!Number.isInteger(n) || n < 1 || n > MAX_WINDOWS) throw new Error(`assign: cannot permute ${n} elements`);
    if (key.length < 32) throw new Error('assign: a permutation key needs 32 bytes');
    let bits = 2;
    while (2 ** bits < n) bits += 2;
    this.half = bits / 2;
    this.mask = 2 ** this.half - 1;
    this.keys = new Uint32Array(FEISTEL_ROUNDS);
    for (let block = 0; block * 8 < FEISTEL_ROUNDS; block++) {
      const digest = createHash('sha256').update(key.subarray(0, 32)).update(Uint8Array.of(block)).digest();
      for (let i = 0; i < 8 && block * 8 + i < FEISTEL_ROUNDS; i++) this.keys[block * 8 + i] = digest.readUInt32LE(4 * i);
    }
  }

  at(i: number): number {
    if (!isInteger(i) || i < 0 || i >= this.n) throw new Error(`assign: position ${i} outside [0, ${this.n})`);
    let y = this.encrypt(i);
    while (y >= this.n) y = this.encrypt(y);
    return y;
  }

  private encrypt(x: number): number {
    const half = this.half;
    const mask = this.mask;
    let left = floor(x / 2 ** half);
    let right = x & mask;
    for (let r = 0; r < FEISTEL_ROUNDS; r++) {
      const f = fmix32((right ^ this.keys[r]!) >>> 0) >>> (32 - half);
      const next = (left ^ f) & mask;
      left = right;
      right = next;
    }
    return left * 2 ** half + right;
  }
}

/** MurmurHash3's 32-bit finaliser: a bijection on 32 bits with full avalanche. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Unambiguous bytes of a seed: a type tag, then the value. */
function seedBytes(seed: Seed): Buffer {
  if (typeof seed === 'string') return Buffer.concat([Buffer.from('s:'), Buffer.from(seed, 'utf8')]);
  if (typeof seed === 'bigint') return Buffer.from(`b:${seed.toString(10)}`);
  return Buffer.concat([Buffer.from('x:'), Buffer.from(seed)]);
}

function deriveKey(domain: string, seed: Seed, ...fields: string[]): Uint8Array {
  const h = createHash('sha256');
  h.update(`${domain}\0`);
  const s = seedBytes(seed);
  h.update(`${s.length}\0`);
  h.update(s);
  for (const f of fields) h.update(`\0${f}`);
  return h.digest();
}

/** The permutation of round `round` over W windows. */
export function roundPermutation(runSeed: string | bigint, round: number | bigint, windows: number): KeyedPermutation {
  return new KeyedPermutation(windows, deriveKey('concord/assign/v1', runSeed, `round=${roundString(round)}`));
}

function roundString(round: number | bigint): string {
  if (typeof round === 'number') checkCount('round', round, 0);
  else if (round < 0n) throw new Error(`assign: round must be >= 0, got ${round}`);
  return round.toString(10);
}

function checkCount(name: string, value: number, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new Error(`assign: ${name} must be an integer >= ${min}, got ${value}`);
  }
}

export interface AssignOptions {
  /** The run's seed (from the TrainingRun). */
  runSeed: string | bigint;
  /** Ids of the round's peers (order does not matter: sorted here by code unit). */
  peers: readonly string[];
  /** The peer whose batches these are. */
  peerId: string;
  round: number | bigint;
  /** This trainer's replica index in [0, replicas). */
  replica: number;
  /** How many replicas the peer trains with. */
  replicas: number;
  batchSize: number;
  seqLen: number;
  /** Length of the packed train token array. */
  tokens: number;
  /** How many batches to return. */
  batches: number;
  /** Index of the first batch to return (default 0): batches are numbered from the round's start. */
  firstBatch?: number;
}

export interface Slice {
  /** First position (in the round's shuffled order) of the slice. */
  start: number;
  /** Number of windows in the slice. */
  length: number;
  /** Windows W of the whole train array. */
  windows: number;
}

/** Positions [start, start + length) of the shuffled order that belong to (peer, replica). */
export function assignedSlice(options: Omit<AssignOptions, 'runSeed' | 'round' | 'batchSize' | 'batches' | 'firstBatch'>): Slice {
  const { peers, peerId, replica, replicas, seqLen, tokens } = options;
  const sorted = [...peers].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i] === sorted[i - 1]) throw new Error(`assign: peer id ${sorted[i]} is listed twice`);
  }
  const index = sorted.indexOf(peerId);
  if (index < 0) throw new Error(`assign: peer ${peerId} is not in the round's peer list`);
  checkCount('replicas', replicas, 1);
  if (!Number.isInteger(replica) || replica < 0 || replica >= replicas) {
    throw new Error(`assign: replica must be in [0, ${replicas}), got ${replica}`);
  }
  const windows = windowCount(tokens, seqLen);
  const p = sorted.length;
  const peerStart = Math.floor((index * windows) / p);
  const peerLength = Math.floor(((index + 1) * windows) / p) - peerStart;
  const start = peerStart + Math.floor((replica * peerLength) / replicas);
  const length = peerStart + Math.floor(((replica + 1) * peerLength) / replicas) - start;
  if (length < 1) {
    throw new Error(
      `assign: ${tokens} tokens give ${windows} windows of ${seqLen + 1} tokens, ` +
        `too few for peer ${peerId} replica ${replica} (${p} peers, ${replicas} replicas)`,
    );
  }
  return { start, length, windows };
}

/**
 * Start offsets into the train array of the sequences (seqLen + 1 tokens each) that replica
 * `replica` of peer `peerId` trains on in `round`: `batches` arrays of `batchSize` offsets,
 * batches firstBatch … firstBatch + batches − 1.
 */
export function assign(options: AssignOptions): number[][] {
  const { batchSize, batches, seqLen } = options;
  const firstBatch = options.firstBatch ?? 0;
  checkCount('batchSize', batchSize, 1);
  checkCount('batches', batches, 0);
  checkCount('firstBatch', firstBatch, 0);
  const slice = assignedSlice(options);
  const perm = roundPermutation(options.runSeed, options.round, slice.windows);
  const out: number[][] = [];
  for (let b = 0; b < batches; b++) {
    const row: number[] = [];
    const k0 = (firstBatch + b) * batchSize;
    for (let s = 0; s < batchSize; s++) {
      const position = slice.start + ((k0 + s) % slice.length);
      row.push(perm.at(position) * seqLen);
    }
    out.push(row);
  }
  return out;
}

/**
 * `batches` × `batchSize` sequences drawn by `seed`, without replacement, from the first `trained`
 * sequences peer `peerId` was assigned in `round` (as assign() numbers them, one replica): what
 * a contributor trained on by its own account, so that no part of its round's data — first or
 * last, most or least overwritten by later steps — is where it is judged. With more sequences
 * requested than `trained`, the draw repeats.
 */
export function trainedSample(options: Omit<AssignOptions, 'replica' | 'replicas' | 'firstBatch'> & { trained: number; seed: Seed }): number[][] {
  const { batchSize, batches, seqLen, trained } = options;
  checkCount('batchSize', batchSize, 1);
  checkCount('batches', batches, 0);
  checkCount('trained', trained, 1);
  const slice = assignedSlice({ ...options, replica: 0, replicas: 1 });
  const perm = roundPermutation(options.runSeed, options.round, slice.windows);
  const draw = new KeyedPermutation(Math.min(trained, MAX_WINDOWS), deriveKey('concord/trained-sample/v1', options.seed));
  const out: number[][] = [];
  for (let b = 0; b < batches; b++) {
    const row: number[] = [];
    for (let s = 0; s < batchSize; s++) {
      const k = draw.at((b * batchSize + s) % draw.n);
      row.push(perm.at(slice.start + (k % slice.length)) * seqLen);
    }
    out.push(row);
  }
  return out;
}

export interface RandomBatchOptions {
  batchSize: number;
  seqLen: number;
  /** Length of the token array the batches index (train or validation). */
  tokens: number;
  batches: number;
}

/**
 * Start offsets of `batches` × `batchSize` sequences drawn by `seed` from all windows of the
 * array, without replacement while batches · batchSize ≤ W (then the order repeats).
 */
export function randomBatches(seed: Seed, options: RandomBatchOptions): number[][] {
  const { batchSize, batches, seqLen, tokens } = options;
  checkCount('batchSize', batchSize, 1);
  checkCount('batches', batches, 0);
  const windows = windowCount(tokens, seqLen);
  if (windows < 1) throw new Error(`assign: ${tokens} tokens hold no window of ${seqLen + 1} tokens`);
  const perm = new KeyedPermutation(windows, deriveKey('concord/random-batches/v1', seed));
  const out: number[][] = [];
  for (let b = 0; b < batches; b++) {
    const row: number[] = [];
    for (let s = 0; s < batchSize; s++) row.push(perm.at((b * batchSize + s) % windows) * seqLen);
    out.push(row);
  }
  return out;
}

/** Gathers one batch: input[r·seqLen + t] = tokens[offset_r + t], target = the next token. */
export function batchTokens(
  tokens: TokenSource,
  offsets: readonly number[],
  seqLen: number,
  into?: { input: Int32Array; target: Int32Array },
): { input: Int32Array; target: Int32Array } {
  const input = into?.input ?? new Int32Array(offsets.length * seqLen);
  const target = into?.target ?? new Int32Array(offsets.length * seqLen);
  if (input.length !== offsets.length * seqLen || target.length !== input.length) {
    throw new Error(`batchTokens: buffers hold ${input.length} and ${target.length} tokens, the batch needs ${offsets.length * seqLen}`);
  }
  offsets.forEach((offset, r) => {
    if (!Number.isInteger(offset) || offset < 0 || offset + seqLen + 1 > tokens.length) {
      throw new Error(`assign: sequence at ${offset} does not fit ${tokens.length} tokens`);
    }
    // One read of seqLen + 1 tokens: inputs are its first seqLen, targets its last.
    const sequence = tokens.subarray(offset, offset + seqLen + 1);
    input.set(sequence.subarray(0, seqLen), r * seqLen);
    target.set(sequence.subarray(1), r * seqLen);
  });
  return { input, target };
}
