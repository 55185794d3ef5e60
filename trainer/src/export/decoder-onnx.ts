// The exported inference model: the trained decoder as one ONNX graph with a key/value cache, in
// the form Hugging Face's exporters give a causal LM and transformers.js runs (its generate loop
// feeds the whole prompt once, then one new token per step with the cache of all earlier ones):
//
//   inputs   input_ids        int64 [batch_size, sequence_length]
//            attention_mask   int64 [batch_size, total_sequence_length]   1 = a real token, 0 = padding
//            position_ids     int64 [batch_size, sequence_length]
//            past_key_values.{i}.key|value  float32 [batch_size, kvHeads, past_sequence_length, headSize]
//   outputs  logits           float32 [batch_size, sequence_length, vocabSize]
//            present.{i}.key|value  float32 [batch_size, kvHeads, total_sequence_length, headSize]
//
// where total = past + sequence. The cache holds keys after the rotary embedding (Llama), as
// Hugging Face's does. The weights are the flat parameter vector's tensors, unchanged ([in, out],
// y = x @ w), baked into the file. The math is the training graph's (model/gpt.ts, model/llama.ts)
// for positions 0 … seqLen − 1; tests compare the two.
import { headSize, type LlamaConfig } from '../model/llama-config.js';
import type { GptConfig } from '../model/config.js';
import { familyOf, modelParamSpecs, type ModelConfig } from '../model/family.js';
import { layoutOf, viewsOf } from '../params.js';
import { OnnxGraphBuilder, type Dim, type OnnxFiles, type WeightPlacement } from './onnx-builder.js';

const BATCH = 'batch_size';
const SEQUENCE = 'sequence_length';
const PAST = 'past_sequence_length';
const TOTAL = 'total_sequence_length';
/** Added to the scores of keys a query may not see: exp underflows to exactly 0 after softmax. */
const MASKED = -1e9;

/** The decoder with a cache; `params` is the flat vector of `config`'s layout. The weights are
 * inside the model file unless they are too large for it (then in data files beside it). */
export function buildDecoderOnnx(config: ModelConfig, params: Float32Array, placement: WeightPlacement = { fileName: 'model.onnx' }): OnnxFiles {
  const layout = layoutOf(modelParamSpecs(config));
  if (params.length !== layout.size) throw new Error(`buildDecoderOnnx: params have ${params.length} values, the model has ${layout.size}`);
  const views = viewsOf(layout, params);
  const b = new OnnxGraphBuilder();
  const written = new Set<string>();
  // Each parameter becomes one initializer on first use (a tied embedding is read twice).
  const weight = (name: string): string => {
    if (written.has(name)) return name;
    const view = views.get(name);
    const spec = layout.tensors.find((t) => t.name === name);
    if (view === undefined || spec === undefined) throw new Error(`internal: no parameter ${name}`);
    written.add(name);
    return b.floats(name, view, spec.shape);
  };
  const kvHeads = config.family === 'llama' ? config.kvHeads : config.heads;
  const hs = config.dModel / config.heads;

  const ids = b.input('input_ids', 'int64', [BATCH, SEQUENCE]);
  const mask = b.input('attention_mask', 'int64', [BATCH, TOTAL]);
  const positions = b.input('position_ids', 'int64', [BATCH, SEQUENCE]);
  const cacheDims: Dim[] = [BATCH, kvHeads, PAST, hs];
  const past = Array.from({ length: config.layers }, (_, i) => ({
    key: b.input(`past_key_values.${i}.key`, 'float32', cacheDims),
    value: b.input(`past_key_values.${i}.value`, 'float32', cacheDims),
  }));

  const ctx: DecoderContext = { b, weight, hs, kvHeads, heads: config.heads, scoreBias: scoreBias(b, ids, mask) };
  const blocks = config.family === 'llama' ? llamaBlocks(ctx, config, positions) : gptBlocks(ctx, config, positions);

  let x = blocks.embed(ids); // [B, S, C]
  for (let i = 0; i < config.layers; i++) {
    const { y, key, value } = attention(ctx, blocks, blocks.norm(x, `h${i}`, 1), `h${i}`, past[i]!);
    b.output(`present.${i}.key`, key, 'float32', [BATCH, kvHeads, TOTAL, hs]);
    b.output(`present.${i}.value`, value, 'float32', [BATCH, kvHeads, TOTAL, hs]);
    x = b.op('Add', [x, y]);
    x = b.op('Add', [x, blocks.mlp(blocks.norm(x, `h${i}`, 2), `h${i}`)]);
  }
  x = blocks.norm(x, '', 'final');
  b.output('logits', b.op('MatMul', [x, blocks.head()]), 'float32', [BATCH, SEQUENCE, config.vocabSize]);
  return b.toFiles(`${familyOf(config)}-decoder-with-past`, placement);
}

interface DecoderContext {
  b: OnnxGraphBuilder;
  weight: (name: string) => string;
  hs: number;
  heads: number;
  kvHeads: number;
  /** [B, 1, S, total]: 0 where query s may attend key t (t ≤ its position, t not padding), MASKED elsewhere. */
  scoreBias: string;
}

/** What differs between the families; everything else is shared. */
interface FamilyBlocks {
  embed(ids: string): string;
  /** Norm number 1 (before attention), 2 (before the MLP) of block `h`, or the final one. */
  norm(x: string, h: string, which: 1 | 2 | 'final'): string;
  /** q [B,S,H·hs], k, v [B,S,K·hs] of block `h`. */
  qkv(x: string, h: string): [string, string, string];
  /** Applied to q and k in [B, heads, S, hs] (rotary positions), or nothing. */
  position(t: string): string;
  out(y: string, h: string): string;
  mlp(x: string, h: string): string;
  /** The output projection [C, V]. */
  head(): string;
}

/** Causal and padding mask as an additive bias, from the shapes of the inputs: the new tokens are
 * the last S of total positions. */
function scoreBias(b: OnnxGraphBuilder, ids: string, mask: string): string {
  const total = b.op('Gather', [b.op('Shape', [mask]), b.ints(1)], { axis: { int: 0 } });
  const length = b.op('Gather', [b.op('Shape', [ids]), b.ints(1)], { axis: { int: 0 } });
  const keyIndex = b.op('Range', [b.ints(0), total, b.ints(1)]); // [total]
  const queryIndex = b.op('Range', [b.op('Sub', [total, length]), total, b.ints(1)]); // [S]
  const causal = b.op('LessOrEqual', [b.op('Unsqueeze', [keyIndex, b.ints([0])]), b.op('Unsqueeze', [queryIndex, b.ints([1])])]); // [S, total]
  const notPadding = b.op('Unsqueeze', [b.op('Cast', [mask], { to: { int: 9 } }), b.ints([1, 2])]); // [B, 1, 1, total]
  return b.op('Where', [b.op('And', [causal, notPadding]), b.scalar(0), b.scalar(MASKED)]);
}

/** Causal self-attention over the cache and the new tokens; returns the block's output and the
 * new cache (keys after position(), before heads are repeated for grouped queries). */
function attention(ctx: DecoderContext, blocks: FamilyBlocks, x: string, h: string, past: { key: string; value: string }): { y: string; key: string; value: string } {
  const { b, hs, heads, kvHeads } = ctx;
  const split = (t: string, n: number) => b.op('Transpose', [b.op('Reshape', [t, b.ints([0, 0, n, hs])])], { perm: { ints: [0, 2, 1, 3] } }); // [B, n, S, hs]
  const [q, k, v] = blocks.qkv(x, h);
  const qh = blocks.position(split(b.op('Mul', [q, b.scalar(1 / Math.sqrt(hs))]), heads));
  const key = b.op('Concat', [past.key, blocks.position(split(k, kvHeads))], { axis: { int: 2 } }); // [B, K, total, hs]
  const value = b.op('Concat', [past.value, split(v, kvHeads)], { axis: { int: 2 } });
  // Grouped-query attention: each key/value head serves heads/kvHeads query heads side by side.
  const repeat = (t: string) => kvHeads === heads ? t
    : b.op('Reshape', [b.op('Expand', [b.op('Unsqueeze', [t, b.ints([2])]), b.ints([1, 1, heads / kvHeads, 1, 1])]), b.ints([0, heads, -1, hs])]);
  const scores = b.op('Add', [b.op('MatMul', [qh, b.op('Transpose', [repeat(key)], { perm: { ints: [0, 1, 3, 2] } })]), ctx.scoreBias]);
  const weights = b.op('Softmax', [scores], { axis: { int: -1 } });
  const merged = b.op('Reshape', [b.op('Transpose', [b.op('MatMul', [weights, repeat(value)])], { perm: { ints: [0, 2, 1, 3] } }), b.ints([0, 0, heads * hs])]);
  return { y: blocks.out(merged, h), key, value };
}

/** x / √(mean(x²) + eps) · w over the last axis. */
function rmsNorm(b: OnnxGraphBuilder, x: string, w: string, eps: number): string {
  const meanSquare = b.op('ReduceMean', [b.op('Mul', [x, x]), b.ints([-1])], { keepdims: { int: 1 } });
  return b.op('Mul', [b.op('Div', [x, b.op('Sqrt', [b.op('Add', [meanSquare, b.scalar(eps)])])]), w]);
}

function llamaBlocks(ctx: DecoderContext, config: LlamaConfig, positions: string): FamilyBlocks {
  const { b, weight } = ctx;
  const hs = headSize(config);
  const F = config.ffnWidth;
  // Rotary tables for the given positions: angle = position · θ^(−2j/hs), the halves sharing j.
  const inverse = Float32Array.from({ length: hs / 2 }, (_, j) => config.ropeTheta ** (-(2 * j) / hs));
  const freqs = b.op('Mul', [b.op('Unsqueeze', [b.op('Cast', [positions], { to: { int: 1 } }), b.ints([2])]), b.floats('rotary.inverse_frequencies', inverse, [hs / 2])]);
  const angles = b.op('Unsqueeze', [b.op('Concat', [freqs, freqs], { axis: { int: -1 } }), b.ints([1])]); // [B, 1, S, hs]
  const cos = b.op('Cos', [angles]);
  const sin = b.op('Sin', [angles]);
  const kv = config.kvHeads * hs;
  return {
    embed: (ids) => b.op('Gather', [weight('wte'), ids]),
    norm: (x, h, which) => rmsNorm(b, x, weight(which === 'final' ? 'norm.w' : `${h}.${which === 1 ? 'attn_norm' : 'mlp_norm'}.w`), config.normEps),
    qkv: (x, h) => b.opMulti('Split', [b.op('MatMul', [x, weight(`${h}.qkv.w`)]), b.ints([config.heads * hs, kv, kv])], 3, { axis: { int: -1 } }) as [string, string, string],
    position: (t) => {
      const [x1, x2] = b.opMulti('Split', [t, b.ints([hs / 2, hs / 2])], 2, { axis: { int: -1 } }) as [string, string];
      const rotated = b.op('Concat', [b.op('Neg', [x2]), x1], { axis: { int: -1 } });
      return b.op('Add', [b.op('Mul', [t, cos]), b.op('Mul', [rotated, sin])]);
    },
    out: (y, h) => b.op('MatMul', [y, weight(`${h}.o.w`)]),
    mlp: (x, h) => {
      const gate = b.op('MatMul', [x, weight(`${h}.gate.w`)]);
      const up = b.op('MatMul', [x, weight(`${h}.up.w`)]);
      const silu = b.op('Mul', [gate, b.op('Sigmoid', [gate])]);
      return b.op('MatMul', [b.op('Mul', [silu, up]), weight(`${h}.down.w`)]);
    },
    head: () => config.tiedEmbeddings ? b.op('Transpose', [weight('wte')], { perm: { ints: [1, 0] } }) : weight('lm_head.w'),
  };
}

const GELU_C = Math.sqrt(2 / Math.PI);
const GELU_K = 0.044715;
/** The GPT graph's norm epsilons (G.layerNorm's and G.rmsNorm's defaults). */
const LAYER_NORM_EPS = 1e-5;
const RMS_NORM_EPS = 1e-6;

function gptBlocks(ctx: DecoderContext, config: GptConfig, positions: string): FamilyBlocks {
  const { b, weight } = ctx;
  const C = config.dModel;
  const linear = (x: string, w: string) => b.op('Add', [b.op('MatMul', [x, weight(`${w}.w`)]), weight(`${w}.b`)]);
  const normName = (h: string, which: 1 | 2 | 'final') => (which === 'final' ? 'lnf' : `${h}.ln${which}`);
  return {
    embed: (ids) => b.op('Add', [b.op('Gather', [weight('wte'), ids]), b.op('Gather', [weight('wpe'), positions])]),
    norm: (x, h, which) => {
      const name = normName(h, which);
      if (config.norm === 'layernorm') return b.op('LayerNormalization', [x, weight(`${name}.w`), weight(`${name}.b`)], { axis: { int: -1 }, epsilon: { float: LAYER_NORM_EPS } });
      return rmsNorm(b, x, weight(`${name}.w`), RMS_NORM_EPS);
    },
    qkv: (x, h) => b.opMulti('Split', [linear(x, `${h}.attn`), b.ints([C, C, C])], 3, { axis: { int: -1 } }) as [string, string, string],
    position: (t) => t,
    out: (y, h) => linear(y, `${h}.proj`),
    mlp: (x, h) => {
      const u = linear(x, `${h}.fc`);
      // GELU, tanh approximation: 0.5·u·(1 + tanh(c·(u + k·u³))).
      const cube = b.op('Mul', [b.op('Mul', [u, u]), u]);
      const inner = b.op('Tanh', [b.op('Mul', [b.op('Add', [u, b.op('Mul', [cube, b.scalar(GELU_K)])]), b.scalar(GELU_C)])]);
      const gelu = b.op('Mul', [b.op('Mul', [u, b.op('Add', [inner, b.scalar(1)])]), b.scalar(0.5)]);
      return linear(gelu, `${h}.fc2`);
    },
    head: () => b.op('Transpose', [weight('wte')], { perm: { ints: [1, 0] } }),
  };
}
