/** @jest-environment ./test/support/ort-environment.cjs */
// The graph builder's contract apart from the gradient rules: shape errors at construction,
// what toOnnx writes, and how autodiff treats unused, blocked and rule-less paths.
import { describe, expect, it } from '@jest/globals';
import * as ort from 'onnxruntime-node';
import {
  add,
  crossEntropy,
  gradients,
  Graph,
  layerNorm,
  linear,
  matmul,
  mul,
  reshape,
  ShapeError,
  split,
  stopGradient,
  sum,
  toOnnx,
  transpose,
  type Tensor,
} from '../../trainer/src/graph/index.js';
import { layoutOf } from '../../trainer/src/params.js';
import { gradCheck } from '../../trainer/src/graph/gradcheck.js';

async function run(bytes: Uint8Array, feeds: Record<string, ort.Tensor>) {
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1 });
  try {
    return { inputNames: [...session.inputNames], result: await session.run(feeds) };
  } finally {
    await session.release();
  }
}

const f64 = (data: number[], dims: number[]) => new ort.Tensor('float64', Float64Array.from(data), dims);

describe('shape errors are raised when an op is added, naming the op and the shapes', () => {
  const g = new Graph({ dtype: 'float64' });
  const a = g.param('a', [2, 3]);
  const b = g.param('b', [4, 5]);

  it('rejects a MatMul whose inner dimensions differ', () => {
    expect(() => matmul(a, b)).toThrow(ShapeError);
    expect(() => matmul(a, b)).toThrow('MatMul: cannot multiply [2,3] by [4,5]: inner dimensions 3 and 4 differ; got float64[2,3], float64[4,5]');
  });
  it('rejects operands that do not broadcast', () => {
    expect(() => add(a, b)).toThrow(/^Add: shapes \[2,3\] and \[4,5\] do not broadcast/);
  });
  it('rejects a reshape to a different size, a bad permutation and split sizes that do not add up', () => {
    expect(() => reshape(a, [4, -1])).toThrow(/^Reshape: cannot reshape to \[4,-1\]; got float64\[2,3\]/);
    expect(() => transpose(a, [0, 0])).toThrow(/^Transpose: perm \[0,0\]/);
    expect(() => split(a, 1, [1, 1])).toThrow(/^Split: sizes \[1,1\] do not add up/);
  });
  it('rejects a LayerNorm weight of the wrong length and targets of the wrong shape', () => {
    expect(() => layerNorm(a, g.param('w', [2]))).toThrow(/^LayerNormalization: expects a float64 vector of length 3/);
    expect(() => crossEntropy(a, g.input('t', 'int64', [3]))).toThrow(/^Pick: targets must have shape \[2\]/);
  });
  it('rejects mixing dtypes and graphs', () => {
    const other = new Graph({ dtype: 'float64' });
    expect(() => add(a, other.param('x', [2, 3]))).toThrow('Add: input x belongs to another graph');
    expect(() => add(a, g.input('i', 'float32', [2, 3]))).toThrow(/^Add: operand dtypes differ; got float64\[2,3\], float32\[2,3\]/);
  });
});

describe('toOnnx', () => {
  it('writes only what the requested outputs need, with exact output types', async () => {
    const g = new Graph({ dtype: 'float64' });
    const x = g.input('x', 'float64', [2, 3]);
    const w = g.param('w', [3, 2]);
    const b = g.param('b', [2]);
    const targets = g.input('targets', 'int64', [2]);
    const logits = linear(x, w, b);
    crossEntropy(logits, targets); // part of the graph, not of this model
    const { inputNames, result } = await run(toOnnx(g, { outputs: { logits } }), {
      x: f64([1, 2, 3, 4, 5, 6], [2, 3]),
      w: f64([1, 0, 0, 1, 1, 1], [3, 2]),
      b: f64([10, 20], [2]),
    });
    expect(inputNames).toEqual(['x', 'w', 'b']);
    expect(result.logits?.type).toBe('float64');
    expect(result.logits?.dims).toEqual([2, 2]);
    expect([...(result.logits?.data as Float64Array)]).toEqual([14, 25, 20, 31]);
  });

  it('can return an input, and one tensor under two names', async () => {
    const g = new Graph({ dtype: 'float64' });
    const x = g.param('x', [2]);
    const y = mul(x, 3);
    const { result } = await run(toOnnx(g, { outputs: { same: x, y, again: y } }), { x: f64([1, 2], [2]) });
    expect([...(result.same?.data as Float64Array)]).toEqual([1, 2]);
    expect([...(result.y?.data as Float64Array)]).toEqual([3, 6]);
    expect([...(result.again?.data as Float64Array)]).toEqual([3, 6]);
  });

  it('refuses an output name that another tensor already has, and opsets older than 18', () => {
    const g = new Graph();
    const x = g.param('x', [2]);
    expect(() => toOnnx(g, { outputs: { x: mul(x, 2) } })).toThrow(/output name x is already used/);
    expect(() => toOnnx(g, { outputs: { y: mul(x, 2) }, opset: 17 })).toThrow(/opset 17 is too old/);
  });

  it('is deterministic and loads at a newer opset too', async () => {
    const build = () => {
      const g = new Graph({ dtype: 'float64' });
      const x = g.param('x', [2, 2]);
      return { g, y: layerNorm(matmul(x, x), g.param('w', [2])) };
    };
    const one = build();
    const two = build();
    expect(toOnnx(one.g, { outputs: { y: one.y } })).toEqual(toOnnx(two.g, { outputs: { y: two.y } }));
    const { result } = await run(toOnnx(one.g, { outputs: { y: one.y }, opset: 21 }), { x: f64([1, 2, 3, 4], [2, 2]), w: f64([1, 1], [2]) });
    expect(result.y?.dims).toEqual([2, 2]);
  });

  it('builds float32 graphs whose constants follow the graph dtype', async () => {
    const g = new Graph(); // float32 by default: what the trainer runs
    const x = g.param('x', [2]);
    const y = add(mul(x, 0.5), 1);
    expect(y.dtype).toBe('float32');
    const { result } = await run(toOnnx(g, { outputs: { y } }), { x: new ort.Tensor('float32', Float32Array.from([2, 4]), [2]) });
    expect(result.y?.type).toBe('float32');
    expect([...(result.y?.data as Float32Array)]).toEqual([2, 3]);
  });
});

describe('gradients', () => {
  it('gives zeros to a parameter the loss does not use, and sums a tensor used several times', async () => {
    const g = new Graph({ dtype: 'float64' });
    const x = g.param('x', [2]);
    const unused = g.param('unused', [3]);
    const loss = sum(add(mul(x, x), mul(x, 3))); // d/dx = 2x + 3
    const [gx, gu] = gradients(loss, [x, unused]) as [Tensor, Tensor];
    const { result } = await run(toOnnx(g, { outputs: { gx, gu } }), { x: f64([1, 2], [2]) });
    expect([...(result.gx?.data as Float64Array)]).toEqual([5, 7]);
    expect([...(result.gu?.data as Float64Array)]).toEqual([0, 0, 0]);
  });

  it('passes nothing through stopGradient', async () => {
    const g = new Graph({ dtype: 'float64' });
    const x = g.param('x', [2]);
    const [gx] = gradients(sum(mul(stopGradient(x), x)), [x]) as [Tensor]; // d/dx = sg(x)
    const { result } = await run(toOnnx(g, { outputs: { gx } }), { x: f64([3, -1], [2]) });
    expect([...(result.gx?.data as Float64Array)]).toEqual([3, -1]);
  });

  it('refuses to differentiate through an op without a gradient rule, naming it', () => {
    const g = new Graph({ dtype: 'float64' });
    const x = g.param('x', [2]);
    const y = g.op({ op: 'Sin', inputs: [x], outputs: [x] });
    expect(() => gradients(sum(y), [x])).toThrow('gradients: Sin has no gradient rule');
    expect(() => gradients(x, [x])).toThrow(/loss must be a float scalar/);
  });

  it('is caught by gradCheck when a rule is wrong', async () => {
    const g = new Graph({ dtype: 'float64' });
    const x = g.param('x', [3]);
    const wrong = g.op({ op: 'Sin', inputs: [x], outputs: [x], grad: ([gy]) => [gy] }); // should be gy·cos(x)
    const result = await gradCheck(sum(wrong), [x], { x: Float64Array.from([0.5, 1, 2]) });
    expect(result.maxError).toBeGreaterThan(0.1);
  });
});

describe('parameter layout of a graph', () => {
  it('places the graph parameters one after another in one flat vector', () => {
    const g = new Graph();
    g.param('a', [2, 3]);
    g.param('b', [4]);
    expect(layoutOf(g.params)).toEqual({
      size: 10,
      tensors: [
        { name: 'a', shape: [2, 3], offset: 0, size: 6 },
        { name: 'b', shape: [4], offset: 6, size: 4 },
      ],
    });
  });
});
