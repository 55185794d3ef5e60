/** @jest-environment ./test/support/ort-environment.cjs */
// A one-block GPT written with the graph builder (token + position embeddings, pre-norm causal
// attention with 2 heads, GELU MLP, residuals, tied output projection, cross-entropy): its
// gradients against finite differences in float64, and the float32 build of the same code
// against the float64 one.
import { describe, expect, it } from '@jest/globals';
import * as ort from 'onnxruntime-node';
import {
  add,
  causalMask,
  crossEntropy,
  gather,
  gelu,
  gradients,
  Graph,
  layerNorm,
  linear,
  matmul,
  mul,
  reshape,
  rmsNorm,
  softmax,
  split,
  swapAxes,
  toOnnx,
  transpose,
  type FloatDType,
  type Tensor,
  type TensorData,
} from '../../trainer/src/graph/index.js';
import { gradCheck, normal, seededRandom } from '../../trainer/src/graph/gradcheck.js';

const cfg = { batch: 2, seq: 5, dModel: 8, heads: 2, vocab: 11 };

/** The model, nanoGPT-style. Returns the graph, its loss and its parameters. */
function buildGpt(dtype: FloatDType) {
  const { batch: B, seq: T, dModel: C, heads: H, vocab: V } = cfg;
  const hs = C / H;
  const g = new Graph({ dtype });
  const ids = g.input('ids', 'int64', [B, T]);
  const targets = g.input('targets', 'int64', [B, T]);
  const wte = g.param('wte', [V, C]);
  const wpe = g.param('wpe', [T, C]);
  const p = (name: string, ...shape: number[]) => g.param(`h0.${name}`, shape);

  const attention = (x: Tensor): Tensor => {
    const [q, k, v] = split(linear(x, p('attn.w', C, 3 * C), p('attn.b', 3 * C)), -1, [C, C, C]) as [Tensor, Tensor, Tensor];
    const heads = (t: Tensor) => transpose(reshape(t, [B, T, H, hs]), [0, 2, 1, 3]); // [B, H, T, hs]
    const scores = mul(matmul(heads(q), swapAxes(heads(k), -2, -1)), 1 / Math.sqrt(hs));
    const att = softmax(add(scores, causalMask(g, T)));
    const y = reshape(transpose(matmul(att, heads(v)), [0, 2, 1, 3]), [B, T, C]);
    return linear(y, p('proj.w', C, C), p('proj.b', C));
  };
  const mlp = (x: Tensor): Tensor => linear(gelu(linear(x, p('fc.w', C, 4 * C), p('fc.b', 4 * C))), p('fc2.w', 4 * C, C), p('fc2.b', C));

  let x = add(gather(wte, ids), wpe);
  x = add(x, attention(layerNorm(x, p('ln1.w', C), p('ln1.b', C))));
  x = add(x, mlp(layerNorm(x, p('ln2.w', C), p('ln2.b', C))));
  x = rmsNorm(x, g.param('lnf.w', [C]));
  const logits = matmul(x, transpose(wte, [1, 0])); // tied output projection
  return { g, loss: crossEntropy(logits, targets), logits };
}

/** Seeded values for every input: norm weights near 1, other weights N(0, 0.5²), token ids. */
function valuesFor(g: Graph, dtype: FloatDType): Record<string, TensorData> {
  const random = seededRandom(42);
  const values: Record<string, TensorData> = {};
  for (const t of g.inputs) {
    if (t.kind === 'input') {
      values[t.name] = BigInt64Array.from({ length: t.size }, () => BigInt(Math.floor(random() * cfg.vocab)));
      continue;
    }
    const v = normal(random, t.size, 0.5);
    if (t.name.includes('ln')) v.forEach((e, i) => (v[i] = 1 + e / 5));
    values[t.name] = dtype === 'float64' ? v : Float32Array.from(v);
  }
  return values;
}

describe('a GPT block built with the graph builder', () => {
  it('has gradients matching finite differences for every parameter (float64)', async () => {
    const { g, loss } = buildGpt('float64');
    const result = await gradCheck(loss, g.params, valuesFor(g, 'float64'), { samples: 16 });
    if (result.maxError >= 1e-6) console.log(result);
    expect(result.checked).toBe(g.params.reduce((n, p) => n + Math.min(16, p.size), 0));
    expect(result.maxError).toBeLessThan(1e-6);
  });

  it('computes the same loss and gradients in float32 as in float64, to float32 precision', async () => {
    const run = async (dtype: FloatDType) => {
      const { g, loss } = buildGpt(dtype);
      const grads = gradients(loss, g.params);
      const outputs = Object.fromEntries([['loss', loss], ...g.params.map((p, i) => [`grad.${p.name}`, grads[i] as Tensor])]);
      const session = await ort.InferenceSession.create(toOnnx(g, { outputs }), { intraOpNumThreads: 1 });
      const values = valuesFor(g, dtype);
      const feeds = Object.fromEntries(g.inputs.map((t) => [t.name, new ort.Tensor(t.dtype, values[t.name] as TensorData, [...t.shape])]));
      const result = await session.run(feeds);
      await session.release();
      return { result, grads: g.params.map((p) => `grad.${p.name}`) };
    };
    const f64 = await run('float64');
    const f32 = await run('float32');
    expect(f32.result.loss?.type).toBe('float32');
    const loss64 = Number(f64.result.loss?.data[0]);
    expect(Math.abs(Number(f32.result.loss?.data[0]) - loss64)).toBeLessThan(1e-5 * Math.abs(loss64));
    // The loss is near log(V), not degenerate, so the gradients carry signal.
    expect(loss64).toBeGreaterThan(1);
    for (const name of f64.grads) {
      const a = f64.result[name]?.data as Float64Array;
      const b = f32.result[name]?.data as Float32Array;
      const scale = Math.max(...a.map(Math.abs));
      const diff = Math.max(...a.map((v, i) => Math.abs(v - (b[i] as number))));
      expect({ name, relative: diff / scale < 1e-4 }).toEqual({ name, relative: true });
    }
  });
});
