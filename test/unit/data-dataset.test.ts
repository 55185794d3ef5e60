import { describe, expect, it } from '@jest/globals';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BpeTokenizer } from '../../trainer/src/data/bpe.js';
import { loadBrown } from '../../trainer/src/data/corpus.js';
import {
  decodeTokenFile,
  encodeTokenFile,
  loadDataset,
  packDocuments,
  readTokenFile,
  splitDocuments,
  writeTokenFile,
} from '../../trainer/src/data/dataset.js';

const all = loadBrown();
const humor = all.filter((d) => d.genre === 'r'); // 9 documents
const tokenizer = BpeTokenizer.train(humor.map((d) => d.text), { vocabSize: 400 });

function withTempDir<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'concord-data-'));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('train/validation split', () => {
  it('puts every document in exactly one side, the 1st, 21st, 41st … of each genre in validation', () => {
    const { train, validation } = splitDocuments(all);
    const trainIds = new Set(train.map((d) => d.id));
    expect(validation.some((d) => trainIds.has(d.id))).toBe(false);
    expect(train.length + validation.length).toBe(500);
    expect(validation.map((d) => d.id).slice(0, 5)).toEqual(['ca01', 'ca21', 'ca41', 'cb01', 'cb21']);
    expect(validation).toHaveLength(32);
    expect(new Set(validation.map((d) => d.genre)).size).toBe(15);
  });

  it('splits a selection of genres exactly as it splits them inside the whole corpus', () => {
    const full = splitDocuments(all);
    const some = splitDocuments(all.filter((d) => 'akm'.includes(d.genre)));
    expect(some.validation.map((d) => d.id)).toEqual(full.validation.filter((d) => 'akm'.includes(d.genre)).map((d) => d.id));
    expect(some.train.map((d) => d.id)).toEqual(full.train.filter((d) => 'akm'.includes(d.genre)).map((d) => d.id));
  });
});

describe('packed token arrays', () => {
  it('packs documents with an end-of-text token after each and decodes back to them', () => {
    const packed = packDocuments(tokenizer, humor.map((d) => d.text));
    expect(packed).toBeInstanceOf(Uint16Array);
    const eots = [...packed.keys()].filter((i) => packed[i] === tokenizer.eot);
    expect(eots).toHaveLength(humor.length);
    expect(eots[eots.length - 1]).toBe(packed.length - 1);
    let start = 0;
    eots.forEach((end, i) => {
      expect(tokenizer.decode(packed.subarray(start, end))).toBe(humor[i]!.text);
      start = end + 1;
    });
  });

  it('round-trips 16- and 32-bit token files and refuses damaged ones', () => {
    const u16 = packDocuments(tokenizer, [humor[0]!.text]);
    const back = decodeTokenFile(encodeTokenFile({ tokens: u16, vocabSize: 400, documents: 1 }));
    expect(back).toEqual({ tokens: u16, vocabSize: 400, documents: 1 });
    const i32 = Int32Array.from([0, 65535, 65536, 99_999, 3]);
    const big = decodeTokenFile(encodeTokenFile({ tokens: i32, vocabSize: 100_000, documents: 2 }));
    expect(big.tokens).toBeInstanceOf(Int32Array);
    expect(Array.from(big.tokens)).toEqual(Array.from(i32));
    const bytes = encodeTokenFile({ tokens: u16, vocabSize: 400, documents: 1 });
    expect(Array.from(bytes.subarray(0, 8))).toEqual(Array.from(Buffer.from('CNCDTOK\0', 'latin1')));
    expect(new DataView(bytes.buffer).getUint16(32, true)).toBe(u16[0]);
    expect(() => decodeTokenFile(bytes.subarray(0, bytes.length - 2))).toThrow(/header says/);
    const wrong = Uint8Array.from(bytes);
    wrong[0] = 0x58;
    expect(() => decodeTokenFile(wrong)).toThrow(/bad magic/);
    expect(() => decodeTokenFile(encodeTokenFile({ tokens: Uint16Array.of(1, 500), vocabSize: 400, documents: 1 }))).toThrow(
      /outside the vocabulary/,
    );
    withTempDir((dir) => {
      writeTokenFile(join(dir, 't.bin'), { tokens: u16, vocabSize: 400, documents: 1 });
      expect(readTokenFile(join(dir, 't.bin')).tokens).toEqual(u16);
    });
  });
});

describe('loadDataset', () => {
  it('builds, caches and reloads identical arrays with no shared document', () => {
    withTempDir((dir) => {
      const first = loadDataset({ vocabSize: 400, genres: 'r', tokenizer, cacheDir: dir });
      expect(first.cached).toBe(false);
      expect(first.validationDocs).toEqual(['cr01']);
      expect(first.trainDocs).toHaveLength(8);
      expect(first.trainDocs.some((id) => first.validationDocs.includes(id))).toBe(false);
      expect(first.train.filter((t) => t === first.eot)).toHaveLength(8);
      expect(readdirSync(dir).filter((f) => f.endsWith('.bin'))).toHaveLength(2);
      const second = loadDataset({ vocabSize: 400, genres: 'r', tokenizer, cacheDir: dir });
      expect(second.cached).toBe(true);
      expect(second.train).toEqual(first.train);
      expect(second.validation).toEqual(first.validation);
      const uncached = loadDataset({ vocabSize: 400, genres: 'r', tokenizer, cache: false });
      expect(uncached.cached).toBe(false);
      expect(uncached.train).toEqual(first.train);
      expect(() => loadDataset({ vocabSize: 512, genres: 'r', tokenizer, cache: false })).toThrow(/differs/);
    });
  });

  it('trains the default tokenizer on every genre, so peers with different genres share it', () => {
    withTempDir((dir) => {
      const fiction = loadDataset({ vocabSize: 300, genres: 'm', cacheDir: dir });
      const humour = loadDataset({ vocabSize: 300, genres: 'r', cacheDir: dir });
      expect(fiction.tokenizer.hash()).toBe(humour.tokenizer.hash());
      expect(fiction.tokenizer.vocabSize).toBe(300);
      expect(readdirSync(dir).filter((f) => f.startsWith('bpe-'))).toHaveLength(1);
      expect(fiction.validationDocs).toEqual(['cm01']);
    });
  });
});
