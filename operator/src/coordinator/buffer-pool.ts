/**
 * Model-sized scratch buffers, reused: a trainer's uploaded pseudo-gradient in one phase of a
 * round, the aggregate in another. Handing the same memory round after round keeps the
 * coordinator's peak RSS at its live set instead of its live set plus V8's uncollected garbage.
 */
export class BufferPool {
  private readonly free: Uint8Array[] = [];

  /** `bytes`: the size of every buffer; `keep`: how many free buffers are kept at most. */
  constructor(readonly bytes: number, private readonly keep = 2) {
    if (!(Number.isSafeInteger(bytes) && bytes > 0 && bytes % 4 === 0)) throw new Error(`buffer size must be a positive multiple of 4, got ${bytes}`);
  }

  /** A buffer of `bytes` (contents undefined), on a fresh ArrayBuffer so float32 views align. */
  take(): Uint8Array {
    return this.free.pop() ?? new Uint8Array(new ArrayBuffer(this.bytes));
  }

  /** Gives a buffer back; it must not be used afterwards. Anything else than a whole pool buffer is dropped. */
  give(buffer: Uint8Array | Float32Array): void {
    const bytes = new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    if (bytes.byteLength !== this.bytes || bytes.byteOffset !== 0 || bytes.buffer.byteLength !== this.bytes) return;
    if (this.free.length < this.keep && !this.free.some((f) => f.buffer === bytes.buffer)) this.free.push(bytes);
  }
}
