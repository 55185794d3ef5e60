// Writing a split's token stream as shards (shards.ts): fixed-size flat little-endian arrays,
// each named, counted and hashed for the manifest as it is written.
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { bytesPerToken, type ShardEntry, type Split, type TokenDtype } from './shards.js';

/** Writes one split's tokens into shards of `shardTokens` tokens (the last one shorter). */
export class ShardWriter {
  private readonly buffer: Uint16Array | Uint32Array;
  private filled = 0;
  private readonly entries: ShardEntry[] = [];

  constructor(private readonly dir: string, private readonly split: Split, dtype: TokenDtype, shardTokens: number) {
    this.buffer = dtype === 'uint16' ? new Uint16Array(shardTokens) : new Uint32Array(shardTokens);
  }

  async push(ids: ArrayLike<number>): Promise<void> {
    for (let i = 0; i < ids.length; i++) {
      this.buffer[this.filled++] = ids[i]!;
      if (this.filled === this.buffer.length) await this.flush();
    }
  }

  async close(): Promise<ShardEntry[]> {
    if (this.filled > 0) await this.flush();
    return this.entries;
  }

  private async flush(): Promise<void> {
    const name = `${this.split}-${String(this.entries.length).padStart(5, '0')}.bin`;
    const path = join(this.dir, name);
    // Little-endian on every machine: the bytes are the dataset's identity.
    const bytes = Buffer.alloc(this.filled * bytesPerToken(this.buffer instanceof Uint16Array ? 'uint16' : 'uint32'));
    for (let i = 0; i < this.filled; i++) {
      if (this.buffer instanceof Uint16Array) bytes.writeUInt16LE(this.buffer[i]!, 2 * i);
      else bytes.writeUInt32LE(this.buffer[i]!, 4 * i);
    }
    let file: FileHandle | undefined;
    try {
      file = await open(path, 'wx');
      await file.write(bytes);
    } finally {
      await file?.close();
    }
    this.entries.push({ name, tokens: this.filled, sha256: createHash('sha256').update(bytes).digest('hex') });
    this.filled = 0;
  }
}

