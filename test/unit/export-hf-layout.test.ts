// Hugging Face's layout of a trained model, without a server or Python (the reference
// implementations open real exports in test/integration/export-python.test.ts): the config.json
// fields from the run's model, transformers' names, shapes and the split of the fused matrices,
// and a GPT that transformers has no class for.
import { describe, expect, it } from '@jest/globals';
import { gpt2Name, hfConfigJson, hfTensors } from '../../trainer/src/export/hf-layout.js';
import { modelParamSpecs, type ModelConfig } from '../../trainer/src/model/index.js';
import { layoutOf } from '../../trainer/src/params.js';

const llama: ModelConfig = { family: 'llama', vocabSize: 10, seqLen: 8, layers: 1, dModel: 4, heads: 2, kvHeads: 1, ffnWidth: 6, ropeTheta: 500_000, normEps: 1e-6, tiedEmbeddings: false };
const gpt: ModelConfig = { vocabSize: 10, seqLen: 8, layers: 2, dModel: 4, heads: 2, mlpRatio: 4, norm: 'layernorm' };
/** Each parameter's value is its index in the flat vector, so a tensor shows where it came from. */
const indexed = (config: ModelConfig) => Float32Array.from({ length: layoutOf(modelParamSpecs(config)).size }, (_, i) => i);

describe('the Llama family in transformers\' layout', () => {
  it('writes LlamaForCausalLM\'s config from the run\'s model', () => {
    expect(hfConfigJson(llama, { eot: 9 })).toMatchObject({
      architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 10, hidden_size: 4, intermediate_size: 6, num_hidden_layers: 1,
      num_attention_heads: 2, num_key_value_heads: 1, head_dim: 2, max_position_embeddings: 8, rope_theta: 500_000, rms_norm_eps: 1e-6,
      tie_word_embeddings: false, hidden_act: 'silu', bos_token_id: 9, eos_token_id: 9,
    });
  });

  it('transposes [in, out] weights to [out, in] and splits qkv', () => {
    const params = indexed(llama);
    const layout = layoutOf(modelParamSpecs(llama));
    const tensors = new Map(hfTensors(llama, params).map((t) => [t.name, t]));
    expect([...tensors.keys()]).toEqual([
      'model.embed_tokens.weight', 'model.layers.0.input_layernorm.weight', 'model.layers.0.self_attn.q_proj.weight', 'model.layers.0.self_attn.k_proj.weight',
      'model.layers.0.self_attn.v_proj.weight', 'model.layers.0.self_attn.o_proj.weight', 'model.layers.0.post_attention_layernorm.weight',
      'model.layers.0.mlp.gate_proj.weight', 'model.layers.0.mlp.up_proj.weight', 'model.layers.0.mlp.down_proj.weight', 'model.norm.weight', 'lm_head.weight',
    ]);
    // qkv.w is [C=4, (H + 2K)·hs = 8]: columns 0-3 are q, 4-5 k, 6-7 v.
    const qkv = layout.tensors.find((t) => t.name === 'h0.qkv.w')!;
    const at = (row: number, col: number) => qkv.offset + row * 8 + col;
    const k = tensors.get('model.layers.0.self_attn.k_proj.weight')!;
    expect(k.shape).toEqual([2, 4]);
    expect([...k.data]).toEqual([at(0, 4), at(1, 4), at(2, 4), at(3, 4), at(0, 5), at(1, 5), at(2, 5), at(3, 5)]);
    expect(tensors.get('model.layers.0.mlp.up_proj.weight')!.shape).toEqual([6, 4]);
    expect(tensors.get('model.layers.0.mlp.down_proj.weight')!.shape).toEqual([4, 6]);
    expect(tensors.get('lm_head.weight')!.shape).toEqual([10, 4]);
    const total = [...tensors.values()].reduce((n, t) => n + t.data.length, 0);
    expect(total).toBe(params.length); // every value once
  });

  it('leaves the output projection out when it is tied to the embedding', () => {
    const tied: ModelConfig = { ...llama, tiedEmbeddings: true };
    expect(hfTensors(tied, indexed(tied)).map((t) => t.name)).not.toContain('lm_head.weight');
    expect(hfConfigJson(tied, { eot: 9 })).toMatchObject({ tie_word_embeddings: true });
  });
});

describe('the GPT in GPT-2\'s layout', () => {
  it('renames every tensor and keeps its [in, out] data', () => {
    expect(gpt2Name('wpe')).toBe('transformer.wpe.weight');
    expect(gpt2Name('h1.attn.b')).toBe('transformer.h.1.attn.c_attn.bias');
    expect(gpt2Name('h0.fc2.w')).toBe('transformer.h.0.mlp.c_proj.weight');
    expect(gpt2Name('lnf.b')).toBe('transformer.ln_f.bias');
    expect(() => gpt2Name('h0.gate.w')).toThrow(/not a GPT parameter name: "h0.gate.w"/);
    const params = indexed(gpt);
    const tensors = hfTensors(gpt, params);
    expect(tensors.find((t) => t.name === 'transformer.h.0.attn.c_attn.weight')!.shape).toEqual([4, 12]);
    expect(Float32Array.from(tensors.flatMap((t) => [...t.data]))).toEqual(params);
    expect(hfConfigJson(gpt, { eot: 9 })).toMatchObject({ architectures: ['GPT2LMHeadModel'], n_embd: 4, n_layer: 2, n_head: 2, n_positions: 8, n_inner: 16, activation_function: 'gelu_new' });
  });

  it('refuses an RMSNorm GPT, naming model.norm', () => {
    const rms: ModelConfig = { ...gpt, norm: 'rmsnorm' };
    expect(() => hfTensors(rms, indexed(rms))).toThrow(/^model\.norm: rmsnorm has no counterpart in GPT-2/);
    expect(() => hfConfigJson(rms, { eot: 9 })).toThrow(/^model\.norm/);
  });
});
