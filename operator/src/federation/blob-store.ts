import { createHash } from 'node:crypto';

/** Content-addressed bytes: contribution payloads and checkpoints, keyed by their SHA-256. */
export interface BlobStore {
  get(sha256: Uint8Array): Uint8Array | undefined;
}

export function sha256(bytes: Uint8Array): Buffer {
  return createHash('sha256').update(bytes).digest();
}

/** A BlobStore in memory; enough for payloads of the current round. */
export class MemoryBlobStore implements BlobStore {
  private readonly blobs = new Map<string, Uint8Array>();

  /** Stores `bytes` and returns their SHA-256. */
  put(bytes: Uint8Array): Buffer {
    const hash = sha256(bytes);
    this.blobs.set(hash.toString('hex'), bytes);
    return hash;
  }

  get(hash: Uint8Array): Uint8Array | undefined {
    return this.blobs.get(Buffer.from(hash).toString('hex'));
  }

  delete(hash: Uint8Array): void {
    this.blobs.delete(Buffer.from(hash).toString('hex'));
  }
}

/** Yields `bytes` from `offset` in chunks of at most `chunkBytes`, without copying. */
export function* chunksOf(bytes: Uint8Array, offset: number, chunkBytes: number): Generator<{ offset: number; data: Uint8Array }> {
  for (let at = offset; at < bytes.length; at += chunkBytes) {
    yield { offset: at, data: bytes.subarray(at, Math.min(at + chunkBytes, bytes.length)) };
  }
}
