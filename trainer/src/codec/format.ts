/**
 * SparseLoCo payload, format version 1. All multi-byte header fields little-endian.
 *
 *   offset  size  field
 *   0       2     magic "SL"
 *   2       1     version = 1
 *   3       1     bits: bits per kept value, 1..8 (1 sign bit + bits−1 magnitude bits)
 *   4       4     chunk: values per chunk, 1..2^24
 *   8       4     k: values kept per chunk, 1..chunk (a shorter last chunk keeps min(k, its length))
 *   12      1     rice: Rice parameter of the index gaps, 0..24
 *   13      3     reserved, zero
 *   16      8     length: number of values of the whole vector (the "shape": a flat vector)
 *   24      ...   bit stream, most significant bit first, chunk after chunk:
 *                   32 bits  hi: largest kept magnitude, IEEE float32 bits (finite, ≥ 0)
 *                    8 bits  ratio r: lo = hi·r/255 ≤ the smallest kept magnitude
 *                   k_c ×    index gap, Rice-coded: index − previous index − 1 (previous = −1)
 *                   k_c ×    value code, `bits` bits: sign (high bit) then magnitude level t
 *                 then zero bits to the end of the last byte.
 *
 * Indices are strictly increasing by construction, so a payload cannot name an index twice.
 * A kept value decodes to ±(lo + (t + ½)·w) with w = (hi − lo) / 2^(bits−1), rounded to float32:
 * the error of a kept value is at most w/2 = (hi − lo) / 2^bits (plus float32 rounding). As lo is
 * stored as an 8-bit fraction of hi, rounded down, lo ≥ (smallest kept magnitude) − hi/255: the
 * bound in terms of the kept values is (hi − min + hi/255) / 2^bits.
 */
import { CodecError } from './errors.js';

export const FORMAT_VERSION = 1;
export const HEADER_BYTES = 24;
export const MAX_CHUNK = 1 << 24;
export const MAX_RICE = 24;

export interface CodecParams {
  /** Values per chunk. */
  chunk: number;
  /** Values kept per chunk. */
  k: number;
  /** Bits per kept value (1 sign + bits−1 magnitude). */
  bits: number;
}

export interface PayloadHeader extends CodecParams {
  rice: number;
  length: number;
}

export function checkParams(params: CodecParams): void {
  const { chunk, k, bits } = params;
  if (!Number.isInteger(chunk) || chunk < 1 || chunk > MAX_CHUNK) throw new Error(`compression.chunk must be an integer from 1 to ${MAX_CHUNK}, got ${chunk}`);
  if (!Number.isInteger(k) || k < 1 || k > chunk) throw new Error(`compression.topk must be an integer from 1 to chunk (${chunk}), got ${k}`);
  if (!Number.isInteger(bits) || bits < 1 || bits > 8) throw new Error(`compression.bits must be an integer from 1 to 8, got ${bits}`);
}

/** Rice parameter for gaps between k of `chunk` positions: about log2 of the mean gap, less one. */
export function riceParameter(chunk: number, k: number): number {
  return Math.max(0, Math.min(MAX_RICE, Math.round(Math.log2(chunk / k)) - 1));
}

export function writeHeader(target: Uint8Array, header: PayloadHeader): void {
  const view = new DataView(target.buffer, target.byteOffset, HEADER_BYTES);
  target[0] = 0x53; // S
  target[1] = 0x4c; // L
  view.setUint8(2, FORMAT_VERSION);
  view.setUint8(3, header.bits);
  view.setUint32(4, header.chunk, true);
  view.setUint32(8, header.k, true);
  view.setUint8(12, header.rice);
  view.setUint8(13, 0);
  view.setUint16(14, 0, true);
  view.setBigUint64(16, BigInt(header.length), true);
}

/** Reads and checks the header; `expectedLength` comes from the model, never from the payload. */
export function readHeader(bytes: Uint8Array, expectedLength: number): PayloadHeader {
  if (bytes.length < HEADER_BYTES) throw new CodecError(`payload of ${bytes.length} bytes is shorter than the ${HEADER_BYTES}-byte header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
  if (bytes[0] !== 0x53 || bytes[1] !== 0x4c) throw new CodecError('not a SparseLoCo payload (bad magic)');
  const version = view.getUint8(2);
  if (version !== FORMAT_VERSION) throw new CodecError(`unknown payload version ${version} (this decoder reads ${FORMAT_VERSION})`);
  const bits = view.getUint8(3);
  const chunk = view.getUint32(4, true);
  const k = view.getUint32(8, true);
  const rice = view.getUint8(12);
  if (view.getUint8(13) !== 0 || view.getUint16(14, true) !== 0) throw new CodecError('reserved header bytes must be zero');
  const length = view.getBigUint64(16, true);
  if (bits < 1 || bits > 8) throw new CodecError(`bits must be 1 to 8, got ${bits}`);
  if (chunk < 1 || chunk > MAX_CHUNK) throw new CodecError(`chunk must be 1 to ${MAX_CHUNK}, got ${chunk}`);
  if (k < 1 || k > chunk) throw new CodecError(`k must be 1 to chunk (${chunk}), got ${k}`);
  if (rice > MAX_RICE) throw new CodecError(`Rice parameter must be 0 to ${MAX_RICE}, got ${rice}`);
  if (length !== BigInt(expectedLength)) throw new CodecError(`payload is for ${length} values, the model has ${expectedLength}`);
  return { bits, chunk, k, rice, length: expectedLength };
}

/** Upper bound of an encoded payload's size in bytes, for preallocation. */
export function maxPayloadBytes(length: number, params: CodecParams, rice: number): number {
  const chunks = Math.ceil(length / params.chunk);
  const kept = Math.min(length, chunks * params.k);
  // Per chunk: 40 bits of scales; per kept value: 1 stop bit, `rice` bits and `bits` bits; unary
  // quotients add up to at most chunk >> rice per chunk (the gaps of a chunk sum to < chunk).
  const bits = chunks * 40 + kept * (1 + rice + params.bits) + chunks * (Math.floor(params.chunk / 2 ** rice) + 1);
  return HEADER_BYTES + Math.ceil(bits / 8) + 8;
}
