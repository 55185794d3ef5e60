import { BitWriter } from './bits.js';
import { checkParams, HEADER_BYTES, maxPayloadBytes, riceParameter, writeHeader, type CodecParams, type PayloadHeader } from './format.js';
import { fillLevels, levelOf, lowFromRatio, ratioFor } from './quantize.js';
import { TopKSelector } from './topk.js';

export interface EncoderOptions extends CodecParams {
  /** Error feedback: the buffer is multiplied by this before the next delta is added (default 1). */
  errorDecay?: number;
  /** The error-feedback buffer to use (e.g. shared memory); a new zeroed one by default. */
  error?: Float32Array;
}

/**
 * SparseLoCo encoder with error feedback, for one flat vector of `length` values. Per call:
 * e ← decay·e + Δ; per chunk keep the top-k of e by magnitude, quantise them, write them; then
 * e ← e − decode(payload). What was not sent stays in e for the next round, so
 * Δ + decay·e_old = decode(payload) + e_new (up to float32 rounding of the subtraction).
 *
 * All buffers are allocated once; `encode` returns a view of the internal output buffer that is
 * valid until the next call (copy it to keep it).
 */
export class SparseLoCoEncoder {
  readonly error: Float32Array;
  readonly params: Required<Omit<EncoderOptions, 'error'>>;
  private readonly rice: number;
  private readonly writer: BitWriter;
  private readonly selector: TopKSelector;
  private readonly kept: Uint32Array;
  private readonly errorBits: Uint32Array;
  private readonly levels = new Float64Array(128);
  private readonly f32 = new Float32Array(1);
  private readonly u32 = new Uint32Array(this.f32.buffer);

  constructor(readonly length: number, options: EncoderOptions) {
    checkParams(options);
    if (!Number.isSafeInteger(length) || length < 1) throw new Error(`vector length must be a positive integer, got ${length}`);
    const errorDecay = options.errorDecay ?? 1;
    if (!(errorDecay >= 0 && errorDecay <= 1)) throw new Error(`compression.errorDecay must be in [0, 1], got ${errorDecay}`);
    this.params = { chunk: options.chunk, k: options.k, bits: options.bits, errorDecay };
    if (options.error !== undefined && options.error.length !== length) throw new Error(`the error buffer holds ${options.error.length} values, the vector ${length}`);
    this.error = options.error ?? new Float32Array(length);
    this.errorBits = new Uint32Array(this.error.buffer, this.error.byteOffset, length);
    this.rice = riceParameter(options.chunk, options.k);
    this.writer = new BitWriter(maxPayloadBytes(length, options, this.rice));
    this.selector = new TopKSelector(options.chunk);
    this.kept = new Uint32Array(options.k);
  }

  /** Compresses Δ (plus the error buffer) and updates the error buffer. Refuses non-finite input. */
  encode(delta: Float32Array): Uint8Array {
    const { length, writer } = this;
    const { chunk, k, bits } = this.params;
    if (delta.length !== length) throw new Error(`delta has ${delta.length} values, the encoder was made for ${length}`);
    writer.reset(maxPayloadBytes(length, this.params, this.rice), HEADER_BYTES);
    writeHeader(writer.buffer, { chunk, k, bits, rice: this.rice, length });
    this.encodeChunks(delta, 0, Math.ceil(length / chunk), writer);
    return writer.finish();
  }

  /** The header this encoder writes (for assembling a payload from chunk ranges). */
  get header(): PayloadHeader {
    const { chunk, k, bits } = this.params;
    return { chunk, k, bits, rice: this.rice, length: this.length };
  }

  /**
   * Encodes chunks [firstChunk, endChunk) into `writer`, updating their part of the error buffer:
   * the bit stream of a whole payload is these ranges back to back, so disjoint ranges can be
   * encoded on different threads (parallel-encoder.ts).
   */
  encodeChunks(delta: Float32Array, firstChunk: number, endChunk: number, writer: BitWriter): void {
    const { length, error, kept, levels } = this;
    const { chunk, k, bits, errorDecay } = this.params;
    const levelCount = 1 << (bits - 1);
    const signShift = bits - 1;
    for (let start = firstChunk * chunk; start < Math.min(length, endChunk * chunk); start += chunk) {
      const end = Math.min(start + chunk, length);
      const keep = Math.min(k, end - start);
      // e ← decay·e + Δ over the chunk, and its top-k.
      const bad = this.selector.accumulateAndSelect(error, this.errorBits, delta, errorDecay, start, end, keep, kept);
      if (bad >= 0) throw new Error(`delta + error feedback is not finite at index ${start + bad}: ${error[start + bad]}`);

      let hi = 0;
      let lo = Infinity;
      for (let j = 0; j < keep; j++) {
        const m = Math.abs(error[start + kept[j]!]!);
        if (m > hi) hi = m;
        if (m < lo) lo = m;
      }
      const ratio = ratioFor(hi, lo);
      const low = lowFromRatio(hi, ratio);
      fillLevels(levels, hi, low, levelCount);
      this.f32[0] = hi;
      writer.write(this.u32[0]!, 32);
      writer.write(ratio, 8);

      let previous = -1;
      for (let j = 0; j < keep; j++) {
        const index = kept[j]!;
        writer.writeRice(index - previous - 1, this.rice);
        previous = index;
      }
      for (let j = 0; j < keep; j++) {
        const index = start + kept[j]!;
        const value = error[index]!;
        const t = levelOf(Math.abs(value), hi, low, levelCount);
        const negative = value < 0 || Object.is(value, -0) ? 1 : 0;
        writer.write((negative << signShift) | t, bits);
        // What was sent leaves the error buffer; the quantisation error stays.
        error[index] = value - (negative ? -levels[t]! : levels[t]!);
      }
    }
  }
}
