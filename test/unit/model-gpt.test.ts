/** @jest-environment ./test/support/ort-environment.cjs */
// The production GPT graphs run by onnxruntime: the 'train' graph's flat gradient against central
// finite differences of its loss (float64, whole model, both norms), float32 against float64,
// the 'loss' and 'logits' graphs against 'train', and a short overfitting run with plain SGD on
// the flat parameter vector.
import { describe, expect, it } from '@jest/globals';
import * as ort from 'onnxruntime-node';
import type { FloatDType } from '../../trainer/src/graph/index.js';
import type { GptConfig } from '../../trainer/src/model/config.js';
import { buildGptGraph, initGptParams, type GptOutputs } from '../../trainer/src/model/gpt.js';
import { lossOf, modelSession, randomBatch, sessionOptions, spreadParams, wholeModelGradCheck } from '../support/model-graphs.js';

const tiny: GptConfig = { vocabSize: 11, seqLen: 5, layers: 2, dModel: 8, heads: 2, mlpRatio: 4, norm: 'layernorm' };
const BATCH = 2;
const gptSession = (config: GptConfig, dtype: FloatDType, outputs: GptOutputs, batch = BATCH) => modelSession(config, dtype, outputs, batch);

describe.each<GptConfig['norm']>(['layernorm', 'rmsnorm'])('the GPT graphs (%s)', (norm) => {
  const config: GptConfig = { ...tiny, norm };
  const data = randomBatch(config, BATCH, 3);

  it('returns a flat gradient equal to central finite differences of the loss (float64, every parameter)', async () => {
    const check = await wholeModelGradCheck(config, data, BATCH, 11);
    expect(check.checked).toBe(check.expectedChecks);
    // The worst error seen is 5e-8 (with eps 1e-6, 5e-7).
    expect(check.worst.error).toBeLessThan(1e-6);
    // The check is not vacuous: the loss is far from trivial and the gradients are large.
    expect(check.loss).toBeGreaterThan(1);
    expect(check.maxGradient).toBeGreaterThan(0.1);
  });

  it('computes the same loss and gradients in float32 as in float64', async () => {
    const f64 = await gptSession(config, 'float64', 'train');
    const f32 = await gptSession(config, 'float32', 'train');
    const values = Float32Array.from(spreadParams(config, f64.layout, 12)); // both graphs see the same (float32) values
    const r64 = await f64.run(Float64Array.from(values), data);
    const r32 = await f32.run(values, data);
    await f64.session.release();
    await f32.session.release();
    expect(r32.loss?.type).toBe('float32');
    expect(r32.grads?.type).toBe('float32');
    // float32 rounds each operation to 6e-8 relative; through two blocks, softmaxes and sums of
    // up to B·T·V terms the errors seen here are ~1e-7 (loss) and ~1e-6 of each tensor's largest
    // gradient: the bounds leave 10-100× margin and still catch any wrong term.
    expect(Math.abs(lossOf(r32) - lossOf(r64)) / lossOf(r64)).toBeLessThan(1e-5);
    const g64 = r64.grads?.data as Float64Array;
    const g32 = r32.grads?.data as Float32Array;
    for (const t of f64.layout.tensors) {
      let scale = 0;
      let diff = 0;
      for (let i = t.offset; i < t.offset + t.size; i++) {
        scale = Math.max(scale, Math.abs(g64[i] as number));
        diff = Math.max(diff, Math.abs((g64[i] as number) - (g32[i] as number)));
      }
      expect({ name: t.name, ok: diff <= 1e-4 * scale }).toEqual({ name: t.name, ok: true });
    }
  });

  it("'loss' and 'logits' graphs agree with 'train'; cross-entropy of the logits is the loss", async () => {
    const train = await gptSession(config, 'float32', 'train');
    const evaluate = await gptSession(config, 'float32', 'loss');
    const infer = await gptSession(config, 'float32', 'logits');
    expect(evaluate.session.outputNames).toEqual(['loss', 'sequenceLosses']);
    expect(infer.session.outputNames).toEqual(['logits']);
    expect(infer.session.inputNames).not.toContain('targets');
    const flat = initGptParams(config, 'agree');
    const trained = lossOf(await train.run(flat, data));
    const evaluatedOutputs = await evaluate.run(flat, data);
    const evaluated = lossOf(evaluatedOutputs);
    const result = await infer.run(flat, data);
    await Promise.all([train.session.release(), evaluate.session.release(), infer.session.release()]);

    expect(Math.abs(evaluated - trained)).toBeLessThan(1e-6 * trained);
    expect(result.logits?.dims).toEqual([BATCH, config.seqLen, config.vocabSize]);
    const logits = result.logits?.data as Float32Array;
    const V = config.vocabSize;
    let total = 0;
    for (let i = 0; i < data.targets.length; i++) {
      const row = logits.subarray(i * V, (i + 1) * V);
      const max = Math.max(...row);
      const logSum = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
      total += logSum - (row[data.targets[i] as number] as number);
    }
    expect(Math.abs(total / data.targets.length - trained)).toBeLessThan(1e-5 * trained);
    // Per-sequence losses: one per row of the batch, and their mean is the batch loss.
    const perSequence = evaluatedOutputs.sequenceLosses?.data as Float32Array;
    expect(evaluatedOutputs.sequenceLosses?.dims).toEqual([BATCH]);
    const meanOfSequences = perSequence.reduce((s, v) => s + v, 0) / BATCH;
    expect(Math.abs(meanOfSequences - evaluated)).toBeLessThan(1e-5 * evaluated);
    // GPT-2 init predicts nearly uniformly: the loss starts at about ln V.
    expect(Math.abs(trained - Math.log(V))).toBeLessThan(0.05);
  });
});

describe('building the GPT graphs', () => {
  it('exports a self-contained inference model with the weights baked in', async () => {
    const config: GptConfig = { ...tiny, layers: 1 };
    const flat = initGptParams(config, 'export');
    const data = randomBatch(config, 1, 4);
    const fed = await gptSession(config, 'float32', 'logits', 1);
    const expected = (await fed.run(flat, data)).logits?.data as Float32Array;
    await fed.session.release();
    const session = await ort.InferenceSession.create(buildGptGraph(config, { batch: 1, outputs: 'logits', weights: flat }), sessionOptions);
    expect(session.inputNames).toEqual(['tokens']);
    const result = await session.run({ tokens: new ort.Tensor('int32', data.tokens, [1, config.seqLen]) });
    await session.release();
    expect(result.logits?.data).toEqual(expected);
    expect(() => buildGptGraph(config, { batch: 1, outputs: 'train', weights: flat })).toThrow('not for train');
  });

  it('refuses a bad config or batch before building anything', () => {
    expect(() => buildGptGraph({ ...tiny, heads: 3 }, { batch: 1, outputs: 'loss' })).toThrow('config.heads: 3 does not divide config.dModel (8)');
    expect(() => buildGptGraph(tiny, { batch: 0, outputs: 'loss' })).toThrow('batch must be a positive integer, got 0');
  });
});

describe('training the GPT with its flat gradient', () => {
  it('overfits one batch in 30 steps of plain SGD (float32, GPT-2 init)', async () => {
    const config: GptConfig = { vocabSize: 64, seqLen: 16, layers: 2, dModel: 64, heads: 4, mlpRatio: 4, norm: 'layernorm' };
    const train = await gptSession(config, 'float32', 'train', 4);
    const data = randomBatch(config, 4, 8);
    const flat = initGptParams(config, 'overfit');
    const lr = 0.3;
    const losses: number[] = [];
    for (let step = 0; step < 30; step++) {
      const result = await train.run(flat, data);
      const grads = result.grads?.data as Float32Array;
      for (let i = 0; i < flat.length; i++) flat[i] = (flat[i] as number) - lr * (grads[i] as number);
      losses.push(lossOf(result));
    }
    await train.session.release();
    const first = losses[0] as number;
    const last5 = losses.slice(-5).reduce((s, l) => s + l, 0) / 5; // plain SGD wobbles step to step
    expect(Math.abs(first - Math.log(config.vocabSize))).toBeLessThan(0.05);
    if (!(last5 < 0.25 * first)) console.log(losses.map((l) => l.toFixed(3)).join(' '));
    // Random targets memorised: from ln 64 ≈ 4.16 to below 1.04 (here ≈ 0.72). A gradient with the
    // wrong sign, scale or layout diverges or stalls near ln 64.
    expect(last5).toBeLessThan(0.25 * first);
  });
});
