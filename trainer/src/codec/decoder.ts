import { BitReader } from './bits.js';
import { CodecError } from './errors.js';
import { HEADER_BYTES, readHeader } from './format.js';
import { fillLevels, lowFromRatio } from './quantize.js';

/** A decoded contribution: the kept positions of the flat vector (ascending) and their values. */
export interface SparseUpdate {
  readonly length: number;
  readonly indices: Uint32Array;
  readonly values: Float32Array;
}

/**
 * Decodes a payload for a vector of `expectedLength` values (the model's size: the header must
 * agree, so a forged header cannot make the decoder allocate more than the model). Every bound is
 * checked; a bad payload throws a CodecError that names the problem.
 */
export function decodePayload(bytes: Uint8Array, expectedLength: number): SparseUpdate {
  const header = readHeader(bytes, expectedLength);
  const { chunk, k, bits, rice, length } = header;
  const chunks = Math.ceil(length / chunk);
  const total = (chunks - 1) * k + Math.min(k, length - (chunks - 1) * chunk);
  // A cheap bound before allocating: every kept value takes at least 1 + rice + bits bits.
  const minBits = chunks * 40 + total * (1 + rice + bits);
  if ((bytes.length - HEADER_BYTES) * 8 < minBits) throw new CodecError(`payload of ${bytes.length} bytes is too short for ${total} values`);
  const indices = new Uint32Array(total);
  const values = new Float32Array(total);
  const levelCount = 1 << (bits - 1);
  const levels = new Float64Array(levelCount);
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  const reader = new BitReader(bytes, HEADER_BYTES);
  let out = 0;
  for (let c = 0; c < chunks; c++) {
    const start = c * chunk;
    const size = Math.min(chunk, length - start);
    const keep = Math.min(k, size);
    u32[0] = reader.read(32, `the scale of chunk ${c}`);
    const hi = f32[0]!;
    if (!Number.isFinite(hi) || hi < 0) throw new CodecError(`chunk ${c} has a scale that is not finite and ≥ 0: ${hi}`);
    const ratio = reader.read(8, `the ratio of chunk ${c}`);
    fillLevels(levels, hi, lowFromRatio(hi, ratio), levelCount);
    let previous = -1;
    const first = out;
    for (let j = 0; j < keep; j++) {
      const index = previous + 1 + reader.readRice(rice, size >>> rice, `index ${j} of chunk ${c}`);
      if (index >= size) throw new CodecError(`index ${index} of chunk ${c} is beyond its ${size} values`);
      indices[out++] = start + index;
      previous = index;
    }
    const signBit = 1 << (bits - 1);
    for (let j = first; j < out; j++) {
      const code = reader.read(bits, `value ${j - first} of chunk ${c}`);
      const magnitude = levels[code & (signBit - 1)]!;
      values[j] = code & signBit ? -magnitude : magnitude;
    }
  }
  if (reader.bitsLeft >= 8) throw new CodecError(`payload has ${Math.floor(reader.bitsLeft / 8)} unexpected trailing bytes`);
  if (reader.bitsLeft > 0 && reader.read(reader.bitsLeft, 'padding') !== 0) throw new CodecError('padding bits must be zero');
  return { length, indices, values };
}

/** Writes a sparse update into a dense vector (zeros elsewhere). */
export function densify(update: SparseUpdate, target: Float32Array = new Float32Array(update.length)): Float32Array {
  if (target.length !== update.length) throw new Error(`target has ${target.length} values, the update ${update.length}`);
  target.fill(0);
  for (let j = 0; j < update.indices.length; j++) target[update.indices[j]!] = update.values[j]!;
  return target;
}
