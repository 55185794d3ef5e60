import { describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { DEFAULT_SMALL_GPT, gptParamCount, type GptConfig } from '../../trainer/src/model/config.js';
import { gptParamSpecs, initGptParams, isDecayed, paramRole } from '../../trainer/src/model/gpt.js';
import { philox4x32 } from '../../trainer/src/model/random.js';
import { layoutOf, viewsOf } from '../../trainer/src/params.js';
import { QUICK_WORK_MS } from '../support/deadlines.js';

const tiny: GptConfig = { vocabSize: 11, seqLen: 5, layers: 2, dModel: 8, heads: 2, mlpRatio: 4, norm: 'layernorm' };

function stats(values: Float32Array): { mean: number; std: number; within1: number; kurtosis: number } {
  let s = 0;
  for (const v of values) s += v;
  const mean = s / values.length;
  let m2 = 0;
  let m4 = 0;
  let within = 0;
  for (const v of values) {
    const d = (v - mean) ** 2;
    m2 += d;
    m4 += d * d;
  }
  const std = Math.sqrt(m2 / values.length);
  for (const v of values) if (Math.abs(v - mean) < std) within++;
  return { mean, std, within1: within / values.length, kurtosis: m4 / values.length / std ** 4 };
}

describe('GPT parameter layout', () => {
  it('lists the parameters in flat-vector order, the output projection tied to wte', () => {
    const names = gptParamSpecs({ ...tiny, layers: 1 }).map((s) => `${s.name}[${s.shape.join(',')}]`);
    expect(names).toEqual([
      'wte[11,8]',
      'wpe[5,8]',
      'h0.ln1.w[8]',
      'h0.ln1.b[8]',
      'h0.attn.w[8,24]',
      'h0.attn.b[24]',
      'h0.proj.w[8,8]',
      'h0.proj.b[8]',
      'h0.ln2.w[8]',
      'h0.ln2.b[8]',
      'h0.fc.w[8,32]',
      'h0.fc.b[32]',
      'h0.fc2.w[32,8]',
      'h0.fc2.b[8]',
      'lnf.w[8]',
      'lnf.b[8]',
    ]);
    const rms = gptParamSpecs({ ...tiny, norm: 'rmsnorm' }).map((s) => s.name);
    expect(rms.filter((n) => n.includes('ln'))).toEqual(['h0.ln1.w', 'h0.ln2.w', 'h1.ln1.w', 'h1.ln2.w', 'lnf.w']);
  });

  it.each<[string, GptConfig]>([
    ['tiny layernorm', tiny],
    ['tiny rmsnorm, mlpRatio 2', { ...tiny, norm: 'rmsnorm', mlpRatio: 2 }],
    ['the default', DEFAULT_SMALL_GPT],
  ])('has as many elements as gptParamCount (%s)', (_name, config) => {
    expect(layoutOf(gptParamSpecs(config)).size).toBe(gptParamCount(config));
  });

  it('decays weight matrices and embeddings, not biases or norm gains', () => {
    const decayed = gptParamSpecs(tiny).filter((s) => isDecayed(s.name));
    expect(decayed.map((s) => s.name)).toEqual(['wte', 'wpe', 'h0.attn.w', 'h0.proj.w', 'h0.fc.w', 'h0.fc2.w', 'h1.attn.w', 'h1.proj.w', 'h1.fc.w', 'h1.fc2.w']);
    for (const s of gptParamSpecs(tiny)) expect({ name: s.name, decayed: isDecayed(s.name) }).toEqual({ name: s.name, decayed: s.shape.length === 2 });
    expect(() => isDecayed('lm_head.w')).toThrow('not a GPT parameter name: "lm_head.w"');
    expect(paramRole('h3.fc2.w')).toBe('residual');
    expect(paramRole('lnf.b')).toBe('bias');
  });
});

describe('GPT initialisation', () => {
  it('uses Philox4x32-10 (Random123 known-answer vectors)', () => {
    expect([...philox4x32([0, 0, 0, 0], [0, 0])]).toEqual([0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
    const ones = 0xffffffff;
    expect([...philox4x32([ones, ones, ones, ones], [ones, ones])]).toEqual([0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]);
    expect([...philox4x32([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0])]).toEqual([0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]);
  });

  it('is deterministic: same seed, same bytes; another seed, other values', () => {
    const a = initGptParams(tiny, 1234);
    expect(Buffer.from(initGptParams(tiny, 1234).buffer)).toEqual(Buffer.from(a.buffer));
    const b = initGptParams(tiny, 1235);
    const c = initGptParams(tiny, '1234'); // a string seed is not the number
    const differ = (x: Float32Array, y: Float32Array) => x.filter((v, i) => v !== y[i] && v !== 0 && v !== 1).length;
    const random = a.filter((v) => v !== 0 && v !== 1).length;
    expect(differ(a, b)).toBe(random);
    expect(differ(a, c)).toBe(random);
    expect(() => initGptParams(tiny, 0.5)).toThrow('seed must be a safe integer or a string');
  });

  it('gives the same bits on every machine (pinned hash)', () => {
    // If this changes, every peer's θ₀ changes: bump the stream domain ('concord/init/v1') on purpose.
    const hash = createHash('sha256').update(initGptParams(tiny, 'concord')).digest('hex');
    expect(hash).toBe('78c96c98a60a024d9e9a2ca2dfc1b53567c2c2f53436c2d474b85522a13aa00c');
  });

  it("draws each tensor from its own stream: a tensor's values do not depend on the others", () => {
    const one = viewsOf(layoutOf(gptParamSpecs({ ...tiny, layers: 1 })), initGptParams({ ...tiny, layers: 1 }, 7));
    const two = viewsOf(layoutOf(gptParamSpecs({ ...tiny, layers: 3 })), initGptParams({ ...tiny, layers: 3 }, 7));
    expect(two.get('h0.attn.w')).toEqual(one.get('h0.attn.w'));
    expect(two.get('wte')).toEqual(one.get('wte'));
    expect(two.get('h1.attn.w')).not.toEqual(two.get('h0.attn.w'));
  });

  it('has GPT-2 statistics: N(0, 0.02²) weights, residual projections ÷√(2·layers), biases 0, gains 1', () => {
    const config = DEFAULT_SMALL_GPT;
    const started = performance.now();
    const flat = initGptParams(config, 'statistics');
    const elapsed = performance.now() - started;
    const views = viewsOf(layoutOf(gptParamSpecs(config)), flat);
    const view = (name: string) => views.get(name) as Float32Array;

    const wte = stats(view('wte')); // 1M samples: std of the std estimate ≈ 0.02/√(2N) ≈ 1.4e-5
    expect(Math.abs(wte.std - 0.02)).toBeLessThan(1e-4);
    expect(Math.abs(wte.mean)).toBeLessThan(1e-4); // 5σ of the mean is 1e-4
    expect(Math.abs(wte.within1 - 0.6827)).toBeLessThan(0.003); // normal, not uniform (0.577)
    expect(Math.abs(wte.kurtosis - 3)).toBeLessThan(0.03);

    const residualStd = 0.02 / Math.sqrt(2 * config.layers);
    for (let i = 0; i < config.layers; i++) {
      for (const [name, std] of [['attn.w', 0.02], ['fc.w', 0.02], ['proj.w', residualStd], ['fc2.w', residualStd]] as const) {
        const s = stats(view(`h${i}.${name}`));
        expect({ name: `h${i}.${name}`, std: Math.abs(s.std / std - 1) < 0.01 }).toEqual({ name: `h${i}.${name}`, std: true });
      }
      for (const name of ['attn.b', 'proj.b', 'fc.b', 'fc2.b', 'ln1.b', 'ln2.b']) expect(view(`h${i}.${name}`).every((v) => v === 0)).toBe(true);
      for (const name of ['ln1.w', 'ln2.w']) expect(view(`h${i}.${name}`).every((v) => v === 1)).toBe(true);
    }
    expect(Math.abs(stats(view('wpe')).std / 0.02 - 1)).toBeLessThan(0.02);
    expect(view('lnf.w').every((v) => v === 1) && view('lnf.b').every((v) => v === 0)).toBe(true);
    expect(elapsed).toBeLessThan(QUICK_WORK_MS); // 4.2M values; about 1 s on an idle core
  });
});
