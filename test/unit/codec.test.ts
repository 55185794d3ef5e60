import { describe, expect, it } from '@jest/globals';
import { CodecError, decodePayload, densify, SparseLoCoEncoder } from '../../trainer/src/codec/index.js';

/** Deterministic Gaussian-ish values (sum of uniforms from a small PRNG). */
function gaussian(n: number, seed: number, scale = 1e-3): Float32Array {
  let state = seed >>> 0;
  const next = () => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  return Float32Array.from({ length: n }, () => (next() + next() + next() + next() - 2) * scale);
}

/** The reference top-k: sort by magnitude descending, ties by index. */
function referenceTopK(values: Float32Array, k: number): number[] {
  return [...values.keys()].sort((a, b) => Math.abs(values[b]!) - Math.abs(values[a]!) || a - b).slice(0, k).sort((a, b) => a - b);
}

const TEMPLAR = { chunk: 4096, k: 64, bits: 2 };

describe('SparseLoCo codec', () => {
  it('keeps exactly the top-k of each chunk and reconstructs each kept value within (hi − lo + hi/255) / 2^bits', () => {
    for (const params of [TEMPLAR, { chunk: 1000, k: 37, bits: 3 }, { chunk: 256, k: 256, bits: 8 }, { chunk: 50, k: 1, bits: 1 }]) {
      const n = 10_007; // a short last chunk
      const delta = gaussian(n, 7);
      const encoder = new SparseLoCoEncoder(n, params);
      const update = decodePayload(encoder.encode(delta), n);
      const expected: number[] = [];
      for (let start = 0; start < n; start += params.chunk) {
        const chunk = delta.subarray(start, Math.min(n, start + params.chunk));
        const top = referenceTopK(chunk, Math.min(params.k, chunk.length));
        expected.push(...top.map((i) => i + start));
        const magnitudes = top.map((i) => Math.abs(chunk[i]!));
        const hi = Math.max(...magnitudes);
        const bound = (hi - Math.min(...magnitudes) + hi / 255) / 2 ** params.bits;
        for (const i of top) {
          const j = update.indices.indexOf(i + start);
          expect(Math.abs(update.values[j]! - chunk[i]!)).toBeLessThanOrEqual(bound * (1 + 1e-6) + Math.abs(chunk[i]!) * 2 ** -23 + 1e-12);
          expect(Math.sign(update.values[j]!)).toBe(Math.sign(chunk[i]!));
        }
      }
      expect([...update.indices]).toEqual(expected);
    }
  });

  it('breaks ties toward the lower index, on the sampled and on the exact path alike', () => {
    const n = 8192;
    const cases: Array<[string, Float32Array]> = [
      ['all equal', new Float32Array(n).fill(0.5)],
      ['zeros but a few', Float32Array.from({ length: n }, (_, i) => (i % 1000 === 7 ? 1 : 0))],
      ['two levels', Float32Array.from({ length: n }, (_, i) => (i % 3 === 0 ? -2 : 1))],
      ['steep', Float32Array.from({ length: n }, (_, i) => Math.exp(-i / 50) * (i % 2 ? 1 : -1))],
    ];
    for (const [, delta] of cases) {
      const update = decodePayload(new SparseLoCoEncoder(n, TEMPLAR).encode(delta), n);
      const expected = [...referenceTopK(delta.subarray(0, 4096), 64), ...referenceTopK(delta.subarray(4096), 64).map((i) => i + 4096)];
      expect([...update.indices]).toEqual(expected);
    }
  });

  it('conserves mass with error feedback: Δ + decay·e_old = decode(c) + e_new', () => {
    for (const errorDecay of [1, 0.9]) {
      const n = 9000;
      const encoder = new SparseLoCoEncoder(n, { ...TEMPLAR, errorDecay });
      for (let round = 0; round < 4; round++) {
        const delta = gaussian(n, 100 + round);
        const before = encoder.error.slice();
        const decoded = densify(decodePayload(encoder.encode(delta), n));
        let worst = 0;
        for (let i = 0; i < n; i++) {
          const lhs = Math.fround(errorDecay * before[i]! + delta[i]!);
          const rhs = decoded[i]! + encoder.error[i]!;
          // One float32 rounding, of e_new = lhs − decoded.
          worst = Math.max(worst, Math.abs(lhs - rhs) / (Math.abs(lhs) * 2 ** -23 + 1e-30));
        }
        expect(worst).toBeLessThanOrEqual(1);
      }
    }
  });

  it('sends what was left behind in later rounds: the error buffer does not grow without bound', () => {
    const n = 8192;
    const encoder = new SparseLoCoEncoder(n, TEMPLAR);
    const delta = gaussian(n, 3);
    const sent = new Float64Array(n);
    const rounds = 200;
    for (let round = 0; round < rounds; round++) {
      const update = decodePayload(encoder.encode(delta), n);
      for (let j = 0; j < update.indices.length; j++) sent[update.indices[j]!]! += update.values[j]!;
    }
    // Over many rounds the sum sent approaches rounds·Δ for every coordinate; the rest is in e.
    let worst = 0;
    for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(sent[i]! + encoder.error[i]! - rounds * delta[i]!));
    expect(worst).toBeLessThan(1e-5);
    const residual = Math.max(...encoder.error.map(Math.abs));
    expect(residual).toBeLessThan(rounds * Math.max(...delta.map(Math.abs)) / 4);
  });

  it(`compresses Templar's density (top 64 of 4096, 2 bits) more than 146× vs float32, aiming at 200×`, () => {
    const n = 4096 * 256;
    const payload = new SparseLoCoEncoder(n, TEMPLAR).encode(gaussian(n, 11));
    const ratio = (n * 4) / payload.length;
    expect(ratio).toBeGreaterThan(146);
    expect(ratio).toBeGreaterThan(195);
  });

  it('encodes identically twice: same input, same bytes', () => {
    const n = 20_000;
    const delta = gaussian(n, 5);
    const a = Buffer.from(new SparseLoCoEncoder(n, TEMPLAR).encode(delta));
    const b = Buffer.from(new SparseLoCoEncoder(n, TEMPLAR).encode(delta));
    expect(a.equals(b)).toBe(true);
  });

  it('refuses non-finite input and bad parameters, naming them', () => {
    const delta = gaussian(5000, 1);
    delta[4100] = NaN;
    expect(() => new SparseLoCoEncoder(5000, TEMPLAR).encode(delta)).toThrow(/not finite at index 4100/);
    expect(() => new SparseLoCoEncoder(100, { chunk: 64, k: 65, bits: 2 })).toThrow(/topk must be an integer from 1 to chunk \(64\), got 65/);
    expect(() => new SparseLoCoEncoder(100, { chunk: 64, k: 8, bits: 9 })).toThrow(/bits must be an integer from 1 to 8/);
    expect(() => new SparseLoCoEncoder(100, { ...TEMPLAR, errorDecay: 1.5 })).toThrow(/errorDecay must be in \[0, 1\]/);
  });

  it('refuses malformed payloads with an error that names the problem', () => {
    const n = 10_000;
    const payload = Buffer.from(new SparseLoCoEncoder(n, TEMPLAR).encode(gaussian(n, 9)));
    const damaged = (offset: number, value: number) => {
      const copy = Buffer.from(payload);
      copy[offset] = value;
      return copy;
    };
    expect(() => decodePayload(payload.subarray(0, 10), n)).toThrow(/shorter than the 24-byte header/);
    expect(() => decodePayload(damaged(0, 0), n)).toThrow(/bad magic/);
    expect(() => decodePayload(damaged(2, 9), n)).toThrow(/unknown payload version 9/);
    expect(() => decodePayload(damaged(3, 0), n)).toThrow(/bits must be 1 to 8, got 0/);
    expect(() => decodePayload(damaged(13, 1), n)).toThrow(/reserved/);
    expect(() => decodePayload(payload, n + 1)).toThrow(/payload is for 10000 values, the model has 10001/);
    expect(() => decodePayload(payload.subarray(0, payload.length - 20), n)).toThrow(/payload ends inside|too short/);
    expect(() => decodePayload(Buffer.concat([payload, Buffer.alloc(3)]), n)).toThrow(/3 unexpected trailing bytes/);
    // A NaN scale in the first chunk (float32 bits 0x7fc00000).
    const nanScale = Buffer.from(payload);
    nanScale.writeUInt32BE(0x7fc00000, 24);
    expect(() => decodePayload(nanScale, n)).toThrow(/chunk 0: the scale is not finite/);
    // An index gap that runs past the chunk.
    const forgedGap = Buffer.from(payload);
    forgedGap.fill(0xff, 29, 40);
    expect(() => decodePayload(forgedGap, n)).toThrow(CodecError);
  });

  it('survives 10,000 mutated payloads: each decodes to a valid update or throws a CodecError', () => {
    const n = 6000;
    const payload = Buffer.from(new SparseLoCoEncoder(n, { chunk: 512, k: 16, bits: 2 }).encode(gaussian(n, 13)));
    let state = 99;
    const random = (m: number) => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) % m);
    let refused = 0;
    let accepted = 0;
    const arrayBuffersBefore = process.memoryUsage().arrayBuffers;
    for (let trial = 0; trial < 10_000; trial++) {
      let bytes = Buffer.from(payload);
      const edits = 1 + random(4);
      for (let e = 0; e < edits; e++) {
        const at = random(bytes.length);
        switch (random(5)) {
          case 0: bytes[at]! ^= 1 << random(8); break;
          case 1: bytes[at] = random(256); break;
          case 2: bytes = bytes.subarray(0, at); break;
          case 3: bytes = Buffer.concat([bytes, Buffer.from([random(256)])]); break;
          default: if (bytes.length >= 4) bytes.writeUInt32LE(random(2 ** 32), Math.min(at, bytes.length - 4)); break;
        }
        if (bytes.length === 0) break;
      }
      try {
        const update = decodePayload(bytes, n);
        // Accepted: then it must be a well-formed update of the model's size (checked by hand:
        // an expect() per value would dominate the run time).
        for (let j = 0; j < update.indices.length; j++) {
          const index = update.indices[j]!;
          if (index >= n || (j > 0 && index <= update.indices[j - 1]!) || !Number.isFinite(update.values[j]!)) {
            throw new Error(`accepted a bad update at entry ${j}: index ${index}, value ${update.values[j]}`);
          }
        }
        accepted++;
      } catch (error) {
        if (!(error instanceof CodecError)) throw error;
        refused++;
      }
    }
    expect(refused + accepted).toBe(10_000);
    expect(refused).toBeGreaterThan(5000);
    // No forged header made the decoder allocate beyond the model's size.
    expect(process.memoryUsage().arrayBuffers - arrayBuffersBefore).toBeLessThan(64 * 1024 * 1024);
  });

  it('refuses a forged header that claims a huge vector before allocating anything', () => {
    const payload = Buffer.from(new SparseLoCoEncoder(1000, TEMPLAR).encode(gaussian(1000, 2)));
    payload.writeBigUInt64LE(2n ** 40n, 16);
    expect(() => decodePayload(payload, 1000)).toThrow(/payload is for 1099511627776 values, the model has 1000/);
  });
});
