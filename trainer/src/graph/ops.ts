// Primitive ops: each checks shapes, adds one ONNX node (opset 18 forms) and states its gradient
// rule next to it. Every rule is written with these same forward ops, because the CPU build of
// onnxruntime registers no gradient kernels (no SoftmaxGrad, GeluGrad, ...).
//
// Conventions: axes may be negative (counted from the end); shapes are static; a number where a
// tensor is expected becomes a scalar constant of the other operand's dtype.

import { attr, DTYPE_CODE, formatShape, isFloat, shapeError, sizeOf, type DType, type Node, type Shape, type Tensor } from './graph.js';

export type Operand = Tensor | number;

// ---------------------------------------------------------------- helpers

/** The one element a fixed-arity list holds at i (satisfies noUncheckedIndexedAccess). */
function at<T>(xs: readonly T[], i: number): T {
  const x = xs[i];
  if (x === undefined) throw new Error(`internal: index ${i} out of ${xs.length}`);
  return x;
}

function out(node: Node): Tensor {
  return at(node.outputs, 0);
}

export function normalizeAxis(op: string, axis: number, rank: number, inputs: readonly Tensor[]): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(axis) || a < 0 || a >= rank) shapeError(op, `axis ${axis} is out of range for rank ${rank}`, inputs);
  return a;
}

function requireFloat(op: string, ...xs: Tensor[]): void {
  for (const x of xs) if (!isFloat(x.dtype)) shapeError(op, 'expects float tensors', xs);
}

function requireSameDtype(op: string, xs: readonly Tensor[]): void {
  const first = at(xs, 0).dtype;
  if (xs.some((x) => x.dtype !== first)) shapeError(op, 'operand dtypes differ', xs);
}

function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** numpy broadcasting: align from the right; each pair of dims must match or one must be 1. */
function broadcastShapes(op: string, inputs: readonly Tensor[], shapes: readonly Shape[] = inputs.map((t) => t.shape)): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const result: number[] = [];
  for (let i = 0; i < rank; i++) {
    let dim = 1;
    for (const s of shapes) {
      const d = s[s.length - rank + i] ?? 1;
      if (d === 1 || d === dim) continue;
      if (dim !== 1) shapeError(op, `shapes ${shapes.map(formatShape).join(' and ')} do not broadcast`, inputs);
      dim = d;
    }
    result.push(dim);
  }
  return result;
}

/** Numbers become scalar constants with the dtype of the tensor operand. */
function lift(op: string, operands: readonly Operand[]): Tensor[] {
  const anchor = operands.find((o): o is Tensor => typeof o !== 'number');
  if (anchor === undefined) throw new Error(`${op}: needs at least one tensor operand`);
  return operands.map((o) => (typeof o === 'number' ? anchor.graph.scalar(o, anchor.dtype) : o));
}

// ---------------------------------------------------------------- elementwise

type BinaryRule = (gy: Tensor, a: Tensor, b: Tensor, out: Tensor) => readonly [Tensor | undefined, Tensor | undefined];

/** A broadcasting binary op. The rule returns gradients of the broadcast shape; they are summed
 * back over the broadcast axes here, once for all binary ops. */
function binary(op: string, left: Operand, right: Operand, rule: BinaryRule): Tensor {
  const [a, b] = lift(op, [left, right]) as [Tensor, Tensor];
  requireSameDtype(op, [a, b]);
  const shape = broadcastShapes(op, [a, b]);
  return a.graph.op({
    op,
    inputs: [a, b],
    outputs: [{ dtype: a.dtype, shape }],
    grad: (gys, node) => {
      const [ga, gb] = rule(at(gys, 0), a, b, out(node));
      return [ga && sumTo(ga, a.shape), gb && sumTo(gb, b.shape)];
    },
  });
}

export const add = (a: Operand, b: Operand): Tensor => binary('Add', a, b, (gy) => [gy, gy]);

export const sub = (a: Operand, b: Operand): Tensor => binary('Sub', a, b, (gy) => [gy, neg(gy)]);

export const mul = (a: Operand, b: Operand): Tensor => binary('Mul', a, b, (gy, x, y) => [mul(gy, y), mul(gy, x)]);

// d(x/y)/dy = −x/y² = −(x/y)/y: reuse the output q = x/y instead of squaring y.
export const div = (a: Operand, b: Operand): Tensor => binary('Div', a, b, (gy, _x, y, q) => [div(gy, y), neg(div(mul(gy, q), y))]);

/** x ** p for a constant exponent. */
export function pow(x: Tensor, p: number): Tensor {
  requireFloat('Pow', x);
  return binary('Pow', x, p, (gy, base) => [mul(gy, p === 2 ? mul(base, 2) : mul(pow(base, p - 1), p)), undefined]);
}

type UnaryRule = (gy: Tensor, x: Tensor, y: Tensor) => Tensor;

function unary(op: string, x: Tensor, rule: UnaryRule): Tensor {
  requireFloat(op, x);
  return x.graph.op({ op, inputs: [x], outputs: [x], grad: (gys, node) => [rule(at(gys, 0), x, out(node))] });
}

export const neg = (x: Tensor): Tensor => unary('Neg', x, (gy) => neg(gy));
export const exp = (x: Tensor): Tensor => unary('Exp', x, (gy, _x, y) => mul(gy, y));
export const log = (x: Tensor): Tensor => unary('Log', x, (gy, x0) => div(gy, x0));
export const sqrt = (x: Tensor): Tensor => unary('Sqrt', x, (gy, _x, y) => div(mul(gy, 0.5), y));
export const tanh = (x: Tensor): Tensor => unary('Tanh', x, (gy, _x, y) => mul(gy, sub(1, mul(y, y))));
export const sigmoid = (x: Tensor): Tensor => unary('Sigmoid', x, (gy, _x, y) => mul(gy, mul(y, sub(1, y))));

/** cond ? a : b elementwise, with broadcasting. No gradient flows to the condition. */
export function where(cond: Tensor, a: Operand, b: Operand): Tensor {
  const op = 'Where';
  const [x, y] = lift(op, [a, b]) as [Tensor, Tensor];
  if (cond.dtype !== 'bool') shapeError(op, 'condition must be bool', [cond, x, y]);
  requireSameDtype(op, [x, y]);
  const shape = broadcastShapes(op, [cond, x, y]);
  return x.graph.op({
    op,
    inputs: [cond, x, y],
    outputs: [{ dtype: x.dtype, shape }],
    grad: (gys) => {
      const gy = at(gys, 0);
      return [undefined, sumTo(where(cond, gy, 0), x.shape), sumTo(where(cond, 0, gy), y.shape)];
    },
  });
}

export function cast(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return x;
  return x.graph.op({
    op: 'Cast',
    inputs: [x],
    outputs: [{ dtype, shape: x.shape }],
    attrs: { to: attr.int(DTYPE_CODE[dtype]) },
    // Only a float→float cast carries a gradient; casts to or from integers do not.
    grad: (gys) => [isFloat(x.dtype) && isFloat(dtype) ? cast(at(gys, 0), x.dtype) : undefined],
  });
}

/** The same value, but autodiff passes no gradient through it. */
export function stopGradient(x: Tensor): Tensor {
  return x.graph.op({ op: 'Identity', inputs: [x], outputs: [x], grad: () => [undefined] });
}

// ---------------------------------------------------------------- matmul

/** Batched matrix product of [..., m, k] and [..., k, n]; leading dims broadcast. */
export function matmul(a: Tensor, b: Tensor): Tensor {
  const op = 'MatMul';
  requireFloat(op, a, b);
  requireSameDtype(op, [a, b]);
  if (a.rank < 2 || b.rank < 2) shapeError(op, 'operands must have rank 2 or more', [a, b]);
  const [m, k] = a.shape.slice(-2) as [number, number];
  const [k2, n] = b.shape.slice(-2) as [number, number];
  if (k !== k2) shapeError(op, `cannot multiply ${formatShape(a.shape)} by ${formatShape(b.shape)}: inner dimensions ${k} and ${k2} differ`, [a, b]);
  const batch = broadcastShapes(op, [a, b], [a.shape.slice(0, -2), b.shape.slice(0, -2)]);
  return a.graph.op({
    op,
    inputs: [a, b],
    outputs: [{ dtype: a.dtype, shape: [...batch, m, n] }],
    grad: (gys) => {
      const gy = at(gys, 0);
      return [sumTo(matmul(gy, swapAxes(b, -2, -1)), a.shape), matmulGradB(gy, a, b)];
    },
  });
}

function matmulGradB(gy: Tensor, a: Tensor, b: Tensor): Tensor {
  if (b.rank === 2 && a.rank > 2) {
    // A weight shared by the whole batch (x @ W): fold the batch into rows and do one large
    // product, instead of a batched product and a [batch, k, n] temporary summed away after.
    const [k, n] = b.shape as [number, number];
    return matmul(transpose(reshape(a, [-1, k]), [1, 0]), reshape(gy, [-1, n]));
  }
  return sumTo(matmul(swapAxes(a, -2, -1), gy), b.shape);
}

// ---------------------------------------------------------------- shape ops

export function transpose(x: Tensor, perm: readonly number[]): Tensor {
  const op = 'Transpose';
  const sorted = [...perm].sort((p, q) => p - q);
  if (perm.length !== x.rank || sorted.some((p, i) => p !== i)) shapeError(op, `perm [${perm.join(',')}] is not a permutation of the axes`, [x]);
  const inverse: number[] = [];
  perm.forEach((p, i) => (inverse[p] = i));
  return x.graph.op({
    op,
    inputs: [x],
    outputs: [{ dtype: x.dtype, shape: perm.map((p) => at(x.shape, p)) }],
    attrs: { perm: attr.ints(perm) },
    grad: (gys) => [transpose(at(gys, 0), inverse)],
  });
}

/** Exchange two axes, like torch's x.transpose(i, j). */
export function swapAxes(x: Tensor, i: number, j: number): Tensor {
  const p = normalizeAxis('Transpose', i, x.rank, [x]);
  const q = normalizeAxis('Transpose', j, x.rank, [x]);
  const perm = x.shape.map((_, k) => (k === p ? q : k === q ? p : k));
  return transpose(x, perm);
}

/** Reshape; one dimension may be -1 (inferred). */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const op = 'Reshape';
  const known = sizeOf(shape.filter((d) => d !== -1));
  const holes = shape.filter((d) => d === -1).length;
  if (holes > 1 || shape.some((d) => d === 0 || d < -1 || !Number.isInteger(d))) shapeError(op, `bad target shape ${formatShape(shape)}`, [x]);
  const resolved = shape.map((d) => (d === -1 ? x.size / known : d));
  if (sizeOf(resolved) !== x.size || !resolved.every(Number.isInteger)) shapeError(op, `cannot reshape to ${formatShape(shape)}`, [x]);
  if (sameShape(resolved, x.shape)) return x;
  return x.graph.op({
    op,
    inputs: [x, x.graph.int64s(resolved)],
    outputs: [{ dtype: x.dtype, shape: resolved }],
    grad: (gys) => [reshape(at(gys, 0), x.shape), undefined],
  });
}

/** Broadcast x to `shape` (which must be what numpy broadcasting of the two gives). */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  const op = 'Expand';
  const result = broadcastShapes(op, [x], [x.shape, shape]);
  if (!sameShape(result, shape)) shapeError(op, `cannot expand to ${formatShape(shape)}`, [x]);
  if (sameShape(x.shape, shape)) return x;
  return x.graph.op({
    op,
    inputs: [x, x.graph.int64s(shape)],
    outputs: [{ dtype: x.dtype, shape }],
    grad: (gys) => [sumTo(at(gys, 0), x.shape), undefined],
  });
}

/** A tensor of zeros (a broadcast scalar: ORT keeps it cheap). */
export function zeros(like: { graph: Tensor['graph']; dtype: DType; shape: Shape }): Tensor {
  return expand(like.graph.scalar(0, like.dtype), [...like.shape]);
}

/** Sum a broadcast result back to `shape`: the gradient of broadcasting. */
export function sumTo(g: Tensor, shape: Shape): Tensor {
  if (sameShape(g.shape, shape)) return g;
  const lead = g.rank - shape.length;
  if (lead < 0) shapeError('sumTo', `cannot sum to the larger shape ${formatShape(shape)}`, [g]);
  const axes: number[] = [];
  g.shape.forEach((d, i) => {
    if (i < lead || (shape[i - lead] === 1 && d !== 1)) axes.push(i);
  });
  return reshape(reduceSum(g, axes, true), shape);
}

/** Split along one axis into pieces of the given sizes. */
export function split(x: Tensor, axis: number, sizes: readonly number[]): Tensor[] {
  const op = 'Split';
  const a = normalizeAxis(op, axis, x.rank, [x]);
  const total = sizes.reduce((s, d) => s + d, 0);
  if (total !== x.shape[a] || sizes.some((d) => !Number.isInteger(d) || d < 1)) shapeError(op, `sizes [${sizes.join(',')}] do not add up to dimension ${a}`, [x]);
  return x.graph.apply({
    op,
    inputs: [x, x.graph.int64s(sizes)],
    outputs: sizes.map((d) => ({ dtype: x.dtype, shape: x.shape.map((s, i) => (i === a ? d : s)) })),
    attrs: { axis: attr.int(a) },
    grad: (gys) => [concat(gys, a), undefined],
  });
}

export function concat(xs: readonly Tensor[], axis: number): Tensor {
  const op = 'Concat';
  const first = at(xs, 0);
  if (xs.length === 1) return first;
  const a = normalizeAxis(op, axis, first.rank, xs);
  requireSameDtype(op, xs);
  const fits = xs.every((x) => x.rank === first.rank && x.shape.every((d, i) => i === a || d === first.shape[i]));
  if (!fits) shapeError(op, `shapes differ outside axis ${a}`, xs);
  const sizes = xs.map((x) => at(x.shape, a));
  return first.graph.op({
    op,
    inputs: xs,
    outputs: [{ dtype: first.dtype, shape: first.shape.map((d, i) => (i === a ? sizes.reduce((s, v) => s + v, 0) : d)) }],
    attrs: { axis: attr.int(a) },
    grad: (gys) => split(at(gys, 0), a, sizes),
  });
}

/** x[start:end] along one axis. */
export function slice(x: Tensor, axis: number, start: number, end: number): Tensor {
  const op = 'Slice';
  const a = normalizeAxis(op, axis, x.rank, [x]);
  const dim = at(x.shape, a);
  if (!(Number.isInteger(start) && Number.isInteger(end) && start >= 0 && start < end && end <= dim)) shapeError(op, `range ${start}:${end} is not inside dimension ${a}`, [x]);
  const g = x.graph;
  return g.op({
    op,
    inputs: [x, g.int64s([start]), g.int64s([end]), g.int64s([a])],
    outputs: [{ dtype: x.dtype, shape: x.shape.map((d, i) => (i === a ? end - start : d)) }],
    grad: (gys) => {
      // Gradient of a slice: put it back in place, zeros around it.
      const pads = [...x.shape.map((_, i) => (i === a ? start : 0)), ...x.shape.map((_, i) => (i === a ? dim - end : 0))];
      const gy = at(gys, 0);
      const gx = g.op({ op: 'Pad', inputs: [gy, g.int64s(pads), g.scalar(0, gy.dtype)], outputs: [x] });
      return [gx, undefined, undefined, undefined];
    },
  });
}

// ---------------------------------------------------------------- reductions

function reduce(op: 'ReduceSum' | 'ReduceMean', x: Tensor, axes: readonly number[], keepdims: boolean): Tensor {
  const norm = [...new Set(axes.map((a) => normalizeAxis(op, a, x.rank, [x])))].sort((p, q) => p - q);
  if (norm.length === 0) shapeError(op, 'needs at least one axis', [x]);
  const kept = x.shape.map((d, i) => (norm.includes(i) ? 1 : d));
  const shape = keepdims ? kept : x.shape.filter((_, i) => !norm.includes(i));
  const count = sizeOf(norm.map((i) => at(x.shape, i)));
  return x.graph.op({
    op,
    inputs: [x, x.graph.int64s(norm)],
    outputs: [{ dtype: x.dtype, shape }],
    attrs: { keepdims: attr.int(keepdims ? 1 : 0) },
    grad: (gys) => {
      // Every reduced element received the same upstream gradient (÷count for a mean).
      const g = expand(reshape(at(gys, 0), kept), [...x.shape]);
      return [op === 'ReduceMean' ? div(g, count) : g, undefined];
    },
  });
}

export const reduceSum = (x: Tensor, axes: readonly number[], keepdims = false): Tensor => reduce('ReduceSum', x, axes, keepdims);
export const reduceMean = (x: Tensor, axes: readonly number[], keepdims = false): Tensor => reduce('ReduceMean', x, axes, keepdims);

/** Sum / mean of all elements: a scalar (shape []). */
export const sum = (x: Tensor): Tensor => (x.rank === 0 ? x : reduceSum(x, x.shape.map((_, i) => i)));
export const mean = (x: Tensor): Tensor => (x.rank === 0 ? x : reduceMean(x, x.shape.map((_, i) => i)));

// ---------------------------------------------------------------- indexing

function requireIndices(op: string, ids: Tensor, others: readonly Tensor[]): void {
  if (ids.dtype !== 'int32' && ids.dtype !== 'int64') shapeError(op, 'indices must be int32 or int64', [...others, ids]);
}

/** Rows of `table` picked by `ids` (an embedding lookup): [V, ...rest] × ids[...] → [...ids, ...rest].
 * Gradient: ScatterND with reduction='add', which sums rows hit by repeated ids. */
export function gather(table: Tensor, ids: Tensor): Tensor {
  const op = 'Gather';
  requireIndices(op, ids, [table]);
  const rest = table.shape.slice(1);
  return table.graph.op({
    op,
    inputs: [table, ids],
    outputs: [{ dtype: table.dtype, shape: [...ids.shape, ...rest] }],
    attrs: { axis: attr.int(0) },
    grad: (gys) => {
      const indices = reshape(cast(ids, 'int64'), [ids.size, 1]); // ScatterND takes int64 only
      const updates = reshape(at(gys, 0), [ids.size, ...rest]);
      const gt = table.graph.op({
        op: 'ScatterND',
        inputs: [zeros(table), indices, updates],
        outputs: [table],
        attrs: { reduction: attr.string('add') },
      });
      return [gt, undefined];
    },
  });
}

/** ONNX GatherElements: out[i][j] = x[i][idx[i][j]] along `axis`; idx has x's rank. */
export function gatherElements(x: Tensor, idx: Tensor, axis: number): Tensor {
  const op = 'GatherElements';
  requireIndices(op, idx, [x]);
  const a = normalizeAxis(op, axis, x.rank, [x, idx]);
  if (idx.rank !== x.rank || idx.shape.some((d, i) => i !== a && d > at(x.shape, i))) shapeError(op, 'indices do not fit the data', [x, idx]);
  return x.graph.op({
    op,
    inputs: [x, idx],
    outputs: [{ dtype: x.dtype, shape: idx.shape }],
    attrs: { axis: attr.int(a) },
    grad: (gys) => {
      const gx = x.graph.op({
        op: 'ScatterElements',
        inputs: [zeros(x), idx, at(gys, 0)],
        outputs: [x],
        attrs: { axis: attr.int(a), reduction: attr.string('add') },
      });
      return [gx, undefined];
    },
  });
}

// ---------------------------------------------------------------- softmax family

/** Softmax over one axis. dx = y ⊙ (dy − Σ dy⊙y). */
export function softmax(x: Tensor, axis = -1): Tensor {
  const op = 'Softmax';
  requireFloat(op, x);
  const a = normalizeAxis(op, axis, x.rank, [x]);
  return x.graph.op({
    op,
    inputs: [x],
    outputs: [x],
    attrs: { axis: attr.int(a) },
    grad: (gys, node) => {
      const gy = at(gys, 0);
      const s = out(node);
      return [mul(s, sub(gy, reduceSum(mul(gy, s), [a], true)))];
    },
  });
}

/** log(softmax(x)) without overflow. dx = dy − softmax(x) · Σ dy, with softmax(x) = exp(y). */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  const op = 'LogSoftmax';
  requireFloat(op, x);
  const a = normalizeAxis(op, axis, x.rank, [x]);
  return x.graph.op({
    op,
    inputs: [x],
    outputs: [x],
    attrs: { axis: attr.int(a) },
    grad: (gys, node) => {
      const gy = at(gys, 0);
      return [sub(gy, mul(exp(out(node)), reduceSum(gy, [a], true)))];
    },
  });
}
