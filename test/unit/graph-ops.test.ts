/** @jest-environment ./test/support/ort-environment.cjs */
// Every op's gradient rule against central finite differences, float64, run by onnxruntime:
// loss = Σ sum(op(inputs) ⊙ W) with random W, so each rule is checked on every output element.
import { describe, expect, it } from '@jest/globals';
import * as ort from 'onnxruntime-node';
import {
  add,
  causalMask,
  concat,
  crossEntropy,
  div,
  exp,
  expand,
  gather,
  gatherElements,
  gelu,
  gradients,
  Graph,
  layerNorm,
  log,
  logSoftmax,
  matmul,
  mean,
  mul,
  neg,
  pow,
  reduceMean,
  reduceSum,
  reshape,
  rmsNorm,
  rotary,
  rotaryTables,
  sigmoid,
  silu,
  slice,
  softmax,
  split,
  sqrt,
  sub,
  sum,
  swapAxes,
  tanh,
  toOnnx,
  transpose,
  where,
  type Shape,
  type Tensor,
  type TensorData,
} from '../../trainer/src/graph/index.js';
import { gradCheck, normal, probeLoss, seededRandom } from '../../trainer/src/graph/gradcheck.js';

const TOLERANCE = 1e-6;

/** One float64 graph with random parameters and integer inputs, checked by gradCheck. */
class Case {
  readonly graph = new Graph({ dtype: 'float64' });
  readonly values: Record<string, TensorData> = {};
  readonly params: Tensor[] = [];
  readonly random: () => number;

  constructor(seed = 7) {
    this.random = seededRandom(seed);
  }

  /** A parameter with N(0,1) values, or values in [0.5, 2) where the op needs them positive. */
  param(shape: Shape, positive = false): Tensor {
    const t = this.graph.param(`p${this.params.length}`, shape);
    const size = t.size;
    this.values[t.name] = positive ? Float64Array.from({ length: size }, () => 0.5 + 1.5 * this.random()) : normal(this.random, size);
    this.params.push(t);
    return t;
  }

  ids(shape: Shape, below: number, dtype: 'int32' | 'int64' = 'int64'): Tensor {
    const t = this.graph.input(`ids${Object.keys(this.values).length}`, dtype, shape);
    const size = t.size;
    const raw = Array.from({ length: size }, (_, i) => (i * 7 + 3) % below); // repeats on purpose
    this.values[t.name] = dtype === 'int64' ? BigInt64Array.from(raw, BigInt) : Int32Array.from(raw);
    return t;
  }

  async maxError(...ys: Tensor[]): Promise<number> {
    const result = await gradCheck(probeLoss(ys, this.random), this.params, this.values);
    if (result.maxError >= TOLERANCE) console.log(result); // the worst coordinate, to debug a failing rule
    return result.maxError;
  }
}

/** Builds the op on fresh parameters of the given shapes and returns the max gradient error. */
async function check(shapes: Shape[], op: (...xs: Tensor[]) => Tensor | Tensor[], positive = false): Promise<number> {
  const c = new Case();
  const xs = shapes.map((s) => c.param(s, positive));
  return c.maxError(...[op(...xs)].flat());
}

describe('gradients of elementwise ops match finite differences', () => {
  it('Add, same shapes and broadcast both ways', async () => {
    expect(await check([[2, 3, 4], [3, 1]], add)).toBeLessThan(TOLERANCE);
    expect(await check([[1, 4], [3, 1]], add)).toBeLessThan(TOLERANCE);
    expect(await check([[2, 3]], (x) => add(x, 1.5))).toBeLessThan(TOLERANCE);
  });
  it('Sub, with the left operand broadcast', async () => {
    expect(await check([[4], [2, 3, 4]], sub)).toBeLessThan(TOLERANCE);
    expect(await check([[2, 3]], (x) => sub(2, x))).toBeLessThan(TOLERANCE);
  });
  it('Mul, broadcast and a tensor used twice', async () => {
    expect(await check([[2, 3, 4], [4]], mul)).toBeLessThan(TOLERANCE);
    expect(await check([[3, 2]], (x) => mul(x, x))).toBeLessThan(TOLERANCE);
  });
  it('Div, broadcast denominator', async () => {
    expect(await check([[2, 3], [2, 1]], div, true)).toBeLessThan(TOLERANCE);
  });
  it('Pow with exponents 2, 3 and 0.5', async () => {
    expect(await check([[2, 3]], (x) => [pow(x, 2), pow(x, 3), pow(x, 0.5)], true)).toBeLessThan(TOLERANCE);
  });
  it('Neg, Exp, Tanh', async () => {
    expect(await check([[2, 3]], (x) => [neg(x), exp(x), tanh(x)])).toBeLessThan(TOLERANCE);
  });
  it('Log and Sqrt on positive inputs', async () => {
    expect(await check([[2, 3]], (x) => [log(x), sqrt(x)], true)).toBeLessThan(TOLERANCE);
  });
  it('Where with a broadcast condition and a scalar branch', async () => {
    const c = new Case();
    const [a, b] = [c.param([2, 3]), c.param([3])];
    const cond = c.graph.constant([1, 0, 1, 0, 0, 1], 'bool', [2, 3]);
    expect(await c.maxError(where(cond, a, b), where(cond, 0, a))).toBeLessThan(TOLERANCE);
  });
});

describe('gradients of MatMul match finite differences', () => {
  it('plain 2-D product', async () => {
    expect(await check([[2, 3], [3, 4]], matmul)).toBeLessThan(TOLERANCE);
  });
  it('batched activations times a shared weight', async () => {
    expect(await check([[2, 3, 4], [4, 5]], matmul)).toBeLessThan(TOLERANCE);
  });
  it('broadcast leading dimensions on both sides', async () => {
    expect(await check([[2, 1, 3, 4], [3, 4, 2]], matmul)).toBeLessThan(TOLERANCE);
    expect(await check([[3, 4], [2, 4, 5]], matmul)).toBeLessThan(TOLERANCE);
  });
});

describe('gradients of shape ops match finite differences', () => {
  it('Transpose and swapAxes', async () => {
    expect(await check([[2, 3, 4]], (x) => [transpose(x, [2, 0, 1]), swapAxes(x, -2, -1)])).toBeLessThan(TOLERANCE);
  });
  it('Reshape with an inferred dimension', async () => {
    expect(await check([[2, 3, 4]], (x) => reshape(x, [6, -1]))).toBeLessThan(TOLERANCE);
  });
  it('Expand', async () => {
    expect(await check([[3, 1]], (x) => expand(x, [2, 3, 4]))).toBeLessThan(TOLERANCE);
  });
  it('Split and Concat', async () => {
    expect(await check([[2, 6]], (x) => split(x, -1, [1, 2, 3]))).toBeLessThan(TOLERANCE);
    expect(await check([[2, 3], [2, 1]], (a, b) => concat([a, b, a], 1))).toBeLessThan(TOLERANCE);
  });
  it('Split with an unused piece', async () => {
    expect(await check([[4, 3]], (x) => split(x, 0, [1, 3])[1] as Tensor)).toBeLessThan(TOLERANCE);
  });
  it('Slice', async () => {
    expect(await check([[3, 5]], (x) => slice(x, 1, 1, 4))).toBeLessThan(TOLERANCE);
  });
});

describe('gradients of reductions match finite differences', () => {
  it('ReduceSum over some axes, with and without keepdims', async () => {
    expect(await check([[2, 3, 4]], (x) => [reduceSum(x, [1], true), reduceSum(x, [0, -1])])).toBeLessThan(TOLERANCE);
  });
  it('ReduceMean and the mean of everything', async () => {
    expect(await check([[2, 3, 4]], (x) => [reduceMean(x, [-1], true), mean(x)])).toBeLessThan(TOLERANCE);
  });
});

describe('gradients of indexing ops match finite differences', () => {
  it('Gather (embedding lookup) with repeated int64 and int32 ids', async () => {
    const c = new Case();
    const table = c.param([5, 3]);
    expect(await c.maxError(gather(table, c.ids([2, 4], 5)), gather(table, c.ids([3], 5, 'int32')))).toBeLessThan(TOLERANCE);
  });
  it('GatherElements', async () => {
    const c = new Case();
    const x = c.param([3, 4]);
    expect(await c.maxError(gatherElements(x, c.ids([3, 2], 4), 1))).toBeLessThan(TOLERANCE);
  });
});

describe('gradients of network ops match finite differences', () => {
  it('Softmax over the last and a middle axis', async () => {
    expect(await check([[2, 3, 4]], (x) => [softmax(x), softmax(x, 1)])).toBeLessThan(TOLERANCE);
  });
  it('LogSoftmax', async () => {
    expect(await check([[2, 3, 5]], (x) => logSoftmax(x))).toBeLessThan(TOLERANCE);
  });
  it('LayerNorm with and without bias', async () => {
    expect(await check([[2, 3, 6], [6], [6]], (x, w, b) => [layerNorm(x, w as Tensor, b), layerNorm(x, w as Tensor)])).toBeLessThan(TOLERANCE);
  });
  it('RMSNorm', async () => {
    expect(await check([[2, 3, 6], [6]], (x, w) => rmsNorm(x, w as Tensor))).toBeLessThan(TOLERANCE);
  });
  it('GELU (tanh approximation)', async () => {
    expect(await check([[3, 5]], (x) => gelu(mul(x, 2)))).toBeLessThan(TOLERANCE);
  });
  it('GELU in float32 (the fused ONNX Gelu) agrees with the float64 primitives, forward and backward', async () => {
    // Finite differences mean nothing in float32; the float64 rule is checked above, so the
    // fused op is checked against it: value and gradient within float32 rounding.
    const x = normal(seededRandom(3), 64).map((v) => 3 * v); // well into both tails
    const w = normal(seededRandom(4), 64);
    const evaluate = async (dtype: 'float32' | 'float64') => {
      const g = new Graph({ dtype });
      const xp = g.param('x', [8, 8]);
      const y = gelu(xp);
      const loss = sum(mul(y, g.constant(w, dtype, [8, 8])));
      const [gx] = gradients(loss, [xp]);
      const session = await ort.InferenceSession.create(toOnnx(g, { outputs: { y, gx: gx! } }), { intraOpNumThreads: 1 });
      try {
        const data = dtype === 'float32' ? Float32Array.from(x) : Float64Array.from(x);
        const out = await session.run({ x: new ort.Tensor(dtype, data, [8, 8]) });
        return { y: [...(out.y!.data as Float32Array)], gx: [...(out.gx!.data as Float32Array)] };
      } finally {
        await session.release();
      }
    };
    const [fused, exact] = [await evaluate('float32'), await evaluate('float64')];
    // Absolute below 1, relative above. ORT's kernel computes tanh with a vectorised float32
    // approximation: measured 3e-7 (value) and 1e-6 (gradient), ten float32 ulps at most.
    const relative = (a: number[], b: number[]) => Math.max(...a.map((v, i) => Math.abs(v - b[i]!) / Math.max(1, Math.abs(b[i]!))));
    expect(relative(fused.y, exact.y)).toBeLessThan(1e-5);
    expect(relative(fused.gx, exact.gx)).toBeLessThan(1e-5);
    const f32 = new Graph();
    expect(() => toOnnx(f32, { outputs: { y: gelu(f32.param('x', [2])) }, opset: 18 })).toThrow(/opset 18 is too old for Gelu, need 20/);
  });
  it('Sigmoid and SiLU (the float64 form; float32 graphs use the form ORT fuses)', async () => {
    expect(await check([[3, 5]], (x) => [sigmoid(mul(x, 3)), silu(mul(x, 3))])).toBeLessThan(TOLERANCE);
  });
  it('rotary position embedding over [B, H, T, d], grouped heads included', async () => {
    const c = new Case();
    const x = c.param([2, 3, 4, 6]);
    expect(await c.maxError(rotary(x, rotaryTables(c.graph, 4, 6, 10)))).toBeLessThan(TOLERANCE);
  });
  it('rotary embedding: a query-key dot product depends only on their distance, and norms are kept', async () => {
    // q at position t and k at position s: <R_t q, R_s k> = <R_{t−s} q, k>. Same q and k at every
    // position, so the [T, T] score matrix must be constant along each diagonal.
    const T = 6;
    const d = 8;
    const g = new Graph({ dtype: 'float64' });
    const q = g.input('q', 'float64', [T, d]);
    const k = g.input('k', 'float64', [T, d]);
    const tables = rotaryTables(g, T, d, 100);
    const rq = rotary(q, tables);
    const scores = matmul(rq, transpose(rotary(k, tables), [1, 0]));
    const norms = reduceSum(mul(rq, rq), [-1]);
    const session = await ort.InferenceSession.create(toOnnx(g, { outputs: { scores, norms } }), { intraOpNumThreads: 1 });
    const random = seededRandom(2);
    const qv = normal(random, d);
    const kv = normal(random, d);
    const tile = (v: Float64Array) => Float64Array.from({ length: T * d }, (_, i) => v[i % d]!);
    const out = await session.run({ q: new ort.Tensor('float64', tile(qv), [T, d]), k: new ort.Tensor('float64', tile(kv), [T, d]) });
    await session.release();
    const s = out.scores!.data as Float64Array;
    for (let t = 1; t < T; t++) for (let u = 1; u < T; u++) expect(s[t * T + u]).toBeCloseTo(s[(t - 1) * T + (u - 1)]!, 12);
    expect(Math.abs(s[0]! - s[T - 1]!)).toBeGreaterThan(1e-3); // and it does change with distance
    const qq = qv.reduce((a, v) => a + v * v, 0);
    for (const n of out.norms!.data as Float64Array) expect(n).toBeCloseTo(qq, 12);
  });
  it('causally masked softmax', async () => {
    const c = new Case();
    const scores = c.param([2, 4, 4]);
    expect(await c.maxError(softmax(add(scores, causalMask(c.graph, 4))))).toBeLessThan(TOLERANCE);
  });
  it('cross-entropy of logits against int64 and int32 targets', async () => {
    const c = new Case();
    const logits = c.param([2, 3, 7]);
    expect(await c.maxError(crossEntropy(logits, c.ids([2, 3], 7)), crossEntropy(logits, c.ids([2, 3], 7, 'int32')))).toBeLessThan(TOLERANCE);
  });
});
