// A trained model in Hugging Face's layout for its family: the `config.json` of transformers'
// LlamaForCausalLM or GPT2LMHeadModel, and the parameters under the names and in the shapes that
// those classes load from `model.safetensors`.
//
//   Llama: weights are [out, in] (torch.nn.Linear), so each of Concord's [in, out] matrices is
//          transposed, and the fused qkv matrix is split into q/k/v_proj. Rotary embeddings need no permutation: Concord rotates channel i with
//          channel i + headSize/2, as transformers' rotate_half does.
//   GPT:   GPT-2's Conv1D layers store [in, out] like Concord, with q, k and v fused in c_attn, so
//          the tensors are renamed only. GPT-2 has LayerNorm with biases; an RMSNorm GPT has no
//          counterpart in transformers and is refused.
import type { GptConfig } from '../model/config.js';
import { modelParamSpecs, type ModelConfig } from '../model/family.js';
import { headSize, type LlamaConfig } from '../model/llama-config.js';
import { layoutOf, viewsOf } from '../params.js';
import type { NamedTensor } from './safetensors.js';

export type { NamedTensor };

/** Token ids the exported files name: Concord's tokenizers have one special token, end-of-text,
 * which starts no document but ends each, so it serves as bos, eos and pad. */
export interface SpecialTokens {
  eot: number;
}

/** The `config.json` of the model's transformers class. */
export function hfConfigJson(config: ModelConfig, tokens: SpecialTokens): Record<string, unknown> {
  const common = { bos_token_id: tokens.eot, eos_token_id: tokens.eot, torch_dtype: 'float32', use_cache: true, vocab_size: config.vocabSize };
  if (config.family === 'llama') {
    return {
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      ...common,
      hidden_size: config.dModel,
      intermediate_size: config.ffnWidth,
      num_hidden_layers: config.layers,
      num_attention_heads: config.heads,
      num_key_value_heads: config.kvHeads,
      head_dim: headSize(config),
      hidden_act: 'silu',
      max_position_embeddings: config.seqLen,
      rms_norm_eps: config.normEps,
      rope_theta: config.ropeTheta,
      rope_scaling: null,
      attention_bias: false,
      attention_dropout: 0,
      mlp_bias: false,
      tie_word_embeddings: config.tiedEmbeddings,
      initializer_range: 0.02,
    };
  }
  requireGpt2Norm(config);
  return {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    ...common,
    n_embd: config.dModel,
    n_head: config.heads,
    n_layer: config.layers,
    n_positions: config.seqLen,
    n_ctx: config.seqLen,
    n_inner: config.mlpRatio * config.dModel,
    activation_function: 'gelu_new',
    layer_norm_epsilon: 1e-5,
    tie_word_embeddings: true,
    scale_attn_weights: true,
    attn_pdrop: 0,
    embd_pdrop: 0,
    resid_pdrop: 0,
    initializer_range: 0.02,
  };
}

/** The `generation_config.json`: generation stops at end-of-text, as Concord's sampler does. */
export function hfGenerationConfigJson(tokens: SpecialTokens): Record<string, unknown> {
  return { bos_token_id: tokens.eot, eos_token_id: tokens.eot, pad_token_id: tokens.eot };
}

/** The parameters under the transformers class's names, in the order of Concord's layout. */
export function hfTensors(config: ModelConfig, params: Float32Array): NamedTensor[] {
  const layout = layoutOf(modelParamSpecs(config));
  const views = viewsOf(layout, params);
  const shapes = new Map(layout.tensors.map((t) => [t.name, t.shape]));
  const tensor = (name: string) => ({ data: views.get(name)!, shape: [...shapes.get(name)!] });
  return config.family === 'llama' ? llamaTensors(config, tensor) : gptTensors(config, layout.tensors.map((t) => t.name), tensor);
}

type TensorLookup = (name: string) => { data: Float32Array; shape: number[] };

function llamaTensors(config: LlamaConfig, tensor: TensorLookup): NamedTensor[] {
  const hs = headSize(config);
  const { heads: H, kvHeads: K, ffnWidth: F } = config;
  /** Columns [from, from + width) of an [in, out] matrix, as an [width, in] torch weight. */
  const linear = (name: string, from = 0, width?: number): { shape: number[]; data: Float32Array } => {
    const { data, shape: [rows, cols] } = tensor(name) as { data: Float32Array; shape: [number, number] };
    const w = width ?? cols;
    const out = new Float32Array(w * rows);
    for (let r = 0; r < rows; r++) for (let c = 0; c < w; c++) out[c * rows + r] = data[r * cols + from + c]!;
    return { shape: [w, rows], data: out };
  };
  const named = (name: string, t: { shape: number[]; data: Float32Array }): NamedTensor => ({ name, ...t });
  const out: NamedTensor[] = [named('model.embed_tokens.weight', tensor('wte'))];
  for (let i = 0; i < config.layers; i++) {
    const h = `h${i}`;
    const hf = `model.layers.${i}`;
    out.push(
      named(`${hf}.input_layernorm.weight`, tensor(`${h}.attn_norm.w`)),
      named(`${hf}.self_attn.q_proj.weight`, linear(`${h}.qkv.w`, 0, H * hs)),
      named(`${hf}.self_attn.k_proj.weight`, linear(`${h}.qkv.w`, H * hs, K * hs)),
      named(`${hf}.self_attn.v_proj.weight`, linear(`${h}.qkv.w`, (H + K) * hs, K * hs)),
      named(`${hf}.self_attn.o_proj.weight`, linear(`${h}.o.w`)),
      named(`${hf}.post_attention_layernorm.weight`, tensor(`${h}.mlp_norm.w`)),
      named(`${hf}.mlp.gate_proj.weight`, linear(`${h}.gate.w`)),
      named(`${hf}.mlp.up_proj.weight`, linear(`${h}.up.w`)),
      named(`${hf}.mlp.down_proj.weight`, linear(`${h}.down.w`)),
    );
  }
  out.push(named('model.norm.weight', tensor('norm.w')));
  if (!config.tiedEmbeddings) out.push(named('lm_head.weight', linear('lm_head.w')));
  return out;
}

/** Concord's GPT names → GPT-2's (`h3.fc2.b` → `transformer.h.3.mlp.c_proj.bias`). */
const GPT2_NAMES: Readonly<Record<string, string>> = { ln1: 'ln_1', attn: 'attn.c_attn', proj: 'attn.c_proj', ln2: 'ln_2', fc: 'mlp.c_fc', fc2: 'mlp.c_proj' };

export function gpt2Name(name: string): string {
  if (name === 'wte' || name === 'wpe') return `transformer.${name}.weight`;
  const suffix = (s: string) => (s === 'w' ? 'weight' : 'bias');
  const final = /^lnf\.([wb])$/.exec(name);
  if (final !== null) return `transformer.ln_f.${suffix(final[1]!)}`;
  const m = /^h(\d+)\.(\w+)\.([wb])$/.exec(name);
  const part = m === null ? undefined : GPT2_NAMES[m[2]!];
  if (m === null || part === undefined) throw new Error(`not a GPT parameter name: "${name}"`);
  return `transformer.h.${m[1]}.${part}.${suffix(m[3]!)}`;
}

function gptTensors(config: GptConfig, names: readonly string[], tensor: TensorLookup): NamedTensor[] {
  requireGpt2Norm(config);
  return names.map((name) => ({ name: gpt2Name(name), ...tensor(name) }));
}

function requireGpt2Norm(config: GptConfig): void {
  if (config.norm !== 'layernorm') {
    throw new Error(`model.norm: ${config.norm} has no counterpart in GPT-2 (transformers' GPT2LMHeadModel has LayerNorm only); export a layernorm GPT or a Llama-family model`);
  }
}
