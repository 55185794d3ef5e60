import { BitReader } from './bits.js';
import { CodecError } from './errors.js';
import { HEADER_BYTES, readHeader, type PayloadHeader } from './format.js';
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
  const levels = new Float64Array(1 << (bits - 1));
  const reader = new BitReader(bytes, HEADER_BYTES);
  let out = 0;
  for (let c = 0; c < chunks; c++) {
    try {
      out = decodeChunk(reader, c * chunk, Math.min(chunk, length - c * chunk), Math.min(k, length - c * chunk), header, levels, indices, values, out);
    } catch (error) {
      if (error instanceof CodecError) throw new CodecError(`chunk ${c}: ${error.message}`);
      throw error;
    }
  }
  if (reader.bitsLeft >= 8) throw new CodecError(`payload has ${Math.floor(reader.bitsLeft / 8)} unexpected trailing bytes`);
  if (reader.bitsLeft > 0 && reader.read(reader.bitsLeft, 'padding') !== 0) throw new CodecError('padding bits must be zero');
  return { length, indices, values };
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Decodes one chunk's entries into indices/values from position `out`; returns the next position. */
function decodeChunk(
  reader: BitReader, start: number, size: number, keep: number, header: PayloadHeader,
  levels: Float64Array, indices: Uint32Array, values: Float32Array, out: number,
): number {
  const { bits, rice } = header;
  u32[0] = reader.read(32, 'the scale');
  const hi = f32[0]!;
  if (!Number.isFinite(hi) || hi < 0) throw new CodecError(`the scale is not finite and ≥ 0: ${hi}`);
  const ratio = reader.read(8, 'the ratio');
  const levelCount = 1 << (bits - 1);
  fillLevels(levels, hi, lowFromRatio(hi, ratio), levelCount);
  const maxQuotient = size >>> rice;
  let previous = -1;
  const first = out;
  for (let j = 0; j < keep; j++) {
    const index = previous + 1 + reader.readRice(rice, maxQuotient, 'an index');
    if (index >= size) throw new CodecError(`index ${index} is beyond its ${size} values`);
    indices[out++] = start + index;
    previous = index;
  }
  const signBit = levelCount;
  for (let j = first; j < out; j++) {
    const code = reader.read(bits, 'a value');
    const magnitude = levels[code & (signBit - 1)]!;
    values[j] = code & signBit ? -magnitude : magnitude;
  }
  return out;
}

/** Writes a sparse update into a dense vector (zeros elsewhere). */
export function densify(update: SparseUpdate, target: Float32Array = new Float32Array(update.length)): Float32Array {
  if (target.length !== update.length) throw new Error(`target has ${target.length} values, the update ${update.length}`);
  target.fill(0);
  for (let j = 0; j < update.indices.length; j++) target[update.indices[j]!] = update.values[j]!;
  return target;
}
