import { describe, expect, it } from '@jest/globals';
import { decodeSafetensors, encodeSafetensors, layoutTensors } from '../../trainer/src/export/safetensors.js';
import { sampleToken } from '../../trainer/src/export/sample.js';
import { seededRandom } from '../../trainer/src/random.js';
import { layoutOf } from '../../trainer/src/params.js';

describe('safetensors export', () => {
  const layout = layoutOf([{ name: 'wte', shape: [5, 3] }, { name: 'h0.attn.b', shape: [7] }]);
  const params = Float32Array.from({ length: layout.size }, (_, i) => i / 7 - 1);

  it('writes the documented layout: u64 header length, JSON header, aligned F32 data', () => {
    const bytes = Buffer.concat(encodeSafetensors(layoutTensors(layout, params), { format: 'concord-gpt' }));
    const headerLength = Number(bytes.readBigUInt64LE(0));
    expect((8 + headerLength) % 8).toBe(0);
    const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8'));
    expect(header.wte).toEqual({ dtype: 'F32', shape: [5, 3], data_offsets: [0, 60] });
    expect(header['h0.attn.b']).toEqual({ dtype: 'F32', shape: [7], data_offsets: [60, 88] });
    expect(header.__metadata__).toEqual({ format: 'concord-gpt' });
    expect(bytes.length).toBe(8 + headerLength + 88);
  });

  it('reads back every tensor exactly and refuses bad offsets', () => {
    const bytes = Buffer.concat(encodeSafetensors(layoutTensors(layout, params)));
    const file = decodeSafetensors(bytes);
    expect([...file.tensors.get('wte')!.data]).toEqual([...params.subarray(0, 15)]);
    expect(file.tensors.get('h0.attn.b')!.shape).toEqual([7]);
    expect(() => decodeSafetensors(bytes.subarray(0, bytes.length - 4))).toThrow(/h0\.attn\.b has bad data offsets/);
  });
});

describe('sampling', () => {
  const logits = Float32Array.of(0.1, 3, 2.9, -1, 0);

  it('is greedy at temperature 0 or top-k 1', () => {
    expect(sampleToken(logits, { temperature: 0, topK: 0 }, Math.random)).toBe(1);
    expect(sampleToken(logits, { temperature: 1, topK: 1 }, Math.random)).toBe(1);
  });

  it('draws only from the top-k, in proportion to softmax(logits / T)', () => {
    const random = seededRandom(3);
    const counts = [0, 0, 0, 0, 0];
    for (let i = 0; i < 20_000; i++) counts[sampleToken(logits, { temperature: 1, topK: 2 }, random)]!++;
    expect(counts[0]! + counts[3]! + counts[4]!).toBe(0);
    const expected = Math.exp(3) / (Math.exp(3) + Math.exp(2.9));
    expect(counts[1]! / 20_000).toBeCloseTo(expected, 1);
  });

  it('repeats itself for the same seed', () => {
    const draw = (seed: number) => { const r = seededRandom(seed); return Array.from({ length: 20 }, () => sampleToken(logits, { temperature: 1.5, topK: 0 }, r)); };
    expect(draw(9)).toEqual(draw(9));
    expect(draw(9)).not.toEqual(draw(10));
  });
});
