/**
 * A message already encoded by the handler, sent as is. For bulk chunks: protobuf-es encodes a
 * 4 MiB bytes field by growing a zero-filled buffer and copying the data twice; a chunk message
 * written by hand costs one copy.
 */
export class EncodedMessage {
  constructor(readonly bytes: Uint8Array) {}
}

/** A Buffer over the same memory as `bytes` (grpc-js wants Buffers; no copy). */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function varintLength(value: number): number {
  let length = 1;
  while (value >= 128) {
    value = Math.floor(value / 128);
    length++;
  }
  return length;
}

function writeVarint(target: Buffer, at: number, value: number): number {
  while (value >= 128) {
    target[at++] = (value % 128) | 128;
    value = Math.floor(value / 128);
  }
  target[at++] = value;
  return at;
}

/**
 * Encodes a chunk message `{uint64 offset = 1; uint64 total_bytes = 2; bytes data = 3;}`, the
 * shape of FetchContributionResponse, FetchCheckpointResponse and FetchBlobResponse, exactly as
 * protobuf would (fields in order, zero values omitted), with a single copy of `data`.
 */
export function encodeChunkMessage(offset: number, totalBytes: number, data: Uint8Array): EncodedMessage {
  const prefix = (offset ? 1 + varintLength(offset) : 0) + (totalBytes ? 1 + varintLength(totalBytes) : 0) + (data.length ? 1 + varintLength(data.length) : 0);
  const out = Buffer.allocUnsafe(prefix + data.length);
  let at = 0;
  if (offset) {
    out[at++] = (1 << 3) | 0;
    at = writeVarint(out, at, offset);
  }
  if (totalBytes) {
    out[at++] = (2 << 3) | 0;
    at = writeVarint(out, at, totalBytes);
  }
  if (data.length) {
    out[at++] = (3 << 3) | 2;
    at = writeVarint(out, at, data.length);
    out.set(data, at);
  }
  return new EncodedMessage(out);
}
