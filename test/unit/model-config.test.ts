import { describe, expect, it } from '@jest/globals';
import { parse } from 'yaml';
import { DEFAULT_SMALL_GPT, GptConfigError, gptFlopsPerToken, gptParamCount, parseGptConfig } from '../../trainer/src/model/config.js';
import { defaultFfnWidth, describeModel, modelFlopsPerToken, modelParamCount, modelParamSpecs, parseModelConfig } from '../../trainer/src/model/index.js';
import { layoutOf } from '../../trainer/src/params.js';

const valid = { vocabSize: 4096, seqLen: 128, layers: 4, dModel: 256, heads: 4 };

describe('GPT config', () => {
  it('parses a valid model section and fills the defaults', () => {
    expect(parseGptConfig(valid)).toEqual({ ...valid, mlpRatio: 4, norm: 'layernorm' });
    expect(parseGptConfig({ ...valid, mlpRatio: 2, norm: 'rmsnorm' })).toEqual({ ...valid, mlpRatio: 2, norm: 'rmsnorm' });
  });

  it('reads the model part of a TrainingRun spec written in YAML', () => {
    const spec = parse('model:\n  vocabSize: 512\n  seqLen: 64\n  layers: 2\n  dModel: 96\n  heads: 3\n  norm: rmsnorm\n') as { model: unknown };
    expect(parseGptConfig(spec.model)).toEqual({ vocabSize: 512, seqLen: 64, layers: 2, dModel: 96, heads: 3, mlpRatio: 4, norm: 'rmsnorm' });
  });

  it('accepts its own default', () => {
    expect(parseGptConfig({ ...DEFAULT_SMALL_GPT })).toEqual(DEFAULT_SMALL_GPT);
  });

  it.each<[string, unknown, RegExp]>([
    ['an unknown field', { ...valid, dropout: 0.1 }, /^model\.dropout: unknown field \(allowed: family, vocabSize, seqLen, layers, dModel, heads, mlpRatio, norm\)$/],
    ['a misspelt field', { ...valid, nHeads: 4 }, /^model\.nHeads: unknown field/],
    ['heads not dividing dModel', { ...valid, dModel: 512, heads: 6 }, /^model\.heads: 6 does not divide model\.dModel \(512\)$/],
    ['a missing size', { ...valid, layers: undefined }, /^model\.layers: is required$/],
    ['a zero size', { ...valid, dModel: 0 }, /^model\.dModel: must be at least 1, got 0$/],
    ['a zero vocabulary', { ...valid, vocabSize: 0 }, /^model\.vocabSize: must be at least 1, got 0$/],
    ['a negative size', { ...valid, seqLen: -128 }, /^model\.seqLen: must be at least 1, got -128$/],
    ['a non-integer size', { ...valid, layers: 2.5 }, /^model\.layers: must be an integer, got number 2\.5$/],
    ['a size written as a string', { ...valid, heads: '4' }, /^model\.heads: must be an integer, got string "4"$/],
    ['an absurd size', { ...valid, layers: 100000 }, /^model\.layers: must be at most 1024, got 100000$/],
    ['a wrong norm', { ...valid, norm: 'batchnorm' }, /^model\.norm: must be one of layernorm, rmsnorm, got string "batchnorm"$/],
    ['a zero mlpRatio', { ...valid, mlpRatio: 0 }, /^model\.mlpRatio: must be a positive number, got number 0$/],
    ['an mlpRatio giving a fractional width', { ...valid, dModel: 10, heads: 2, mlpRatio: 2.55 }, /^model\.mlpRatio: 2\.55 · model\.dModel \(10\) is not an integer MLP width$/],
    ['a list instead of a mapping', [1, 2], /^model: must be a mapping, got a list$/],
    ['null', null, /^model: must be a mapping, got null$/],
    ['more parameters than a Float32Array holds', { ...valid, vocabSize: 2 ** 30, dModel: 1024 }, /^model: \d+ parameters do not fit one Float32Array/],
  ])('refuses %s, naming the field', (_what, raw, message) => {
    expect(() => parseGptConfig(raw)).toThrow(message);
    expect(() => parseGptConfig(raw)).toThrow(GptConfigError);
  });

  it('prefixes messages with the path the caller gives', () => {
    expect(() => parseGptConfig({ ...valid, heads: 0 }, 'spec.model')).toThrow(/^spec\.model\.heads: must be at least 1/);
  });

  it('counts parameters: embeddings, blocks and final norm, output projection tied', () => {
    const c = { vocabSize: 10, seqLen: 3, layers: 2, dModel: 4, heads: 2, mlpRatio: 4, norm: 'layernorm' as const };
    const block = 2 * 8 + (4 * 12 + 12) + (4 * 4 + 4) + (4 * 16 + 16) + (16 * 4 + 4);
    expect(gptParamCount(c)).toBe(10 * 4 + 3 * 4 + 2 * block + 8);
    expect(gptParamCount({ ...c, norm: 'rmsnorm' })).toBe(gptParamCount(c) - 5 * 4);
    expect(gptParamCount(DEFAULT_SMALL_GPT)).toBe(4_240_896);
  });

  it('counts matmul FLOPs per token: 2 per weight and 4·T·C per layer forward, 3× for a training step', () => {
    const c = { vocabSize: 10, seqLen: 3, layers: 2, dModel: 4, heads: 2, mlpRatio: 4, norm: 'layernorm' as const };
    // per layer: qkv 4·12, proj 4·4, fc 4·16, fc2 16·4 = 192 weights; head 10·4 = 40 weights
    const forward = 2 * (2 * 192 + 40) + 4 * 2 * 3 * 4;
    expect(gptFlopsPerToken(c, 'forward')).toBe(forward);
    expect(gptFlopsPerToken(c)).toBe(3 * forward);
  });
});

describe('Llama config', () => {
  const llama = { family: 'llama', vocabSize: 512, seqLen: 64, layers: 2, dModel: 128, heads: 4 };

  it('parses a valid model section and fills the defaults (multi-head, 8/3 width rounded to 64, untied)', () => {
    expect(parseModelConfig(llama)).toEqual({ ...llama, kvHeads: 4, ffnWidth: 384, ropeTheta: 10_000, normEps: 1e-5, tiedEmbeddings: false });
    expect(defaultFfnWidth(512)).toBe(1408);
    expect(parseModelConfig({ ...llama, kvHeads: 2, ffnWidth: 100, tiedEmbeddings: true, ropeTheta: 500_000 })).toMatchObject({ kvHeads: 2, ffnWidth: 100, tiedEmbeddings: true, ropeTheta: 500_000 });
  });

  it('keeps a config without a family a GPT', () => {
    expect(parseModelConfig(valid)).toEqual({ ...valid, mlpRatio: 4, norm: 'layernorm' });
    expect(parseModelConfig({ ...valid, family: 'gpt' })).toEqual({ ...valid, mlpRatio: 4, norm: 'layernorm' });
  });

  it.each<[string, unknown, RegExp]>([
    ['an unknown family', { ...llama, family: 'mamba' }, /^model\.family: must be one of gpt, llama, got "mamba"$/],
    ['a GPT-only field', { ...llama, mlpRatio: 4 }, /^model\.mlpRatio: unknown field \(allowed: family, vocabSize, seqLen, layers, dModel, heads, kvHeads, ffnWidth, ropeTheta, normEps, tiedEmbeddings\)$/],
    ['a Llama-only field on a GPT', { ...valid, kvHeads: 2 }, /^model\.kvHeads: unknown field/],
    ['kvHeads not dividing heads', { ...llama, kvHeads: 3 }, /^model\.kvHeads: 3 does not divide model\.heads \(4\)$/],
    ['an odd head size', { ...llama, dModel: 12, heads: 4 }, /^model\.heads: the head size model\.dModel \/ model\.heads = 3 must be even/],
    ['a word for tiedEmbeddings', { ...llama, tiedEmbeddings: 'yes' }, /^model\.tiedEmbeddings: must be true or false, got string "yes"$/],
    ['a zero ropeTheta', { ...llama, ropeTheta: 0 }, /^model\.ropeTheta: must be a positive number, got number 0$/],
  ])('refuses %s, naming the field', (_what, raw, message) => {
    expect(() => parseModelConfig(raw)).toThrow(message);
  });

  it('counts the parameters of published Llama-family models exactly', () => {
    // Llama 3.2 1B (tied) and TinyLlama 1.1B (untied), as their model cards give them.
    const llama32 = parseModelConfig({ family: 'llama', vocabSize: 128_256, seqLen: 2048, layers: 16, dModel: 2048, heads: 32, kvHeads: 8, ffnWidth: 8192, tiedEmbeddings: true });
    expect(modelParamCount(llama32)).toBe(1_235_814_400);
    const tinyLlama = parseModelConfig({ family: 'llama', vocabSize: 32_000, seqLen: 2048, layers: 22, dModel: 2048, heads: 32, kvHeads: 4, ffnWidth: 5632 });
    expect(modelParamCount(tinyLlama)).toBe(1_100_048_384);
    expect(modelParamCount(tinyLlama)).toBe(layoutOf(modelParamSpecs(tinyLlama)).size);
  });

  it('counts matmul FLOPs per token like the GPT: 2 per weight, 4·T·C per layer, 3× to train', () => {
    const c = parseModelConfig({ ...llama, kvHeads: 2, ffnWidth: 256 });
    const perLayer = 128 * (4 + 2 * 2) * 32 + 128 * 128 + 3 * 128 * 256; // qkv, o, gate+up+down
    const forward = 2 * (2 * perLayer + 512 * 128) + 4 * 2 * 64 * 128;
    expect(modelFlopsPerToken(c, 'forward')).toBe(forward);
    expect(modelFlopsPerToken(c)).toBe(3 * forward);
  });

  it('describes a model in one line: parameters, FLOPs per token and the memory floor', () => {
    const line = describeModel(parseModelConfig({ family: 'llama', vocabSize: 128_256, seqLen: 2048, layers: 16, dModel: 2048, heads: 32, kvHeads: 8, ffnWidth: 8192, tiedEmbeddings: true }), 1);
    expect(line).toMatch(/^Llama 16 layers, dModel 2048, 32 heads \(8 key\/value\), ffn 8192, tied output, seq 2048, vocab 128256: 1\.24B parameters, \d+\.\d{3} GFLOP per trained token, memory floor \d+\.\d\d GiB at batch 1 \(18\.42 state/);
  });
});
