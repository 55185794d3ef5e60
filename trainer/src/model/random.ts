// Portable random numbers for parameter initialisation: identical on every machine, so every
// peer of a run can start from the same θ₀ and check it by its hash.
//
// Generator: Philox4x32-10 (Salmon et al., "Parallel Random Numbers: As Easy as 1, 2, 3", SC'11;
// the generator of cuRAND, JAX and PyTorch's CUDA RNG), a pure function of a 128-bit counter
// and a 64-bit key, written with 32-bit integer arithmetic only. Each stream is keyed by
// SHA-256 of a domain, the seed and a stream name (a parameter's name), so a tensor's values
// depend on nothing but the seed, its name and its size, never on the order of other tensors.
//
// Normals: Box–Muller in float64 from two 53-bit uniforms per pair of outputs. Math.log, cos and
// sin are V8's own ports of fdlibm (not the platform libm), so they give the same bits on every
// CPU and OS; rounding the result to float32 hides any last-ulp difference a future engine might
// still introduce. test/unit/model-params.test.ts pins the hash of an initialisation.

import { createHash } from 'node:crypto';

// Module-level bindings: inside jest's vm context every read of the global Math is intercepted
// and slows a hot loop by an order of magnitude.
const { imul, sqrt, log, cos, sin, PI } = Math;

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;
const TWO_POW_26 = 2 ** 26;
const TWO_POW_M53 = 2 ** -53;

/** High 32 bits of the 64-bit product of two uint32, exact in float64 via 16-bit halves. */
function mulhi(a: number, b: number): number {
  const al = a & 0xffff;
  const ah = a >>> 16;
  const bl = b & 0xffff;
  const bh = b >>> 16;
  const lo = al * bl;
  const m1 = ah * bl;
  const m2 = al * bh;
  const carry = ((lo >>> 16) + (m1 & 0xffff) + (m2 & 0xffff)) >>> 16;
  return (ah * bh + (m1 >>> 16) + (m2 >>> 16) + carry) >>> 0;
}

/** Philox4x32-10 of one counter block under one key; writes 4 uint32 words into `out`. */
export function philox4x32(counter: readonly [number, number, number, number], key: readonly [number, number], out: Uint32Array = new Uint32Array(4)): Uint32Array {
  philox(counter[0] >>> 0, counter[1] >>> 0, counter[2] >>> 0, counter[3] >>> 0, key[0] >>> 0, key[1] >>> 0, out);
  return out;
}

/** Ten rounds: (c0, c2) are multiplied, the products' halves swapped and xored with the key,
 * which is bumped by the Weyl constants between rounds. Arguments are uint32. */
function philox(c0: number, c1: number, c2: number, c3: number, k0: number, k1: number, out: Uint32Array): void {
  for (let round = 0; round < 10; round++) {
    if (round > 0) {
      k0 = (k0 + W0) >>> 0;
      k1 = (k1 + W1) >>> 0;
    }
    const hi0 = mulhi(M0, c0);
    const lo0 = imul(M0, c0) >>> 0;
    const hi1 = mulhi(M1, c2);
    const lo1 = imul(M1, c2) >>> 0;
    c0 = (hi1 ^ c1 ^ k0) >>> 0;
    c1 = lo1;
    c2 = (hi0 ^ c3 ^ k1) >>> 0;
    c3 = lo0;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

/** A Philox stream: key and the fixed upper half of the counter, from SHA-256 of the domain,
 * the seed (tagged by type, so 7 and "7" differ) and the stream name. */
export interface Stream {
  readonly key: readonly [number, number];
  readonly nonce: readonly [number, number];
}

export function streamOf(domain: string, seed: number | string, name: string): Stream {
  if (typeof seed === 'number' && !Number.isSafeInteger(seed)) throw new Error(`seed must be a safe integer or a string, got ${seed}`);
  const tagged = typeof seed === 'number' ? `n:${seed}` : `s:${seed}`;
  const digest = createHash('sha256').update(`${domain}\0${tagged.length}\0${tagged}\0${name}`).digest();
  return { key: [digest.readUInt32LE(0), digest.readUInt32LE(4)], nonce: [digest.readUInt32LE(8), digest.readUInt32LE(12)] };
}

/**
 * Writes `count` samples of N(0, std²) into out[offset …], rounded to float32. Pair j of the
 * stream (elements 2j and 2j+1) comes from counter block (j, 0, nonce₀, nonce₁):
 *   u₁ = 1 − (words 0,1 as a 53-bit fraction) ∈ (0, 1],  u₂ = words 2,3 as a 53-bit fraction,
 *   z₀ = √(−2 ln u₁)·cos(2πu₂),  z₁ = √(−2 ln u₁)·sin(2πu₂).
 */
export function fillNormal(out: Float32Array, offset: number, count: number, std: number, stream: Stream): void {
  if (!Number.isInteger(count) || count < 0 || offset < 0 || offset + count > out.length) throw new Error('fillNormal: range outside the array');
  if (count >= 2 ** 33) throw new Error('fillNormal: stream too long');
  const words = new Uint32Array(4);
  const [n0, n1] = stream.nonce;
  const [k0, k1] = stream.key;
  for (let j = 0; 2 * j < count; j++) {
    philox(j, 0, n0, n1, k0, k1, words);
    const u1 = 1 - ((words[0]! >>> 5) * TWO_POW_26 + (words[1]! >>> 6)) * TWO_POW_M53;
    const u2 = ((words[2]! >>> 5) * TWO_POW_26 + (words[3]! >>> 6)) * TWO_POW_M53;
    const r = std * sqrt(-2 * log(u1));
    const theta = 2 * PI * u2;
    out[offset + 2 * j] = r * cos(theta);
    if (2 * j + 1 < count) out[offset + 2 * j + 1] = r * sin(theta);
  }
}
