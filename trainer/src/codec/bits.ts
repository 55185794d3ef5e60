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

/**
 * Reads bits most significant first through a 32-bit window refilled a byte at a time: a read
 * or a Rice code costs a few shifts, not a loop over bytes.
 */
export class BitReader {
  /** Up to 32 valid bits, left-aligned; bits below the valid ones are zero. */
  private window = 0;
  private valid = 0;
  private next: number;

  constructor(private readonly bytes: Uint8Array, startByte: number) {
    this.next = startByte;
  }

  get bitsLeft(): number {
    return (this.bytes.length - this.next) * 8 + this.valid;
  }

  private refill(): void {
    const bytes = this.bytes;
    while (this.valid <= 24 && this.next < bytes.length) {
      this.window |= bytes[this.next++]! << (24 - this.valid);
      this.valid += 8;
    }
  }

  /** Reads `count` bits (0 to 32) as an unsigned number. */
  read(count: number, what: string): number {
    if (count > 24) return this.read(count - 16, what) * 65536 + this.read(16, what);
    if (count === 0) return 0;
    if (this.valid < count) this.refill();
    if (this.valid < count) throw new CodecError(`payload ends inside ${what}`);
    const value = this.window >>> (32 - count);
    this.window <<= count;
    this.valid -= count;
    return value;
  }

  /** Reads a Rice code; refuses a quotient above `maxQuotient` (a forged run of ones). */
  readRice(b: number, maxQuotient: number, what: string): number {
    let quotient = 0;
    for (;;) {
      if (this.valid < 25) this.refill();
      // Leading ones of the window: the unary part, ended by a zero. Invalid bits are zero, so
      // the count never runs past the valid ones.
      const ones = Math.clz32(~this.window);
      if (ones < this.valid) {
        quotient += ones;
        if (quotient > maxQuotient) throw new CodecError(`${what} is out of range`);
        // (A shift by 32 is a shift by 0 in JavaScript.)
        this.window = ones === 31 ? 0 : this.window << (ones + 1);
        this.valid -= ones + 1;
        break;
      }
      quotient += this.valid;
      if (quotient > maxQuotient) throw new CodecError(`${what} is out of range`);
      if (this.next >= this.bytes.length) throw new CodecError(`payload ends inside ${what}`);
      this.window = 0;
      this.valid = 0;
    }
    return quotient * 2 ** b + (b > 0 ? this.read(b, what) : 0);
  }
}
