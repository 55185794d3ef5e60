import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { compiledPath } from '../compiled.js';
import { BitWriter } from './bits.js';
import type { FromEncodeWorker, ToEncodeWorker } from './encode-worker.js';
import { SparseLoCoEncoder, type EncoderOptions } from './encoder.js';
import { HEADER_BYTES, maxPayloadBytes, writeHeader, type PayloadHeader } from './format.js';

/**
 * The SparseLoCo encoder on several threads. Chunks are independent, so each worker encodes a
 * contiguous range of them over shared memory (the delta and the error buffer), and the payload
 * is the header followed by the workers' bit streams in order: the same bytes, and the same
 * error buffer, as the single-threaded SparseLoCoEncoder (tested). After a refused encode
 * (non-finite input) the error buffer is undefined, as the single-threaded one's.
 */
export class ParallelSparseLoCoEncoder {
  /** The error-feedback buffer, in shared memory. */
  readonly error: Float32Array;
  private readonly delta: Float32Array;
  private readonly header: PayloadHeader;

  /** Where each worker writes its bit stream, and where they are joined after the header. */
  private readonly outputs: Uint8Array[];
  private readonly writer: BitWriter;

  private constructor(readonly length: number, private readonly workers: Worker[], error: Float32Array, delta: Float32Array, header: PayloadHeader, outputs: Uint8Array[]) {
    this.error = error;
    this.delta = delta;
    this.header = header;
    this.outputs = outputs;
    this.writer = new BitWriter(maxPayloadBytes(length, header, header.rice));
  }

  static async create(length: number, options: Omit<EncoderOptions, 'error'>, threads = Math.min(2, availableParallelism())): Promise<ParallelSparseLoCoEncoder> {
    // Validates the options and fixes the header exactly as the single-threaded encoder does.
    const { header } = new SparseLoCoEncoder(Math.min(length, options.chunk), options);
    const chunks = Math.ceil(length / options.chunk);
    const count = Math.max(1, Math.min(threads, chunks));
    const error = new Float32Array(new SharedArrayBuffer(length * 4));
    const delta = new Float32Array(new SharedArrayBuffer(length * 4));
    const outputs: Uint8Array[] = [];
    const workers = Array.from({ length: count }, (_, t) => {
      const firstChunk = Math.floor((t * chunks) / count);
      const endChunk = Math.floor(((t + 1) * chunks) / count);
      // A range's bit stream is at most the bound of a payload of its values.
      const values = Math.min(length, endChunk * options.chunk) - firstChunk * options.chunk;
      const output = new Uint8Array(new SharedArrayBuffer(maxPayloadBytes(values, options, header.rice)));
      outputs.push(output);
      const worker = new Worker(compiledPath('./encode-worker.js', import.meta.url));
      const init: ToEncodeWorker = { type: 'init', length, options, error: error.buffer as SharedArrayBuffer, output: output.buffer as SharedArrayBuffer, firstChunk, endChunk };
      worker.postMessage(init);
      return worker;
    });
    return new ParallelSparseLoCoEncoder(length, workers, error, delta, { ...header, length }, outputs);
  }

  /**
   * Compresses Δ (plus the error buffer) and updates the error buffer; resolves to a payload the
   * caller owns. Δ is copied into shared memory first unless it is the array `sharedDelta` returns.
   */
  async encode(delta: Float32Array): Promise<Uint8Array> {
    if (delta.length !== this.length) throw new Error(`delta has ${delta.length} values, the encoder was made for ${this.length}`);
    if (delta !== this.delta) this.delta.set(delta);
    // Wait for every worker, failed or not, so no answer is left to be mistaken for the next one's.
    const settled = await Promise.allSettled(this.workers.map((worker) => new Promise<number>((resolve, reject) => {
      const onError = (error: Error) => reject(error);
      worker.once('error', onError);
      worker.once('message', (message: FromEncodeWorker) => {
        worker.off('error', onError);
        if (message.type === 'encoded') resolve(message.bitLength);
        else reject(new Error(message.message));
      });
      worker.postMessage({ type: 'encode', delta: this.delta.buffer as SharedArrayBuffer } satisfies ToEncodeWorker);
    })));
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
    const { writer } = this;
    writer.reset(0, HEADER_BYTES);
    writeHeader(writer.buffer, this.header);
    settled.forEach((s, t) => writer.append(this.outputs[t]!, (s as PromiseFulfilledResult<number>).value));
    return writer.finish().slice();
  }

  /** A shared array to compute Δ into directly, which `encode` then reads without a copy. */
  sharedDelta(): Float32Array {
    return this.delta;
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }
}
