// Concord's own text generation from a trained model: the training code's logits graph run on the
// last seqLen tokens, one new token per run. Slow (no cache: each step recomputes the window), and
// the reference the exported decoder is tested against.
import * as ort from 'onnxruntime-node';
import { GraphRunner, openSession } from '../engine/session.js';
import type { TextTokenizer } from '../data/tokenizer-json.js';
import { buildModelGraph, modelParamSpecs, type ModelConfig } from '../model/family.js';
import { layoutOf } from '../params.js';
import { sampleToken } from './sample.js';

export interface GenerateOptions {
  /** New tokens at most; generation also stops after end-of-text. */
  count: number;
  /** 0: greedy (the most likely token every step). */
  temperature: number;
  /** Draw from the topK most likely tokens only (0: all). */
  topK: number;
  /** A number in [0, 1) per draw; unused when greedy. */
  random: () => number;
}

export interface Generator {
  /** Yields each new token id as it is chosen; the end-of-text id last, if it is chosen. */
  generate(prompt: readonly number[], options: GenerateOptions): AsyncGenerator<number>;
  release(): Promise<void>;
}

/** A generator for the model `config` with parameters `params` (its flat vector). */
export async function openGenerator(config: ModelConfig, params: Float32Array, tokenizer: Pick<TextTokenizer, 'eot'>): Promise<Generator> {
  const { seqLen, vocabSize } = config;
  const { session } = await openSession(buildModelGraph(config, { batch: 1, outputs: 'logits' }));
  const runner = new GraphRunner(session, layoutOf(modelParamSpecs(config)));
  const window = new Int32Array(seqLen);
  const tokens = new ort.Tensor('int32', window, [1, seqLen]);
  return {
    async *generate(prompt, options) {
      const ids = prompt.length > 0 ? [...prompt] : [tokenizer.eot];
      for (let n = 0; n < options.count; n++) {
        // The last seqLen tokens, padded on the right: causal attention ignores the padding.
        const context = ids.slice(-seqLen);
        window.fill(0);
        window.set(context);
        const out = await runner.run(params, { tokens });
        const logits = (out.logits!.data as Float32Array).subarray((context.length - 1) * vocabSize, context.length * vocabSize);
        const next = sampleToken(logits, options, options.random);
        yield next;
        if (next === tokenizer.eot) return;
        ids.push(next);
      }
    },
    release: () => session.release(),
  };
}
