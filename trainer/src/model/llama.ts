// The Llama family as ONNX graphs built with trainer/src/graph: token embedding, `layers` pre-norm
// blocks (RMSNorm; causal attention with rotary positions and optionally fewer key/value heads
// than query heads; SwiGLU MLP; residuals), a final RMSNorm, and an output projection of its own
// or tied to the embedding; cross-entropy. No biases, no dropout.
//
// Parameters are fed as views of one flat Float32Array in the order of llamaParamSpecs(), like
// the GPT's. Shapes: B batch, T seqLen, C dModel, H heads, K kvHeads, hs = C/H, F ffnWidth,
// V vocabSize. Weights are stored [in, out] (y = x @ w); q, k and v share one matrix, so they are
// one wide matrix product. The gate and up projections are two matrices: fused, the split of their
// [B, T, 2F] output cost more than the one product saved (docs/training.md). The export splits
// qkv and transposes every matrix into Hugging Face's names and [out, in] layout.

import * as G from '../graph/index.js';
import { layoutOf, type TensorSpec } from '../params.js';
import { finishGraph, graphWithParams, type ModelGraphOptions } from './graph-io.js';
import { headSize, parseLlamaConfig, qkvWidth, type LlamaConfig } from './llama-config.js';
import { fillNormal, streamOf } from './random.js';
import type { ParamRole } from './gpt.js';

// ---------------------------------------------------------------- parameters

/** Every parameter, named and shaped, in the order of the flat vector. Checks the config first. */
export function llamaParamSpecs(config: LlamaConfig): TensorSpec[] {
  const { vocabSize: V, layers: L, dModel: C, ffnWidth: F } = parseLlamaConfig(config, 'config');
  const specs: TensorSpec[] = [{ name: 'wte', shape: [V, C] }];
  for (let i = 0; i < L; i++) {
    const h = `h${i}`;
    specs.push(
      { name: `${h}.attn_norm.w`, shape: [C] },
      { name: `${h}.qkv.w`, shape: [C, qkvWidth(config)] },
      { name: `${h}.o.w`, shape: [C, C] },
      { name: `${h}.mlp_norm.w`, shape: [C] },
      { name: `${h}.gate.w`, shape: [C, F] },
      { name: `${h}.up.w`, shape: [C, F] },
      { name: `${h}.down.w`, shape: [F, C] },
    );
  }
  specs.push({ name: 'norm.w', shape: [C] });
  if (!config.tiedEmbeddings) specs.push({ name: 'lm_head.w', shape: [C, V] });
  return specs;
}

/** What a Llama parameter is, by its name (the same roles as the GPT's, without biases). */
export function llamaParamRole(name: string): ParamRole {
  if (name === 'wte') return 'embedding';
  if (name === 'norm.w' || /^h\d+\.(attn_norm|mlp_norm)\.w$/.test(name)) return 'gain';
  if (name === 'lm_head.w') return 'weight';
  const m = /^h\d+\.(qkv|o|gate|up|down)\.w$/.exec(name);
  if (m === null) throw new Error(`not a Llama parameter name: "${name}"`);
  return m[1] === 'o' || m[1] === 'down' ? 'residual' : 'weight'; // o and down write into the residual stream
}

const INIT_STD = 0.02;

/** GPT-2's initialisation scheme, as for the GPT: matrices N(0, 0.02²), the residual projections
 * (o, down) N(0, (0.02/√(2·layers))²), gains 1; each tensor from its own Philox stream keyed by
 * (seed, name). */
export function initLlamaParams(config: LlamaConfig, seed: number | string, into?: Float32Array): Float32Array {
  const layout = layoutOf(llamaParamSpecs(config));
  if (into !== undefined && into.length !== layout.size) throw new Error(`initLlamaParams: the target holds ${into.length} values, the model has ${layout.size}`);
  const flat = into ?? new Float32Array(layout.size);
  for (const t of layout.tensors) {
    const role = llamaParamRole(t.name);
    if (role === 'gain') {
      flat.fill(1, t.offset, t.offset + t.size);
      continue;
    }
    const std = role === 'residual' ? INIT_STD / Math.sqrt(2 * config.layers) : INIT_STD;
    fillNormal(flat, t.offset, t.size, std, streamOf('concord/init/v1', seed, t.name));
  }
  return flat;
}

// ---------------------------------------------------------------- graph

/** The model as ONNX bytes; inputs and outputs as buildGptGraph's (see graph-io.ts). */
export function buildLlamaGraph(config: LlamaConfig, options: ModelGraphOptions): Uint8Array {
  const { g, p } = graphWithParams('buildLlamaGraph', llamaParamSpecs(config), options);
  const B = options.batch;
  const { seqLen: T, layers: L, dModel: C, heads: H, kvHeads: K, ffnWidth: F, normEps } = config;
  const hs = headSize(config);
  const tokens = g.input('tokens', 'int32', [B, T]);
  const group = H / K; // query heads per key/value head
  const mask = G.causalMask(g, T, g.dtype, group); // [group·T, T]: the causal mask once per query head of a group
  const rope = G.rotaryTables(g, T, hs, config.ropeTheta); // [T, hs] each

  /** [B, T, n·hs] → [B, n, T, hs] */
  const heads = (t: G.Tensor, n: number) => G.transpose(G.reshape(t, [B, T, n, hs]), [0, 2, 1, 3]);

  const attention = (x: G.Tensor, h: string): G.Tensor => {
    const qkv = G.matmul(x, p(`${h}.qkv.w`)); // [B, T, (H + 2K)·hs]
    const [q, k, v] = G.split(qkv, -1, [H * hs, K * hs, K * hs]) as [G.Tensor, G.Tensor, G.Tensor];
    const qh = G.rotary(heads(G.mul(q, 1 / Math.sqrt(hs)), H), rope); // scaling commutes with the rotation
    const kh = G.rotary(heads(k, K), rope); // [B, K, T, hs]
    const vh = heads(v, K);
    // Grouped-query attention without copying keys and values: query head j reads key/value head
    // ⌊j / group⌋, and heads k·group … k·group + group − 1 are adjacent, so the queries of one
    // key/value head stack into one [group·T, hs] matrix that attends to its [T, hs] keys.
    const grouped = G.reshape(qh, [B, K, group * T, hs]);
    const att = G.softmax(G.add(G.matmul(grouped, G.transpose(kh, [0, 1, 3, 2])), mask)); // [B, K, group·T, T]
    const y = G.reshape(G.transpose(G.reshape(G.matmul(att, vh), [B, H, T, hs]), [0, 2, 1, 3]), [B, T, C]);
    return G.matmul(y, p(`${h}.o.w`));
  };
  const mlp = (x: G.Tensor, h: string): G.Tensor => {
    const gate = G.matmul(x, p(`${h}.gate.w`));
    const up = G.matmul(x, p(`${h}.up.w`));
    return G.matmul(G.mul(G.silu(gate), up), p(`${h}.down.w`));
  };

  let x = G.gather(p('wte'), tokens); // [B, T, C]
  for (let i = 0; i < L; i++) {
    x = G.add(x, attention(G.rmsNorm(x, p(`h${i}.attn_norm.w`), normEps), `h${i}`));
    x = G.add(x, mlp(G.rmsNorm(x, p(`h${i}.mlp_norm.w`), normEps), `h${i}`));
  }
  x = G.rmsNorm(x, p('norm.w'), normEps);
  const head = config.tiedEmbeddings ? G.transpose(p('wte'), [1, 0]) : p('lm_head.w');
  return finishGraph(g, G.matmul(x, head), options, 'llama'); // logits [B, T, V]
}
