import { createHash } from 'node:crypto';
import { encodeChunkMessages, type EncodedMessage } from '../../../proto/grpc/index.js';

/** Content-addressed bytes: contribution payloads and checkpoints, keyed by their SHA-256. */
export interface BlobStore {
  get(sha256: Uint8Array): Blob | undefined;
}

/** A stored payload and, made on first use and kept, its encoding as chunk messages. */
export class Blob {
  /** By chunk size; a server uses one. */
  private readonly framed = new Map<number, EncodedMessage[]>();

  constructor(readonly bytes: Uint8Array) {}

  /** The chunk messages of this payload at `chunkBytes` per message (see encodeChunkMessages). */
  chunkMessages(chunkBytes: number): readonly EncodedMessage[] {
    let messages = this.framed.get(chunkBytes);
    if (messages === undefined) {
      messages = encodeChunkMessages(this.bytes, chunkBytes);
      this.framed.set(chunkBytes, messages);
    }
    return messages;
  }
}

export function sha256(bytes: Uint8Array): Buffer {
  return createHash('sha256').update(bytes).digest();
}

/** A BlobStore in memory; enough for payloads of the current round. */
export class MemoryBlobStore implements BlobStore {
  private readonly blobs = new Map<string, Blob>();

  /** Stores `bytes` and returns their SHA-256. */
  put(bytes: Uint8Array): Buffer {
    const hash = sha256(bytes);
    this.blobs.set(hash.toString('hex'), new Blob(bytes));
    return hash;
  }

  /** Stores `bytes` under a name that is not their SHA-256 (a checkpoint, named by its model hash). */
  set(key: Uint8Array, bytes: Uint8Array): void {
    this.blobs.set(Buffer.from(key).toString('hex'), new Blob(bytes));
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
