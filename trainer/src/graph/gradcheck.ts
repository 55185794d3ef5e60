// Checks autodiff against central finite differences, both computed by onnxruntime on the same
// graph. Use a float64 graph: in float32 the difference quotient is mostly rounding noise.
// Kept apart from index.ts so that building graphs does not load onnxruntime.

import { seededRandom } from '../random.js';
import * as ort from 'onnxruntime-node';
import { gradients } from './autodiff.js';
import type { Graph, Tensor, TensorData } from './graph.js';
import { toOnnx } from './onnx.js';
import { add, mul, sum } from './ops.js';

/** A value for each graph input, by name. The float ones of `wrt` are perturbed in place during
 * the check and restored after. */
export type Values = Readonly<Record<string, TensorData>>;

export interface GradCheckOptions {
  /** Step of the central difference. */
  readonly eps?: number;
  /** Coordinates checked per tensor (all of a smaller tensor), sampled with `seed`. */
  readonly samples?: number;
  readonly seed?: number;
  /** Gradients smaller than this are compared absolutely, at this scale: there the difference
   * quotient's rounding noise (≈ 1e-16·|loss|/eps) is as large as the gradient itself. */
  readonly floor?: number;
}

export interface GradCheckResult {
  /** max over checked coordinates of |analytic − numeric| / max(|analytic|, |numeric|, floor). */
  readonly maxError: number;
  readonly worst: { readonly tensor: string; readonly index: number; readonly analytic: number; readonly numeric: number };
  readonly checked: number;
}

const sessionOptions: ort.InferenceSession.SessionOptions = { executionProviders: ['cpu'], intraOpNumThreads: 1, interOpNumThreads: 1 };

export async function gradCheck(loss: Tensor, wrt: readonly Tensor[], values: Values, options: GradCheckOptions = {}): Promise<GradCheckResult> {
  const graph = loss.graph;
  const eps = options.eps ?? 1e-6;
  const floor = options.floor ?? 1e-3;
  const random = seededRandom(options.seed ?? 1);
  const grads = gradients(loss, wrt);
  const outputs: Record<string, Tensor> = { loss };
  grads.forEach((g, i) => (outputs[`grad_${i}`] = g));

  const full = await ort.InferenceSession.create(toOnnx(graph, { outputs }), sessionOptions);
  const forward = await ort.InferenceSession.create(toOnnx(graph, { outputs: { loss } }), sessionOptions);
  try {
    const analytic = await full.run(feedsFor(graph, full.inputNames, values));
    const feeds = feedsFor(graph, forward.inputNames, values);
    const lossAt = async (): Promise<number> => Number((await forward.run(feeds)).loss?.data[0]);

    let worst = { tensor: '', index: -1, analytic: 0, numeric: 0 };
    let maxError = 0;
    let checked = 0;
    for (const [w, tensor] of wrt.entries()) {
      const data = values[tensor.name];
      if (!(data instanceof Float64Array || data instanceof Float32Array)) throw new Error(`gradCheck: no float value given for ${tensor.name}`);
      const grad = analytic[`grad_${w}`]?.data as Float64Array | Float32Array;
      for (const index of sample(data.length, options.samples ?? Infinity, random)) {
        const original = data[index] as number;
        data[index] = original + eps;
        const plus = await lossAt();
        data[index] = original - eps;
        const minus = await lossAt();
        data[index] = original;
        const numeric = (plus - minus) / (2 * eps);
        const a = grad[index] as number;
        const error = Math.abs(a - numeric) / Math.max(Math.abs(a), Math.abs(numeric), floor);
        checked++;
        if (error >= maxError) {
          maxError = error;
          worst = { tensor: tensor.name, index, analytic: a, numeric };
        }
      }
    }
    return { maxError, worst, checked };
  } finally {
    await full.release();
    await forward.release();
  }
}

/** A scalar that depends on every element of every `ys` with its own random weight:
 * Σ sum(y ⊙ W). Checking its gradient checks each op's full Jacobian-vector product. */
export function probeLoss(ys: readonly Tensor[], random: () => number): Tensor {
  let loss: Tensor | undefined;
  for (const y of ys) {
    const w = y.graph.constant(normal(random, y.size), y.dtype, y.shape);
    const term = sum(mul(y, w));
    loss = loss === undefined ? term : add(loss, term);
  }
  if (loss === undefined) throw new Error('probeLoss: no outputs');
  return loss;
}

/** Standard normal samples (Box–Muller) from a uniform generator. */
export function normal(random: () => number, n: number, scale = 1): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const u = 1 - random();
    out[i] = scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
  }
  return out;
}

function feedsFor(graph: Graph, names: readonly string[], values: Values): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const name of names) {
    const input = graph.inputs.find((t) => t.name === name);
    const data = values[name];
    if (input === undefined || data === undefined) throw new Error(`gradCheck: no value for input ${name}`);
    feeds[name] = new ort.Tensor(input.dtype, data, [...input.shape]);
  }
  return feeds;
}

function sample(size: number, count: number, random: () => number): number[] {
  const all = Array.from({ length: size }, (_, i) => i);
  if (count >= size) return all;
  for (let i = 0; i < count; i++) {
    const j = i + Math.floor(random() * (size - i));
    [all[i], all[j]] = [all[j] as number, all[i] as number];
  }
  return all.slice(0, count).sort((p, q) => p - q);
}

export { seededRandom };
