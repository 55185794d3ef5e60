// SparseLoCo: chunked top-k with error feedback and low-bit values (see format.ts for the bytes).
export { SparseLoCoEncoder, type EncoderOptions } from './encoder.js';
export { ParallelSparseLoCoEncoder } from './parallel-encoder.js';
export { decodePayload, densify, type SparseUpdate } from './decoder.js';
export { CodecError } from './errors.js';
export { checkParams, FORMAT_VERSION, HEADER_BYTES, type CodecParams } from './format.js';
