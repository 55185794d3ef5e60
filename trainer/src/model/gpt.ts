// The GPT, nanoGPT-style, as ONNX graphs built with trainer/src/graph: token and learned position
// embeddings, `layers` pre-norm blocks (causal multi-head attention, GELU MLP, residuals), a
// final norm and the output projection tied to the token embedding, cross-entropy.
//
// Parameters are graph inputs fed as views of one flat Float32Array, in the order of
// gptParamSpecs(); the training graph returns every gradient concatenated in that same order,
// so the trainer reads loss and one gradient vector of the layout's size.
//
// Shapes: B batch, T seqLen, C dModel, H heads, hs = C/H, M = mlpRatio·C, V vocabSize.
// Weights are stored [in, out] (y = x @ w + b).

import * as G from '../graph/index.js';
import { layoutOf, type TensorSpec } from '../params.js';
import { finishGraph, graphWithParams, type ModelGraphOptions, type ModelOutputs } from './graph-io.js';
import { mlpWidth, parseGptConfig, type GptConfig } from './config.js';
import { fillNormal, streamOf } from './random.js';

// ---------------------------------------------------------------- parameters

/** Every parameter, named and shaped, in the order of the flat vector. Checks the config first
 * (parseGptConfig), so a hand-written config fails with the same messages as a parsed one. */
export function gptParamSpecs(config: GptConfig): TensorSpec[] {
  const { vocabSize: V, seqLen: T, layers: L, dModel: C } = parseGptConfig(config, 'config');
  const M = mlpWidth(config);
  const norm = (prefix: string): TensorSpec[] =>
    config.norm === 'layernorm'
      ? [{ name: `${prefix}.w`, shape: [C] }, { name: `${prefix}.b`, shape: [C] }]
      : [{ name: `${prefix}.w`, shape: [C] }];
  const specs: TensorSpec[] = [
    { name: 'wte', shape: [V, C] },
    { name: 'wpe', shape: [T, C] },
  ];
  for (let i = 0; i < L; i++) {
    const h = `h${i}`;
    specs.push(
      ...norm(`${h}.ln1`),
      { name: `${h}.attn.w`, shape: [C, 3 * C] },
      { name: `${h}.attn.b`, shape: [3 * C] },
      { name: `${h}.proj.w`, shape: [C, C] },
      { name: `${h}.proj.b`, shape: [C] },
      ...norm(`${h}.ln2`),
      { name: `${h}.fc.w`, shape: [C, M] },
      { name: `${h}.fc.b`, shape: [M] },
      { name: `${h}.fc2.w`, shape: [M, C] },
      { name: `${h}.fc2.b`, shape: [C] },
    );
  }
  specs.push(...norm('lnf'));
  return specs;
}

/** What a parameter is, by its name: decides its initialisation and its weight decay. */
export type ParamRole = 'embedding' | 'weight' | 'residual' | 'bias' | 'gain';

export function paramRole(name: string): ParamRole {
  if (name === 'wte' || name === 'wpe') return 'embedding';
  if (/^(h\d+\.ln[12]|lnf)\.w$/.test(name)) return 'gain';
  if (/^(h\d+\.ln[12]|lnf)\.b$/.test(name)) return 'bias';
  const m = /^h\d+\.(attn|proj|fc|fc2)\.([wb])$/.exec(name);
  if (m === null) throw new Error(`not a GPT parameter name: "${name}"`);
  if (m[2] === 'b') return 'bias';
  // The two projections that write into the residual stream.
  return m[1] === 'proj' || m[1] === 'fc2' ? 'residual' : 'weight';
}

/** Whether AdamW's weight decay applies: weight matrices and embeddings (everything 2-D, as in
 * nanoGPT), not biases or norm gains. */
export function isDecayed(name: string): boolean {
  const role = paramRole(name);
  return role === 'embedding' || role === 'weight' || role === 'residual';
}

const INIT_STD = 0.02;

/**
 * GPT-2 initialisation, deterministic from the seed: weights and embeddings N(0, 0.02²), the
 * residual projections (proj.w, fc2.w) N(0, (0.02/√(2·layers))²) so the residual stream's
 * variance does not grow with depth, biases 0, norm gains 1. Each tensor draws from its own
 * Philox stream keyed by (seed, name): see random.ts. Writes into `into` when given (e.g. shared
 * memory), else into a new array.
 */
export function initGptParams(config: GptConfig, seed: number | string, into?: Float32Array): Float32Array {
  const layout = layoutOf(gptParamSpecs(config));
  if (into !== undefined && into.length !== layout.size) throw new Error(`initGptParams: the target holds ${into.length} values, the model has ${layout.size}`);
  const flat = into ?? new Float32Array(layout.size);
  flat.fill(0); // biases
  for (const t of layout.tensors) {
    const role = paramRole(t.name);
    if (role === 'gain') flat.fill(1, t.offset, t.offset + t.size);
    if (role === 'bias' || role === 'gain') continue;
    const std = role === 'residual' ? INIT_STD / Math.sqrt(2 * config.layers) : INIT_STD;
    fillNormal(flat, t.offset, t.size, std, streamOf('concord/init/v1', seed, t.name));
  }
  return flat;
}

// ---------------------------------------------------------------- graph

/** The GPT's graph kinds and options: those of every family (graph-io.ts). */
export type GptOutputs = ModelOutputs;
export type GptGraphOptions = ModelGraphOptions;

/**
 * The model as ONNX bytes. Inputs: every parameter by its spec name ([dtype] of its spec shape),
 * `tokens` int32 [batch, seqLen] and, for 'train' and 'loss', `targets` int32 [batch, seqLen]
 * (the next token of each position). Outputs by kind:
 *   train:  loss [] (mean cross-entropy over all batch·seqLen tokens), grads [P] (flat layout order)
 *   loss:   loss [], sequenceLosses [batch] (each sequence's mean cross-entropy; loss is their mean)
 *   logits: logits [batch, seqLen, vocabSize]
 */
export function buildGptGraph(config: GptConfig, options: GptGraphOptions): Uint8Array {
  const specs = gptParamSpecs(config);
  const { g, p } = graphWithParams('buildGptGraph', specs, options);
  const B = options.batch;
  const { seqLen: T, layers: L, dModel: C, heads: H } = config;
  const hs = C / H;
  const tokens = g.input('tokens', 'int32', [B, T]);

  const norm = (x: G.Tensor, prefix: string): G.Tensor =>
    config.norm === 'layernorm' ? G.layerNorm(x, p(`${prefix}.w`), p(`${prefix}.b`)) : G.rmsNorm(x, p(`${prefix}.w`));

  const mask = G.causalMask(g, T); // [T, T]: 0 on and below the diagonal, −1e9 above
  const attention = (x: G.Tensor, h: string): G.Tensor => {
    const qkv = G.linear(x, p(`${h}.attn.w`), p(`${h}.attn.b`)); // [B, T, 3C]
    const [q, k, v] = G.split(qkv, -1, [C, C, C]) as [G.Tensor, G.Tensor, G.Tensor];
    const heads = (t: G.Tensor, perm: number[]) => G.transpose(G.reshape(t, [B, T, H, hs]), perm);
    const qh = heads(G.mul(q, 1 / Math.sqrt(hs)), [0, 2, 1, 3]); // [B, H, T, hs]; scaling q costs less than scaling the T×T scores
    const kt = heads(k, [0, 2, 3, 1]); // [B, H, hs, T]
    const vh = heads(v, [0, 2, 1, 3]); // [B, H, T, hs]
    const att = G.softmax(G.add(G.matmul(qh, kt), mask)); // [B, H, T, T]
    const y = G.reshape(G.transpose(G.matmul(att, vh), [0, 2, 1, 3]), [B, T, C]); // heads side by side
    return G.linear(y, p(`${h}.proj.w`), p(`${h}.proj.b`));
  };
  const mlp = (x: G.Tensor, h: string): G.Tensor =>
    G.linear(G.gelu(G.linear(x, p(`${h}.fc.w`), p(`${h}.fc.b`))), p(`${h}.fc2.w`), p(`${h}.fc2.b`));

  let x = G.add(G.gather(p('wte'), tokens), p('wpe')); // [B, T, C]
  for (let i = 0; i < L; i++) {
    x = G.add(x, attention(norm(x, `h${i}.ln1`), `h${i}`));
    x = G.add(x, mlp(norm(x, `h${i}.ln2`), `h${i}`));
  }
  x = norm(x, 'lnf');
  const logits = G.matmul(x, G.transpose(p('wte'), [1, 0])); // [B, T, V]: tied output projection
  return finishGraph(g, logits, options, 'gpt');
}
