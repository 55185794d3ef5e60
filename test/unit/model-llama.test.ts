/** @jest-environment ./test/support/ort-environment.cjs */
// The Llama-family graphs run by onnxruntime: the whole model's flat gradient against central
// finite differences (float64; grouped-query attention with an untied head, and multi-head with a
// tied one), float32 against float64, the 'loss' and 'logits' graphs against 'train',
// grouped-query attention against the multi-head model it abbreviates, and a short overfitting run.
import { describe, expect, it } from '@jest/globals';
import { initLlamaParams, llamaParamSpecs, type LlamaConfig } from '../../trainer/src/model/index.js';
import { layoutOf, viewsOf } from '../../trainer/src/params.js';
import { lossOf, modelSession, randomBatch, spreadParams, wholeModelGradCheck } from '../support/model-graphs.js';

const tiny: LlamaConfig = { family: 'llama', vocabSize: 11, seqLen: 5, layers: 2, dModel: 8, heads: 2, kvHeads: 1, ffnWidth: 12, ropeTheta: 10_000, normEps: 1e-5, tiedEmbeddings: false };
const BATCH = 2;

describe.each<[string, LlamaConfig]>([
  ['grouped-query attention, untied output', tiny],
  ['multi-head attention, tied output', { ...tiny, kvHeads: 2, tiedEmbeddings: true }],
])('the Llama graphs (%s)', (_name, config) => {
  const data = randomBatch(config, BATCH, 3);

  it('returns a flat gradient equal to central finite differences of the loss (float64, every parameter)', async () => {
    const check = await wholeModelGradCheck(config, data, BATCH, 11);
    expect(check.checked).toBe(check.expectedChecks);
    expect(check.worst.error).toBeLessThan(1e-6);
    expect(check.loss).toBeGreaterThan(1);
    expect(check.maxGradient).toBeGreaterThan(0.1);
  });

  it('computes the same loss and gradients in float32 as in float64', async () => {
    const f64 = await modelSession(config, 'float64', 'train', BATCH);
    const f32 = await modelSession(config, 'float32', 'train', BATCH);
    const values = Float32Array.from(spreadParams(config, f64.layout, 12));
    const r64 = await f64.run(Float64Array.from(values), data);
    const r32 = await f32.run(values, data);
    await f64.session.release();
    await f32.session.release();
    expect(Math.abs(lossOf(r32) - lossOf(r64)) / lossOf(r64)).toBeLessThan(1e-5);
    const g64 = r64.grads?.data as Float64Array;
    const g32 = r32.grads?.data as Float32Array;
    for (const t of f64.layout.tensors) {
      let scale = 0;
      let diff = 0;
      for (let i = t.offset; i < t.offset + t.size; i++) {
        scale = Math.max(scale, Math.abs(g64[i]!));
        diff = Math.max(diff, Math.abs(g64[i]! - g32[i]!));
      }
      expect({ name: t.name, ok: diff <= 1e-4 * scale }).toEqual({ name: t.name, ok: true });
    }
  });

  it("'loss' and 'logits' agree with 'train', and the init predicts nearly uniformly", async () => {
    const train = await modelSession(config, 'float32', 'train', BATCH);
    const evaluate = await modelSession(config, 'float32', 'loss', BATCH);
    const infer = await modelSession(config, 'float32', 'logits', BATCH);
    const flat = initLlamaParams(config, 'agree');
    const trained = lossOf(await train.run(flat, data));
    const evaluated = lossOf(await evaluate.run(flat, data));
    const logits = (await infer.run(flat, data)).logits?.data as Float32Array;
    await Promise.all([train.session.release(), evaluate.session.release(), infer.session.release()]);
    expect(Math.abs(evaluated - trained)).toBeLessThan(1e-6 * trained);
    const V = config.vocabSize;
    let total = 0;
    for (let i = 0; i < data.targets.length; i++) {
      const row = logits.subarray(i * V, (i + 1) * V);
      const max = Math.max(...row);
      total += max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0)) - row[data.targets[i]!]!;
    }
    expect(Math.abs(total / data.targets.length - trained)).toBeLessThan(1e-5 * trained);
    expect(Math.abs(trained - Math.log(V))).toBeLessThan(0.05);
  });
});

describe('grouped-query attention', () => {
  it('equals multi-head attention whose key and value heads are copies within each group', async () => {
    const gqa: LlamaConfig = { ...tiny, dModel: 16, heads: 4, kvHeads: 2 };
    const mha: LlamaConfig = { ...gqa, kvHeads: 4 };
    const gqaLayout = layoutOf(llamaParamSpecs(gqa));
    const mhaLayout = layoutOf(llamaParamSpecs(mha));
    const flat = Float32Array.from(spreadParams(gqa, gqaLayout, 4));
    // Query head j reads key/value head floor(j / (heads / kvHeads)), as Hugging Face's repeat_kv.
    const hs = gqa.dModel / gqa.heads;
    const group = gqa.heads / gqa.kvHeads;
    const source = viewsOf(gqaLayout, flat);
    const target = new Float32Array(mhaLayout.size);
    const views = viewsOf(mhaLayout, target);
    for (const [name, view] of views) {
      const from = source.get(name)!;
      if (!name.endsWith('.qkv.w')) {
        view.set(from);
        continue;
      }
      const [inWidth, fromWidth, toWidth] = [gqa.dModel, (gqa.heads + 2 * gqa.kvHeads) * hs, (mha.heads + 2 * mha.kvHeads) * hs];
      for (let row = 0; row < inWidth; row++) {
        const column = (to: number, fromColumn: number) => { view[row * toWidth + to] = from[row * fromWidth + fromColumn]!; };
        for (let c = 0; c < gqa.heads * hs; c++) column(c, c); // queries unchanged
        for (const part of [0, 1]) { // keys, then values
          for (let head = 0; head < mha.heads; head++) {
            const kvHead = Math.floor(head / group);
            for (let c = 0; c < hs; c++) {
              column(gqa.heads * hs + part * mha.heads * hs + head * hs + c, gqa.heads * hs + part * gqa.kvHeads * hs + kvHead * hs + c);
            }
          }
        }
      }
    }
    const data = randomBatch(gqa, 1, 9);
    const a = await modelSession(gqa, 'float32', 'logits', 1);
    const b = await modelSession(mha, 'float32', 'logits', 1);
    const la = (await a.run(flat, data)).logits?.data as Float32Array;
    const lb = (await b.run(target, data)).logits?.data as Float32Array;
    await Promise.all([a.session.release(), b.session.release()]);
    const scale = Math.max(...la.map(Math.abs));
    expect(scale).toBeGreaterThan(0.1);
    expect(Math.max(...la.map((v, i) => Math.abs(v - lb[i]!)))).toBeLessThan(1e-5 * scale);
  });
});

describe('training the Llama model with its flat gradient', () => {
  it('overfits one batch in 30 steps of plain SGD (float32, its own init)', async () => {
    const config: LlamaConfig = { ...tiny, vocabSize: 64, seqLen: 16, dModel: 64, heads: 4, kvHeads: 2, ffnWidth: 192 };
    const train = await modelSession(config, 'float32', 'train', 4);
    const data = randomBatch(config, 4, 8);
    const flat = initLlamaParams(config, 'overfit');
    const losses: number[] = [];
    for (let step = 0; step < 30; step++) {
      const result = await train.run(flat, data);
      const grads = result.grads?.data as Float32Array;
      for (let i = 0; i < flat.length; i++) flat[i] = flat[i]! - 0.3 * grads[i]!;
      losses.push(lossOf(result));
    }
    await train.session.release();
    const first = losses[0]!;
    const last5 = losses.slice(-5).reduce((s, l) => s + l, 0) / 5;
    if (!(last5 < 0.25 * first)) console.log(losses.map((l) => l.toFixed(3)).join(' '));
    expect(Math.abs(first - Math.log(config.vocabSize))).toBeLessThan(0.05);
    expect(last5).toBeLessThan(0.25 * first);
  });
});
