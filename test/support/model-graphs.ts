// Running a model family's production graphs in tests: random batches, parameters spread far
// from the init (so every non-linearity is exercised), a session fed with views of one flat
// vector, and the whole-model finite-difference check.
import { expect } from '@jest/globals';
import * as ort from 'onnxruntime-node';
import { normal, seededRandom } from '../../trainer/src/graph/gradcheck.js';
import type { FloatDType } from '../../trainer/src/graph/index.js';
import { buildModelGraph, modelParamRole, modelParamSpecs, type ModelConfig, type ModelOutputs } from '../../trainer/src/model/index.js';
import { layoutOf, type ParamLayout } from '../../trainer/src/params.js';

export const sessionOptions: ort.InferenceSession.SessionOptions = { executionProviders: ['cpu'], intraOpNumThreads: 1, interOpNumThreads: 1 };

export interface Batch {
  tokens: Int32Array;
  targets: Int32Array;
}

export function randomBatch(config: ModelConfig, batch: number, seed: number): Batch {
  const random = seededRandom(seed);
  const n = batch * config.seqLen;
  const ids = Int32Array.from({ length: n + batch }, () => Math.floor(random() * config.vocabSize));
  ids[1] = ids[0] as number; // a repeated token: the embedding gradient must add both rows
  const tokens = new Int32Array(n);
  const targets = new Int32Array(n);
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < config.seqLen; t++) {
      tokens[b * config.seqLen + t] = ids[b * (config.seqLen + 1) + t] as number;
      targets[b * config.seqLen + t] = ids[b * (config.seqLen + 1) + t + 1] as number;
    }
  }
  return { tokens, targets };
}

/** Parameters far from the init, so attention, the activations and the norms are all non-linear
 * where the gradients are checked: weights N(0, 0.5²), biases N(0, 0.1²), gains 1 + N(0, 0.1²). */
export function spreadParams(config: ModelConfig, layout: ParamLayout, seed: number): Float64Array {
  const random = seededRandom(seed);
  const flat = new Float64Array(layout.size);
  for (const t of layout.tensors) {
    const role = modelParamRole(config, t.name);
    const v = normal(random, t.size, role === 'bias' || role === 'gain' ? 0.1 : 0.5);
    flat.set(role === 'gain' ? v.map((e) => 1 + e) : v, t.offset);
  }
  return flat;
}

/** A session over one graph and a way to run it on a flat parameter vector (fed as views). */
export async function modelSession(config: ModelConfig, dtype: FloatDType, outputs: ModelOutputs, batch: number) {
  const layout = layoutOf(modelParamSpecs(config));
  const session = await ort.InferenceSession.create(buildModelGraph(config, { batch, dtype, outputs }), sessionOptions);
  const shape = [batch, config.seqLen];
  const run = async (flat: Float32Array | Float64Array, data: Batch) => {
    const feeds: Record<string, ort.Tensor> = {};
    for (const t of layout.tensors) feeds[t.name] = new ort.Tensor(dtype, flat.subarray(t.offset, t.offset + t.size), [...t.shape]);
    feeds.tokens = new ort.Tensor('int32', data.tokens, shape);
    if (outputs !== 'logits') feeds.targets = new ort.Tensor('int32', data.targets, shape);
    expect(Object.keys(feeds).sort()).toEqual([...session.inputNames].sort());
    return session.run(feeds);
  };
  return { session, layout, run };
}

export const lossOf = (result: ort.InferenceSession.ReturnType): number => Number(result.loss?.data[0]);

/**
 * The 'train' graph's flat gradient against central differences of the 'loss' graph, float64, at
 * 8 coordinates of every tensor (all of a smaller one, always its first and last). Returns the
 * worst relative error (absolute below `floor`) and how many coordinates were checked.
 * eps 1e-5: the quotient's rounding noise (~1e-16·loss/eps ≈ 1e-10) and its truncation error
 * (~eps²·f'''/6) both stay below 1e-9.
 */
export async function wholeModelGradCheck(config: ModelConfig, data: Batch, batch: number, seed: number) {
  const train = await modelSession(config, 'float64', 'train', batch);
  const forward = await modelSession(config, 'float64', 'loss', batch);
  const flat = spreadParams(config, train.layout, seed);
  try {
    const result = await train.run(flat, data);
    const grads = result.grads?.data as Float64Array;
    expect(result.grads?.dims).toEqual([train.layout.size]);
    const eps = 1e-5;
    const floor = 1e-3;
    const random = seededRandom(5);
    let worst = { error: 0, name: '', index: -1, analytic: 0, numeric: 0 };
    let checked = 0;
    for (const t of train.layout.tensors) {
      const picks = new Set([0, t.size - 1]);
      while (picks.size < Math.min(8, t.size)) picks.add(Math.floor(random() * t.size));
      for (const i of picks) {
        const at = t.offset + i;
        const original = flat[at] as number;
        flat[at] = original + eps;
        const plus = lossOf(await forward.run(flat, data));
        flat[at] = original - eps;
        const minus = lossOf(await forward.run(flat, data));
        flat[at] = original;
        const numeric = (plus - minus) / (2 * eps);
        const analytic = grads[at] as number;
        const error = Math.abs(analytic - numeric) / Math.max(Math.abs(analytic), Math.abs(numeric), floor);
        if (error >= worst.error) worst = { error, name: t.name, index: i, analytic, numeric };
        checked++;
      }
    }
    if (worst.error >= 1e-6) console.log(worst);
    const expectedChecks = train.layout.tensors.reduce((n, t) => n + Math.min(8, t.size), 0);
    return { worst, checked, expectedChecks, loss: lossOf(result), maxGradient: Math.max(...grads.map(Math.abs)) };
  } finally {
    await train.session.release();
    await forward.session.release();
  }
}
