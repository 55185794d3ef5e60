import { describe, expect, it } from '@jest/globals';
import { BitReader, BitWriter } from '../../trainer/src/codec/bits.js';
import { CodecError } from '../../trainer/src/codec/errors.js';

describe('bit writer and reader', () => {
  it('read back what was written: fields of 0 to 32 bits and Rice codes with long unary runs', () => {
    let state = 4242;
    const random = (m: number) => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) % m);
    const items: Array<{ kind: 'bits'; count: number; value: number } | { kind: 'rice'; b: number; value: number }> = [];
    for (let i = 0; i < 20_000; i++) {
      if (random(2)) {
        const count = random(33);
        const value = count === 0 ? 0 : count === 32 ? random(2 ** 32) : random(2 ** count);
        items.push({ kind: 'bits', count, value });
      } else {
        const b = random(9);
        // Quotients up to 100: unary runs longer than the reader's 32-bit window.
        items.push({ kind: 'rice', b, value: random(101) * 2 ** b + random(2 ** b) });
      }
    }
    const writer = new BitWriter(1 << 20);
    writer.reset(1 << 20, 3);
    for (const item of items) {
      if (item.kind === 'bits') writer.write(item.value, item.count);
      else writer.writeRice(item.value, item.b);
    }
    const reader = new BitReader(writer.finish(), 3);
    for (const item of items) {
      const got = item.kind === 'bits' ? reader.read(item.count, 'a field') : reader.readRice(item.b, 1000, 'a code');
      if (got !== item.value) throw new Error(`${JSON.stringify(item)} read back as ${got}`);
    }
    expect(reader.bitsLeft).toBeLessThan(8);
  });

  it('refuses to read past the end or a unary run above its limit', () => {
    const writer = new BitWriter(16);
    writer.reset(16, 0);
    writer.writeRice(40 * 4 + 1, 2);
    const bytes = writer.finish();
    expect(() => new BitReader(bytes, 0).readRice(2, 39, 'an index')).toThrow(new CodecError('an index is out of range'));
    expect(new BitReader(bytes, 0).readRice(2, 40, 'an index')).toBe(161);
    expect(() => new BitReader(bytes.subarray(0, 2), 0).readRice(2, 100, 'an index')).toThrow(/payload ends inside an index/);
    expect(() => new BitReader(Uint8Array.of(0xff), 0).read(9, 'a value')).toThrow(/payload ends inside a value/);
  });
});
