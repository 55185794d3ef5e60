// Reading a split of a prepared dataset without holding it in memory: a TokenSource over its
// shard files. A training step reads a few sequences (seqLen + 1 tokens each) at offsets that
// assign() draws over the whole split; each read is one positioned read of the file (or two, at
// a shard boundary), so memory stays at one sequence whatever the dataset's size, and the page
// cache does the rest.
import { closeSync, openSync, readSync } from 'node:fs';
import { endianness } from 'node:os';
import { join } from 'node:path';
import type { TokenArray, TokenSource } from './dataset.js';
import { bytesPerToken, DatasetError, type DatasetManifest, type ShardEntry } from './shards.js';

export class ShardReader implements TokenSource {
  readonly length: number;
  private readonly width: number;
  /** First token of each shard in the split, and one past the last. */
  private readonly starts: number[];
  private readonly fds: Array<number | undefined>;

  constructor(private readonly dir: string, private readonly manifest: DatasetManifest, private readonly shards: readonly ShardEntry[]) {
    this.width = bytesPerToken(manifest.dtype);
    this.starts = [0];
    for (const shard of shards) this.starts.push(this.starts.at(-1)! + shard.tokens);
    this.length = this.starts.at(-1)!;
    this.fds = shards.map(() => undefined);
  }

  /** Tokens [start, end) as a fresh array (Uint16Array for 16-bit shards, Int32Array otherwise). */
  subarray(start: number, end: number): TokenArray {
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > this.length || end < start) {
      throw new RangeError(`shards: tokens [${start}, ${end}) are outside the split's ${this.length}`);
    }
    const out: TokenArray = this.width === 2 ? new Uint16Array(end - start) : new Int32Array(end - start);
    const bytes = new Uint8Array(out.buffer);
    let at = start;
    while (at < end) {
      const i = this.shardOf(at);
      const upto = Math.min(end, this.starts[i + 1]!);
      const count = (upto - at) * this.width;
      const into = (at - start) * this.width;
      const read = readSync(this.fd(i), bytes, into, count, (at - this.starts[i]!) * this.width);
      if (read !== count) throw new DatasetError(join(this.dir, this.shards[i]!.name), `ended after ${read} of ${count} bytes at token ${at - this.starts[i]!}: the shard changed since it was verified`);
      at = upto;
    }
    if (endianness() !== 'LE') {
      const view = new DataView(out.buffer);
      for (let k = 0; k < out.length; k++) out[k] = this.width === 2 ? view.getUint16(2 * k, true) : view.getUint32(4 * k, true);
    }
    return out;
  }

  close(): void {
    for (const [i, fd] of this.fds.entries()) {
      if (fd !== undefined) closeSync(fd);
      this.fds[i] = undefined;
    }
  }

  private fd(i: number): number {
    this.fds[i] ??= openSync(join(this.dir, this.shards[i]!.name), 'r');
    return this.fds[i]!;
  }

  /** The shard holding token `at` (binary search over the shards' starts). */
  private shardOf(at: number): number {
    let low = 0;
    let high = this.shards.length - 1;
    while (low < high) {
      const mid = (low + high + 1) >> 1;
      if (this.starts[mid]! <= at) low = mid;
      else high = mid - 1;
    }
    return low;
  }
}
