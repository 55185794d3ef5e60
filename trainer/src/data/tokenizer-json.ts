// Tokenizers in the Hugging Face `tokenizer.json` format, the one GPT-2, Llama 3 and most models
// ship: loaded with @huggingface/tokenizers (what transformers.js runs inside), and the project's
// own byte-level BPE written in that format, so a dataset, a checkpoint and any Hugging Face tool
// all read the same file.
//
// The project's BPE maps onto the format exactly: its pre-tokenizer is GPT-2's regex (the
// ByteLevel pre-tokenizer with use_regex), ids 0…255 are the bytes (as GPT-2's printable
// byte-to-character map spells them), merge i makes id 256 + i, applied lowest rank first as
// the BPE model does, and end-of-text is the special added token at the last id.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { BpeTokenizer, EOT_TEXT } from './bpe.js';
import { DatasetError } from './shards.js';

/** What training and sampling need of a tokenizer, whatever its origin. */
export interface TextTokenizer {
  readonly vocabSize: number;
  /** End-of-text id, written after every document. */
  readonly eot: number;
  encode(text: string): ArrayLike<number>;
  decode(ids: ArrayLike<number>): string;
  /** SHA-256 (hex) that pins it: a dataset's manifest names its tokenizer by this. */
  hash(): string;
}

/** GPT-2's bytes_to_unicode: each byte as a printable character (printable ASCII and Latin-1 as themselves, the rest shifted past 255). */
export function byteToUnicode(): string[] {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const map: string[] = [];
  let next = 0;
  for (let b = 0; b < 256; b++) map.push(String.fromCodePoint(printable(b) ? b : 256 + next++));
  return map;
}

/** The project's BPE as a Hugging Face tokenizer.json (an object to serialise). */
export function bpeToTokenizerJson(bpe: BpeTokenizer): Record<string, unknown> {
  const chars = byteToUnicode();
  const spell = (id: number) => Array.from(bpe.tokenBytes(id), (b) => chars[b]!).join('');
  const vocab: Record<string, number> = {};
  const count = 256 + bpe.merges.length;
  for (let id = 0; id < count; id++) {
    const token = spell(id);
    // Two merge paths to the same bytes would be two ids for one string, which the format cannot hold.
    if (Object.hasOwn(vocab, token)) throw new Error(`tokenizer.json: ids ${vocab[token]} and ${id} spell the same bytes; the format needs one id per token`);
    vocab[token] = id;
  }
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [{ id: bpe.eot, content: EOT_TEXT, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false,
      vocab, merges: bpe.merges.map(([left, right]) => [spell(left), spell(right)]),
    },
  };
}

/** The tokenizer_config.json that transformers.js needs beside a tokenizer.json. */
export function tokenizerConfigJson(eotText: string): Record<string, unknown> {
  return { tokenizer_class: 'PreTrainedTokenizerFast', bos_token: eotText, eos_token: eotText, unk_token: null, clean_up_tokenization_spaces: false, model_max_length: 1_000_000 };
}

const EOT_NAMES = [EOT_TEXT, '<|end_of_text|>', '<|eot_id|>', '</s>', '<eos>'];

/** A tokenizer read from a tokenizer.json (and the tokenizer_config.json beside it, if any). */
export class HfTokenizer implements TextTokenizer {
  readonly vocabSize: number;
  readonly eot: number;
  private readonly tokenizer: Tokenizer;

  private constructor(readonly json: Record<string, unknown>, private readonly fileHash: string, config: Record<string, unknown>, source: string) {
    const model = json.model as { vocab?: Record<string, number> } | undefined;
    const added = (json.added_tokens ?? []) as Array<{ id: number; content: string }>;
    if (model?.vocab === undefined || typeof model.vocab !== 'object') throw new DatasetError(source, 'model.vocab: missing (not a tokenizer.json of a BPE model?)');
    const ids = [...Object.values(model.vocab), ...added.map((t) => t.id)];
    this.vocabSize = Math.max(...ids) + 1;
    const eosName = typeof config.eos_token === 'string' ? config.eos_token : (config.eos_token as { content?: string } | undefined)?.content;
    const eot = [eosName, ...EOT_NAMES].flatMap((name) => added.filter((t) => t.content === name).map((t) => t.id))[0];
    if (eot === undefined) throw new DatasetError(source, `added_tokens: no end-of-text token (${EOT_NAMES.join(', ')}, or eos_token in tokenizer_config.json)`);
    this.eot = eot;
    this.tokenizer = new Tokenizer(json, config);
  }

  static fromJson(text: string, config: Record<string, unknown> = {}, source = 'tokenizer.json'): HfTokenizer {
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(text) as Record<string, unknown>;
    } catch (error) {
      throw new DatasetError(source, `not JSON (${(error as Error).message})`);
    }
    return new HfTokenizer(json, createHash('sha256').update(text).digest('hex'), config, source);
  }

  encode(text: string): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: false }).ids;
  }

  decode(ids: ArrayLike<number>): string {
    return ids.length === 0 ? '' : this.tokenizer.decode(Array.from(ids), { skip_special_tokens: false });
  }

  /** SHA-256 of the file's bytes. */
  hash(): string {
    return this.fileHash;
  }
}

/** Reads a tokenizer.json, with the tokenizer_config.json in the same directory if there is one. */
export async function loadTokenizerJson(file: string): Promise<HfTokenizer> {
  const text = await readFile(file, 'utf8').catch(() => {
    throw new DatasetError(file, 'no such tokenizer file');
  });
  const configFile = join(dirname(file), 'tokenizer_config.json');
  const config = await readFile(configFile, 'utf8').then((t) => JSON.parse(t) as Record<string, unknown>, () => ({}));
  return HfTokenizer.fromJson(text, config, file);
}

/** A tokenizer as a Hugging Face tokenizer.json (object), whichever kind it is. */
export function tokenizerJsonOf(tokenizer: TextTokenizer): Record<string, unknown> {
  if (tokenizer instanceof HfTokenizer) return tokenizer.json;
  if (tokenizer instanceof BpeTokenizer) return bpeToTokenizerJson(tokenizer);
  throw new Error('tokenizerJsonOf: a tokenizer of unknown kind');
}
