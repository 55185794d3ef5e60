import { createHash } from 'node:crypto';
import { encodeChunkMessage, encodeChunkMessages, type EncodedMessage } from '../../../proto/grpc/index.js';

/** Content-addressed bytes: contribution payloads and checkpoints, keyed by their SHA-256. */
export interface BlobStore {
  get(sha256: Uint8Array): Blob | undefined;
}

/**
 * A stored payload and its encoding as chunk messages: made on first use and kept when `cache` is
 * on (a contribution payload, streamed to every peer: encoded once), or made chunk by chunk as it
 * is streamed when off (model parameters and checkpoints, streamed rarely: a kept encoding would
 * double the model's bytes in memory).
 */
export class Blob {
  /** By chunk size; a server uses one. */
  private readonly framed = new Map<number, EncodedMessage[]>();

  constructor(readonly bytes: Uint8Array, readonly cache = true) {}

  /**
   * The chunk messages of this payload at `chunkBytes` per message (see encodeChunkMessages), from
   * chunk `first` on. Servers iterate with `for await`, so a blob that streams itself otherwise
   * (a test's trickling attacker) may return an async iterable.
   */
  chunkMessages(chunkBytes: number, first = 0): Iterable<EncodedMessage> | AsyncIterable<EncodedMessage> {
    return this.encoded(chunkBytes, first);
  }

  private *encoded(chunkBytes: number, first: number): Generator<EncodedMessage> {
    if (!this.cache) {
      for (let at = first * chunkBytes; at < this.bytes.length; at += chunkBytes) {
        yield encodeChunkMessage(at, this.bytes.length, this.bytes.subarray(at, Math.min(this.bytes.length, at + chunkBytes)));
      }
      return;
    }
    let messages = this.framed.get(chunkBytes);
    if (messages === undefined) {
      messages = encodeChunkMessages(this.bytes, chunkBytes);
      this.framed.set(chunkBytes, messages);
    }
    for (let index = first; index < messages.length; index++) yield messages[index]!;
  }
}

export function sha256(bytes: Uint8Array): Buffer {
  return createHash('sha256').update(bytes).digest();
}

/** A BlobStore in memory; enough for payloads of the current round. */
export class MemoryBlobStore implements BlobStore {
  private readonly blobs = new Map<string, Blob>();

  /** Stores `bytes` and returns their SHA-256. `cache`: see Blob. */
  put(bytes: Uint8Array, cache = true): Buffer {
    const hash = sha256(bytes);
    this.blobs.set(hash.toString('hex'), new Blob(bytes, cache));
    return hash;
  }

  /** Stores `bytes` under a name that is not their SHA-256 (a checkpoint, named by its model hash). */
  set(key: Uint8Array, bytes: Uint8Array, cache = true): void {
    this.blobs.set(Buffer.from(key).toString('hex'), new Blob(bytes, cache));
  }

  /** Stores a blob as it is under `key` (a blob that streams itself differently: tests' attackers). */
  setBlob(key: Uint8Array, blob: Blob): void {
    this.blobs.set(Buffer.from(key).toString('hex'), blob);
  }

  get(hash: Uint8Array): Blob | undefined {
    return this.blobs.get(Buffer.from(hash).toString('hex'));
  }

  delete(hash: Uint8Array): void {
    this.blobs.delete(Buffer.from(hash).toString('hex'));
  }

  /** Drops every blob whose key is not in `keep`. */
  retain(keep: Iterable<Uint8Array>): void {
    const kept = new Set([...keep].map((key) => Buffer.from(key).toString('hex')));
    for (const key of this.blobs.keys()) if (!kept.has(key)) this.blobs.delete(key);
  }
}
