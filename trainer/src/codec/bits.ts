/**
 * Bit-level writer and reader, most significant bit first, over a byte buffer. The reader never
 * reads past the end: it throws a CodecError naming what it was reading.
 */
import { CodecError } from './errors.js';

export class BitWriter {
  private bytes: Uint8Array;
  private position = 0; // next byte to write
  /** Pending bits, right-aligned: the low `pending` bits of `window` are not yet written. */
  private window = 0;
  private pending = 0;

  /** A buffer of `capacity` bytes, or the given memory (e.g. shared with another thread). */
  constructor(capacity: number | Uint8Array) {
    this.bytes = typeof capacity === 'number' ? new Uint8Array(capacity) : capacity;
  }

  /** Starts over at `startByte`, keeping the buffer (grown to `capacityBytes` if needed). */
  reset(capacityBytes: number, startByte: number): void {
    if (this.bytes.length < capacityBytes) this.bytes = new Uint8Array(capacityBytes);
    this.position = startByte;
    this.window = 0;
    this.pending = 0;
  }

  /** The whole buffer, for writing a header in front of the bits. */
  get buffer(): Uint8Array {
    return this.bytes;
  }

  /** Bits written since the start of the buffer (the header's bytes included). */
  get bitLength(): number {
    return this.position * 8 + this.pending;
  }

  /** Appends the first `bitLength` bits of `bytes` (a bit stream another writer finished). */
  append(bytes: Uint8Array, bitLength: number): void {
    const whole = bitLength >>> 3;
    if (this.pending === 0) {
      this.bytes.set(bytes.subarray(0, whole), this.position);
      this.position += whole;
    } else {
      for (let i = 0; i < whole; i++) this.write(bytes[i]!, 8);
    }
    const rest = bitLength & 7;
    if (rest > 0) this.write(bytes[whole]! >>> (8 - rest), rest);
  }

  /** Writes the last partial byte, zero-padded, and returns a view of everything written. */
  finish(): Uint8Array {
    if (this.pending > 0) this.bytes[this.position] = (this.window << (8 - this.pending)) & 0xff;
    return this.bytes.subarray(0, this.position + (this.pending > 0 ? 1 : 0));
  }

  /** Writes the low `count` bits of `value` (count ≤ 32). */
  write(value: number, count: number): void {
    if (count > 24) {
      this.write(Math.floor(value / 65536), count - 16);
      this.write(value & 0xffff, 16);
      return;
    }
    // At most 7 pending bits + 24 new ones fit in 31 bits; bits above them are shifted out.
    this.window = (this.window << count) | (value & ((1 << count) - 1));
    this.pending += count;
    while (this.pending >= 8) {
      this.pending -= 8;
      this.bytes[this.position++] = (this.window >>> this.pending) & 0xff;
    }
  }

  /**
   * Rice code of `value` (0 ≤ value < 2^31) with parameter `b` (≤ 24): unary quotient (ones,
   * then a zero), then b bits.
   */
  writeRice(value: number, b: number): void {
    let quotient = value >>> b;
    const remainder = value & ((1 << b) - 1);
    if (quotient + 1 + b <= 24) {
      this.write((((1 << quotient) - 1) << (1 + b)) | remainder, quotient + 1 + b);
      return;
    }
    while (quotient >= 24) {
      this.write(0xffffff, 24);
      quotient -= 24;
    }
    this.write(((1 << quotient) - 1) << 1, quotient + 1);
    if (b > 0) this.write(remainder, b);
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
    return quotient * (1 << b) + (b > 0 ? this.read(b, what) : 0);
  }
}
