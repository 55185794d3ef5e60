// A worker thread of ParallelSparseLoCoEncoder: encodes one range of chunks of a payload, reading
// the delta and updating the error buffer in shared memory, and returns its bit stream.
import { parentPort } from 'node:worker_threads';
import { BitWriter } from './bits.js';
import { SparseLoCoEncoder, type EncoderOptions } from './encoder.js';

export type ToEncodeWorker =
  | { type: 'init'; length: number; options: Omit<EncoderOptions, 'error'>; error: SharedArrayBuffer; output: SharedArrayBuffer; firstChunk: number; endChunk: number }
  | { type: 'encode'; delta: SharedArrayBuffer };

/** `encoded`: the range's bit stream is in the shared output buffer, `bitLength` bits long. */
export type FromEncodeWorker = { type: 'encoded'; bitLength: number } | { type: 'error'; message: string };

if (parentPort === null) throw new Error('encode-worker runs as a worker thread');
const port = parentPort;
let state: { encoder: SparseLoCoEncoder; writer: BitWriter; firstChunk: number; endChunk: number } | undefined;

port.on('message', (message: ToEncodeWorker) => {
  try {
    if (message.type === 'init') {
      const encoder = new SparseLoCoEncoder(message.length, { ...message.options, error: new Float32Array(message.error) });
      // The bit stream is written straight into memory the main thread reads: nothing is copied
      // or allocated per encode.
      state = { encoder, writer: new BitWriter(new Uint8Array(message.output)), firstChunk: message.firstChunk, endChunk: message.endChunk };
      return;
    }
    if (state === undefined) throw new Error('the encode worker was not initialised');
    state.writer.reset(0, 0);
    state.encoder.encodeChunks(new Float32Array(message.delta), state.firstChunk, state.endChunk, state.writer);
    const bitLength = state.writer.bitLength;
    state.writer.finish();
    port.postMessage({ type: 'encoded', bitLength } satisfies FromEncodeWorker);
  } catch (error) {
    port.postMessage({ type: 'error', message: error instanceof Error ? error.message : String(error) } satisfies FromEncodeWorker);
  }
});
