// What every model family's graph shares: its options, how parameters enter it (inputs fed as
// views of the flat vector, or baked-in initializers), and how it ends (logits, per-sequence
// losses, or loss and gradients).
import * as G from '../graph/index.js';
import { layoutOf, viewsOf, type TensorSpec } from '../params.js';

/** 'train': loss and the flat gradient; 'loss': loss only (evaluation); 'logits': logits only
 * (sampling, inference export; no targets input). */
export type ModelOutputs = 'train' | 'loss' | 'logits';

export interface ModelGraphOptions {
  /** Sequences per run (the first dimension of tokens, targets and logits). */
  readonly batch: number;
  /** float32 to train; float64 for gradient checks of the same graph. Default float32. */
  readonly dtype?: G.FloatDType;
  readonly outputs: ModelOutputs;
  /** Bake these parameters (the flat vector) into the model as initializers named like the
   * specs, for a self-contained inference model: its only inputs are then `tokens` (and
   * `targets` for 'loss'). Not for 'train'. */
  readonly weights?: Float32Array;
  /** 'train' only: one flat `grads` output (default), or one output `grad.<name>` per parameter,
   * which a caller can bind to views of one flat buffer so ORT writes each gradient in place
   * instead of holding them all and a concatenated copy (half the gradient memory). */
  readonly gradients?: 'flat' | 'per-tensor';
}

/** A new graph with every parameter added in layout order (so g.params, the specs and the grads
 * output agree) and a lookup by name. */
export function graphWithParams(caller: string, specs: readonly TensorSpec[], options: ModelGraphOptions): { g: G.Graph; p: (name: string) => G.Tensor } {
  const { batch, outputs } = options;
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`${caller}: batch must be a positive integer, got ${batch}`);
  if (!['train', 'loss', 'logits'].includes(outputs)) throw new Error(`${caller}: outputs must be train, loss or logits, got ${String(outputs)}`);
  const baked = options.weights === undefined ? undefined : viewsOf(layoutOf(specs), options.weights);
  if (baked !== undefined && outputs === 'train') throw new Error(`${caller}: weights are baked in for inference only, not for train`);
  const g = new G.Graph({ dtype: options.dtype ?? 'float32' });
  const params = new Map(specs.map((s) => {
    const value = baked?.get(s.name);
    return [s.name, value === undefined ? g.param(s.name, s.shape) : g.constant(value, g.dtype, s.shape, s.name)] as const;
  }));
  const p = (name: string): G.Tensor => {
    const t = params.get(name);
    if (t === undefined) throw new Error(`internal: no parameter ${name}`);
    return t;
  };
  return { g, p };
}

/**
 * The ONNX model ending in `logits` [B, T, V]. Outputs by kind:
 *   train:  loss [] (mean cross-entropy over all batch·seqLen tokens), grads [P] (flat layout
 *           order) or grad.<name> per parameter
 *   loss:   loss [], sequenceLosses [batch] (each sequence's mean cross-entropy; loss is their mean)
 *   logits: logits [batch, seqLen, vocabSize]
 */
export function finishGraph(g: G.Graph, logits: G.Tensor, options: ModelGraphOptions, family: string): Uint8Array {
  const [B, T] = logits.shape as [number, number, number];
  if (options.outputs === 'logits') return G.toOnnx(g, { outputs: { logits }, name: `${family}-logits` });
  const targets = g.input('targets', 'int32', [B, T]);
  if (options.outputs === 'loss') {
    const sequenceLosses = G.sequenceCrossEntropy(logits, targets);
    return G.toOnnx(g, { outputs: { loss: G.mean(sequenceLosses), sequenceLosses }, name: `${family}-loss` });
  }
  const loss = G.crossEntropy(logits, targets);
  const grads = G.gradients(loss, g.params);
  if (options.gradients === 'per-tensor') {
    return G.toOnnx(g, { outputs: { loss, ...Object.fromEntries(g.params.map((param, i) => [`grad.${param.name}`, grads[i]!])) }, name: `${family}-train` });
  }
  return G.toOnnx(g, { outputs: { loss, grads: G.concat(grads.map((t) => G.reshape(t, [t.size])), 0) }, name: `${family}-train` });
}
