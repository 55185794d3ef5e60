// What the export tests share: a small BPE trained on Brown's press reportage, and parameters
// that behave like a trained model's (the init plus a spread), so that attention and positions
// decide each next token; a near-uniform init would let a broken cache or rotation pass unnoticed.
import { BpeTokenizer } from '../../trainer/src/data/bpe.js';
import { loadBrown } from '../../trainer/src/data/corpus.js';
import type { TextTokenizer } from '../../trainer/src/data/tokenizer-json.js';
import { openGenerator } from '../../trainer/src/export/generate.js';
import { initModelParams, modelParamSpecs, type ModelConfig } from '../../trainer/src/model/index.js';
import { layoutOf } from '../../trainer/src/params.js';
import { spreadParams } from './model-graphs.js';

export function smallTokenizer(): BpeTokenizer {
  return BpeTokenizer.train(loadBrown({ genres: 'a' }).slice(0, 12).map((d) => d.text), { vocabSize: 400 });
}

export function decisiveParams(config: ModelConfig, seed: number): Float32Array {
  const init = initModelParams(config, seed);
  const spread = spreadParams(config, layoutOf(modelParamSpecs(config)), seed + 1);
  return init.map((v, i) => v + 0.3 * spread[i]!);
}

/** Concord's own sampler, greedy: up to `count` new tokens after `prompt`. */
export async function concordGreedy(config: ModelConfig, params: Float32Array, tokenizer: TextTokenizer, prompt: readonly number[], count: number): Promise<number[]> {
  const generator = await openGenerator(config, params, tokenizer);
  const ids: number[] = [];
  try {
    for await (const id of generator.generate(prompt, { count, temperature: 0, topK: 0, random: Math.random })) ids.push(id);
  } finally {
    await generator.release();
  }
  return ids;
}
