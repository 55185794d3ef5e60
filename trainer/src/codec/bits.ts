/**
 * Bit-level writer and reader, most significant bit first, over a byte buffer. The reader never
 * reads past the end: it throws a CodecError naming what it was reading.
 */
import { CodecError } from './errors.js';

export class BitWriter {
  private bytes: Uint8Array;
  private position = 0; // in bits

  constructor(capacityBytes: number) {
    this.bytes = new Uint8Array(capacityBytes);
  }

  /** Starts over, keeping the buffer (grown to `capacityBytes` if needed). */
  reset(capacityBytes: number, startByte: number): void {
    if (this.bytes.length < capacityBytes) this.bytes = new Uint8Array(capacityBytes);
    this.bytes.fill(0, startByte, Math.min(capacityBytes, this.bytes.length));
    this.position = startByte * 8;
  }

  get buffer(): Uint8Array {
    return this.bytes;
  }

  /** Bytes written so far, the last one zero-padded. */
  get byteLength(): number {
    return Math.ceil(this.position / 8);
  }

  /** Writes the low `count` bits of `value` (count ≤ 32). The buffer must be zero beyond the position. */
  write(value: number, count: number): void {
    let remaining = count;
    while (remaining > 0) {
      const byte = this.position >>> 3;
      const free = 8 - (this.position & 7);
      const take = remaining < free ? remaining : free;
      const bits = (value >>> (remaining - take)) & ((1 << take) - 1);
      this.bytes[byte]! |= bits << (free - take);
      this.position += take;
      remaining -= take;
    }
  }

  /** Rice code of `value` ≥ 0 with parameter `b`: unary quotient (ones, then a zero), then b bits. */
  writeRice(value: number, b: number): void {
    let quotient = value >>> b;
    while (quotient >= 16) {
      this.write(0xffff, 16);
      quotient -= 16;
    }
    this.write(((1 << quotient) - 1) << 1, quotient + 1);
    if (b > 0) this.write(value & ((1 << b) - 1), b);
  }
}

export class BitReader {
  private position: number; // in bits
  private readonly end: number; // in bits

  constructor(private readonly bytes: Uint8Array, startByte: number) {
    this.position = startByte * 8;
    this.end = bytes.length * 8;
  }

  get bitsLeft(): number {
    return this.end - this.position;
  }

  /** The next 32 bits from the current position (zeros past the end), without consuming them. */
  private peek32(): number {
    const b = this.bytes;
    const i = this.position >>> 3;
    const shift = this.position & 7;
    const n = b.length;
    const word = ((i < n ? b[i]! << 24 : 0) | (i + 1 < n ? b[i + 1]! << 16 : 0) | (i + 2 < n ? b[i + 2]! << 8 : 0) | (i + 3 < n ? b[i + 3]! : 0)) >>> 0;
    if (shift === 0) return word;
    const extra = i + 4 < n ? b[i + 4]! : 0;
    return ((word << shift) | (extra >>> (8 - shift))) >>> 0;
  }

  /** Reads `count` bits (0 to 32) as an unsigned number. */
  read(count: number, what: string): number {
    if (this.position + count > this.end) throw new CodecError(`payload ends inside ${what}`);
    if (count === 0) return 0;
    const value = this.peek32() >>> (32 - count);
    this.position += count;
    return value;
  }

  /** Reads a Rice code; refuses a quotient above `maxQuotient` (a forged run of ones). */
  readRice(b: number, maxQuotient: number, what: string): number {
    let quotient = 0;
    for (;;) {
      // Leading ones of the next 32 bits: the unary part, ended by a zero.
      const ones = Math.clz32(~this.peek32());
      if (this.position + ones >= this.end) throw new CodecError(`payload ends inside ${what}`);
      quotient += ones;
      if (quotient > maxQuotient) throw new CodecError(`${what} is out of range`);
      if (ones < 32) {
        this.position += ones + 1;
        break;
      }
      this.position += 32;
    }
    return quotient * 2 ** b + (b > 0 ? this.read(b, what) : 0);
  }
}
