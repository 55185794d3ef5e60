// Neural-network ops for the model families, built on ops.ts. LayerNorm, GELU, SiLU and
// cross-entropy bring their own gradient rules (fewer, cheaper backward nodes than
// differentiating their primitives); RMSNorm and rotary embeddings are plain compositions and
// autodiff derives their gradients.

import { attr, formatShape, isFloat, shapeError, type FloatDType, type Graph, type Tensor } from './graph.js';
import { add, div, exp, expand, gatherElements, logSoftmax, matmul, mean, mul, neg, reduceMean, reshape, sigmoid, sqrt, sub, sumTo, tanh } from './ops.js';

function requireVector(op: string, v: Tensor | undefined, size: number, x: Tensor): void {
  if (v !== undefined && (v.rank !== 1 || v.shape[0] !== size || v.dtype !== x.dtype)) {
    shapeError(op, `expects a ${x.dtype} vector of length ${size} (the last dimension)`, [x, v]);
  }
}

/** x @ w (+ b), with w stored [in, out]. */
export function linear(x: Tensor, w: Tensor, b?: Tensor): Tensor {
  const y = matmul(x, w);
  return b === undefined ? y : add(y, b);
}

/** LayerNorm over the last axis: ONNX LayerNormalization (opset 17+) forward, one fused kernel.
 * Backward recomputes mean and 1/std from x: ORT returns those side outputs as float32 even for
 * float64 input, which would spoil float64 gradient checks.
 *   x̂ = (x − μ)·r,  dx = r·(g − mean(g) − x̂·mean(g·x̂))  with g = dy·w,  dw = Σ dy·x̂,  db = Σ dy */
export function layerNorm(x: Tensor, weight: Tensor, bias?: Tensor, eps = 1e-5): Tensor {
  const op = 'LayerNormalization';
  const c = x.shape.at(-1) ?? 0;
  if (!isFloat(x.dtype)) shapeError(op, 'expects float tensors', [x]);
  requireVector(op, weight, c, x);
  requireVector(op, bias, c, x);
  const epsilon = Math.fround(eps); // the attribute is stored as float32; use the same value below
  return x.graph.op({
    op,
    inputs: [x, weight, bias],
    outputs: [x],
    attrs: { axis: attr.int(-1), epsilon: attr.float(epsilon) },
    grad: ([gy]) => {
      if (gy === undefined) throw new Error('internal: LayerNormalization gradient without upstream');
      const xc = sub(x, reduceMean(x, [-1], true));
      const rstd = div(1, sqrt(add(reduceMean(mul(xc, xc), [-1], true), epsilon)));
      const xhat = mul(xc, rstd);
      const g = mul(gy, weight);
      const gx = mul(rstd, sub(sub(g, reduceMean(g, [-1], true)), mul(xhat, reduceMean(mul(g, xhat), [-1], true))));
      const gw = sumTo(mul(gy, xhat), weight.shape);
      return bias === undefined ? [gx, gw] : [gx, gw, sumTo(gy, bias.shape)];
    },
  });
}

/** RMSNorm over the last axis: x / sqrt(mean(x²) + eps) · w. */
export function rmsNorm(x: Tensor, weight: Tensor, eps = 1e-6): Tensor {
  requireVector('RMSNorm', weight, x.shape.at(-1) ?? 0, x);
  const rms = sqrt(add(reduceMean(mul(x, x), [-1], true), eps));
  return mul(div(x, rms), weight);
}

/** SiLU (swish), y = x·σ(x): the gate of a SwiGLU MLP, with its gradient written as
 *   dy/dx = σ(x)·(1 + x − y)
 * (4 elementwise passes over the [B, T, F] gate in the backward, where autodiff through x·σ(x)
 * takes 6). float32: σ is one Sigmoid node; float64 (gradient checks) writes it as 1/(1 + e^−x),
 * as ORT's fused float32 kernels have no float64 version. */
export function silu(x: Tensor): Tensor {
  let s: Tensor | undefined;
  let y: Tensor | undefined;
  const forward = () => {
    s = x.dtype === 'float64' ? div(1, add(exp(neg(x)), 1)) : sigmoid(x);
    y = mul(x, s);
    return [y];
  };
  const grad = ([gy]: readonly Tensor[]) => {
    if (gy === undefined || s === undefined || y === undefined) throw new Error('internal: SiLU gradient without its forward');
    return [mul(gy, mul(s, sub(add(x, 1), y)))];
  };
  return x.graph.composite('Silu', [x], forward, grad)[0] as Tensor;
}

/** The tables of rotary position embeddings; see rotaryTables. */
export interface RotaryTables {
  cos: Tensor;
  sin: Tensor;
  /** [d, d]: x @ rotate = concat(−x₂, x₁), a signed permutation. */
  rotate: Tensor;
}

/**
 * The tables of rotary position embeddings (RoFormer; Llama's layout): cos and sin [T, d],
 * position t and channel i holding cos/sin(t · θ^(−2j/d)) with j = i mod d/2, so the two halves of
 * a head's channels share frequencies, computed in float64 and rounded once into the graph's
 * dtype; and the [d, d] matrix of rotate_half.
 */
export function rotaryTables(graph: Graph, seqLen: number, headSize: number, theta: number, dtype: FloatDType = graph.dtype): RotaryTables {
  if (headSize % 2 !== 0) throw new Error(`rotaryTables: the head size must be even, got ${headSize}`);
  const half = headSize / 2;
  const cos = new Float64Array(seqLen * headSize);
  const sin = new Float64Array(seqLen * headSize);
  for (let t = 0; t < seqLen; t++) {
    for (let i = 0; i < headSize; i++) {
      const angle = t * theta ** (-(2 * (i % half)) / headSize);
      cos[t * headSize + i] = Math.cos(angle);
      sin[t * headSize + i] = Math.sin(angle);
    }
  }
  const rotate = new Float64Array(headSize * headSize);
  for (let j = 0; j < half; j++) {
    rotate[(j + half) * headSize + j] = -1; // output j < d/2 is −x[j + d/2]
    rotate[j * headSize + j + half] = 1; // output j + d/2 is x[j]
  }
  return { cos: graph.constant(cos, dtype, [seqLen, headSize]), sin: graph.constant(sin, dtype, [seqLen, headSize]), rotate: graph.constant(rotate, dtype, [headSize, headSize]) };
}

/**
 * Rotary position embedding of x [..., T, d] with tables from rotaryTables: x·cos + rotate(x)·sin,
 * where rotate(x) = concat(−x₂, x₁) for the halves x₁, x₂ of the last axis (Hugging Face's
 * rotate_half: channel i pairs with channel i + d/2). rotate is a product with a [d, d] signed
 * permutation: one small MatMul forward and one backward, where split, neg and concat cost three
 * copies each way (~5% of a Llama training step at dModel 512, docs/benchmarks.md).
 */
export function rotary(x: Tensor, tables: RotaryTables): Tensor {
  return add(mul(x, tables.cos), mul(matmul(x, tables.rotate), tables.sin));
}

const GELU_C = Math.sqrt(2 / Math.PI);
const GELU_K = 0.044715;

/** tanh(c·(x + k·x³)), the inner part of the tanh approximation. */
function geluTanh(x: Tensor): Tensor {
  return tanh(mul(add(x, mul(mul(x, mul(x, x)), GELU_K)), GELU_C));
}

/** GELU, tanh approximation (GPT-2's): 0.5·x·(1 + tanh(c·(x + k·x³))).
 *   dy/dx = 0.5·(1 + t) + 0.5·x·(1 − t²)·c·(1 + 3k·x²),  t = tanh(c·(x + k·x³))
 * float32: ONNX Gelu (opset 20), one kernel that keeps nothing but its input for the backward
 * pass, which recomputes t. Written from primitives instead, a step keeps t and ORT merges any
 * recomputation with it (common subexpressions): the fused forward saves ~95 MB of the
 * dModel=512 benchmark step's peak (docs/benchmarks.md). float64 (gradient checks): ORT has no
 * float64 Gelu kernel, so the same function is built from primitives. */
export function gelu(x: Tensor): Tensor {
  if (!isFloat(x.dtype)) shapeError('Gelu', 'expects float tensors', [x]);
  const grad = ([gy]: readonly Tensor[]) => {
    if (gy === undefined) throw new Error('internal: Gelu gradient without upstream');
    const t = geluTanh(x);
    const dt = mul(mul(sub(1, mul(t, t)), GELU_C), add(mul(mul(x, x), 3 * GELU_K), 1));
    return [mul(gy, mul(add(add(t, 1), mul(x, dt)), 0.5))];
  };
  if (x.dtype === 'float32') {
    return x.graph.op({ op: 'Gelu', inputs: [x], outputs: [x], attrs: { approximate: attr.string('tanh') }, sinceOpset: 20, grad });
  }
  const [y] = x.graph.composite('Gelu', [x], () => [mul(mul(x, 0.5), add(geluTanh(x), 1))], grad);
  return y as Tensor;
}

/** x[..., target] for each position: [..., V] and int [...] → [...]. */
export function pick(x: Tensor, targets: Tensor): Tensor {
  if (targets.rank !== x.rank - 1 || targets.shape.some((d, i) => d !== x.shape[i])) {
    shapeError('Pick', `targets must have shape ${formatShape(x.shape.slice(0, -1))}`, [x, targets]);
  }
  return reshape(gatherElements(x, reshape(targets, [...targets.shape, 1]), -1), targets.shape);
}

/** Mean cross-entropy of logits [..., V] against int targets [...]: −mean(log_softmax(logits)[target]).
 * Its gradient, softmax − onehot (÷ tokens), is written directly (below). */
export function crossEntropy(logits: Tensor, targets: Tensor): Tensor {
  let logProbs: Tensor | undefined;
  const forward = () => {
    logProbs = logSoftmax(logits, -1);
    return [neg(mean(pick(logProbs, targets)))];
  };
  // d loss / d logits = (softmax(logits) − onehot(targets)) · gy / N: three passes over the
  // [..., V] logits (exp, scale, scatter-add of −gy/N at the targets), where autodiff through
  // pick and logSoftmax takes seven (zeros, scatter, exp, sum, mul, sub, and the mean's expand).
  const grad = ([gy]: readonly Tensor[]) => {
    if (gy === undefined || logProbs === undefined) throw new Error('internal: CrossEntropy gradient without its forward');
    const scale = div(gy, targets.size);
    const index = reshape(targets, [...targets.shape, 1]);
    const minusScale = expand(reshape(neg(scale), index.shape.map(() => 1)), [...index.shape]);
    const scatterAdd = logits.graph.op({
      op: 'ScatterElements',
      inputs: [mul(exp(logProbs), scale), index, minusScale],
      outputs: [logits],
      attrs: { axis: attr.int(logits.rank - 1), reduction: attr.string('add') },
    });
    return [scatterAdd, undefined];
  };
  return logits.graph.composite('CrossEntropy', [logits, targets], forward, grad)[0] as Tensor;
}

/** Cross-entropy per sequence: logits [B, T, V] and int targets [B, T] → [B], each the mean over
 * its T positions. Their mean is crossEntropy(); apart, they let two evaluations of the same
 * sequences be compared pair by pair (a paired test needs far fewer sequences than two means). */
export function sequenceCrossEntropy(logits: Tensor, targets: Tensor): Tensor {
  if (targets.rank !== 2) shapeError('SequenceCrossEntropy', 'targets must be [batch, seqLen]', [logits, targets]);
  return neg(reduceMean(pick(logSoftmax(logits, -1), targets), [1]));
}

/** Additive causal mask [T, T]: 0 where a position may attend (key ≤ query), −1e9 above the
 * diagonal. Finite rather than −∞, so no inf·0 can turn into NaN in a backward product. Add it to
 * attention scores [..., T, T] before the softmax. With `repeats` n, the mask n times over,
 * [n·T, T], for n heads' queries stacked on one key/value head (grouped-query attention). */
export function causalMask(graph: Graph, t: number, dtype: FloatDType = graph.dtype, repeats = 1): Tensor {
  const data = new Float64Array(repeats * t * t);
  for (let r = 0; r < repeats; r++) for (let q = 0; q < t; q++) for (let k = q + 1; k < t; k++) data[(r * t + q) * t + k] = -1e9;
  return graph.constant(data, dtype, [repeats * t, t]);
}
