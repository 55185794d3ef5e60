import { describe, expect, it } from '@jest/globals';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeCheckpoint, encodeCheckpoint, loadCheckpoint, modelHash, saveCheckpoint, type Checkpoint } from '../../trainer/src/checkpoint.js';
import { layoutOf, viewsOf } from '../../trainer/src/params.js';

const layout = layoutOf([{ name: 'wte', shape: [10, 4] }, { name: 'ln.g', shape: [4] }, { name: 'w1', shape: [4, 3] }]);

function sample(): Checkpoint {
  const params = Float32Array.from({ length: layout.size }, (_, i) => Math.sin(i) * 1e-3);
  params[3] = -0; // the hash and the file keep exact bits, sign of zero included
  return { layout, sections: new Map([['params', params], ['momentum', Float32Array.from({ length: 7 }, (_, i) => i / 3)]]), meta: { step: 12, round: 3 } };
}

describe('parameter layout', () => {
  it('lays tensors out in order and views them without copying', () => {
    expect(layout.size).toBe(40 + 4 + 12);
    expect(layout.tensors.map((t) => t.offset)).toEqual([0, 40, 44]);
    const flat = new Float32Array(layout.size);
    viewsOf(layout, flat).get('ln.g')![1] = 5;
    expect(flat[41]).toBe(5);
    expect(() => layoutOf([{ name: 'a', shape: [2] }, { name: 'a', shape: [3] }])).toThrow(/"a" is listed twice/);
    expect(() => layoutOf([{ name: 'a', shape: [2, 0] }])).toThrow(/bad shape \[2, 0\]/);
  });
});

describe('checkpoints', () => {
  it('round-trips exactly through a file, every bit and the metadata', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'concord-ckpt-'));
    const path = join(dir, 'round-3.ckpt');
    const original = sample();
    await saveCheckpoint(path, original);
    const loaded = await loadCheckpoint(path);
    expect(loaded.meta).toEqual({ step: 12, round: 3 });
    expect(loaded.layout).toEqual(layout);
    for (const [name, values] of original.sections) {
      expect(Buffer.from(loaded.sections.get(name)!.buffer).equals(Buffer.from(values.buffer))).toBe(true);
    }
    expect(Object.is(loaded.sections.get('params')![3], -0)).toBe(true);
    expect(modelHash(layout, loaded.sections.get('params')!).equals(modelHash(layout, original.sections.get('params')!))).toBe(true);
    // 64-byte aligned data after the header.
    const bytes = await readFile(path);
    expect((bytes.length - (layout.size + 7) * 4) % 64).toBe(0);
  });

  it('has a model hash that changes with any bit of the parameters or the layout', () => {
    const params = sample().sections.get('params')!;
    const base = modelHash(layout, params);
    expect(base).toHaveLength(32);
    const flipped = params.slice();
    new Uint32Array(flipped.buffer)[17]! ^= 1;
    expect(modelHash(layout, flipped).equals(base)).toBe(false);
    const renamed = layoutOf([{ name: 'wte', shape: [10, 4] }, { name: 'ln.b', shape: [4] }, { name: 'w1', shape: [4, 3] }]);
    expect(modelHash(renamed, params).equals(base)).toBe(false);
    const reshaped = layoutOf([{ name: 'wte', shape: [4, 10] }, { name: 'ln.g', shape: [4] }, { name: 'w1', shape: [4, 3] }]);
    expect(modelHash(reshaped, params).equals(base)).toBe(false);
  });

  it('is a known value for known parameters, so every machine can check it', () => {
    const tiny = layoutOf([{ name: 'w', shape: [2] }]);
    // SHA-256("concord.model.v1\0" + '[{"name":"w","shape":[2]}]' + "\0" + f32le(1, -2)), computed
    // once by hand from the documented definition: a different value here is a format change.
    expect(modelHash(tiny, Float32Array.of(1, -2)).toString('hex')).toBe('2179b36480702f6d56b83f782030c248a8ca41171c28ec5dfa2739b57be2ec34');
  });

  it('refuses damaged files with a reason', async () => {
    const bytes = Buffer.concat(encodeCheckpoint(sample()));
    expect(() => decodeCheckpoint(Buffer.from('NOTACKPT0000'))).toThrow(/bad magic/);
    expect(() => decodeCheckpoint(bytes.subarray(0, bytes.length - 4))).toThrow(/runs past the end/);
    expect(() => decodeCheckpoint(Buffer.concat([bytes, Buffer.alloc(4)]))).toThrow(/trailing bytes/);
    const wrongVersion = Buffer.from(bytes);
    wrongVersion.write('{"version":2', 12);
    expect(() => decodeCheckpoint(wrongVersion)).toThrow(/version 2 is not supported/);
    const dir = await mkdtemp(join(tmpdir(), 'concord-ckpt-'));
    await writeFile(join(dir, 'x'), bytes.subarray(0, 20));
    await expect(loadCheckpoint(join(dir, 'x'))).rejects.toThrow(/runs past the end|not JSON/);
  });
});

