/**
 * A message already encoded by the handler, sent as is. For bulk chunks: protobuf-es encodes a
 * 4 MiB bytes field by growing a zero-filled buffer and copying the data twice; a chunk message
 * written by hand costs one copy.
 */
export class EncodedMessage {
  /** `dataBytes`: the payload bytes it carries (a chunk's data), for byte counters; default all. */
  constructor(readonly bytes: Uint8Array, readonly dataBytes = bytes.length) {}
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

function chunkPrefixLength(offset: number, totalBytes: number, dataLength: number): number {
  return (offset ? 1 + varintLength(offset) : 0) + (totalBytes ? 1 + varintLength(totalBytes) : 0) + (dataLength ? 1 + varintLength(dataLength) : 0);
}

function writeChunkPrefix(out: Buffer, at: number, offset: number, totalBytes: number, dataLength: number): number {
  if (offset) {
    out[at++] = (1 << 3) | 0;
    at = writeVarint(out, at, offset);
  }
  if (totalBytes) {
    out[at++] = (2 << 3) | 0;
    at = writeVarint(out, at, totalBytes);
  }
  if (dataLength) {
    out[at++] = (3 << 3) | 2;
    at = writeVarint(out, at, dataLength);
  }
  return at;
}

/**
 * Encodes a chunk message `{uint64 offset = 1; uint64 total_bytes = 2; bytes data = 3;}`, the
 * shape of FetchContributionResponse, FetchCheckpointResponse and FetchBlobResponse, exactly as
 * protobuf would (fields in order, zero values omitted), with a single copy of `data`.
 */
export function encodeChunkMessage(offset: number, totalBytes: number, data: Uint8Array): EncodedMessage {
  const out = Buffer.allocUnsafe(chunkPrefixLength(offset, totalBytes, data.length) + data.length);
  out.set(data, writeChunkPrefix(out, 0, offset, totalBytes, data.length));
  return new EncodedMessage(out, data.length);
}

/**
 * All chunk messages of a payload, `chunkBytes` of data each, laid out back to back in one
 * buffer (one allocation and one copy of the payload): a server that sends the same payload to
 * several peers encodes it once and then hands out views, copying nothing per message.
 */
export function encodeChunkMessages(payload: Uint8Array, chunkBytes: number): EncodedMessage[] {
  const total = payload.length;
  let size = 0;
  for (let offset = 0; offset < total; offset += chunkBytes) {
    const length = Math.min(chunkBytes, total - offset);
    size += chunkPrefixLength(offset, total, length) + length;
  }
  const layout = Buffer.allocUnsafe(size);
  const messages: EncodedMessage[] = [];
  let at = 0;
  for (let offset = 0; offset < total; offset += chunkBytes) {
    const length = Math.min(chunkBytes, total - offset);
    const start = at;
    at = writeChunkPrefix(layout, at, offset, total, length);
    layout.set(payload.subarray(offset, offset + length), at);
    at += length;
    messages.push(new EncodedMessage(layout.subarray(start, at), length));
  }
  return messages;
}
