// The Llama family's architecture as plain data (the `model` part of a TrainingRun spec with
// `family: llama`), checked once with errors that name the field, and what it costs: parameters
// and FLOPs per token. Field ↔ Hugging Face LlamaConfig: vocabSize vocab_size, seqLen
// max_position_embeddings, layers num_hidden_layers, dModel hidden_size, heads
// num_attention_heads, kvHeads num_key_value_heads, ffnWidth intermediate_size, ropeTheta
// rope_theta, normEps rms_norm_eps, tiedEmbeddings tie_word_embeddings.
import { ConfigError } from '../config-error.js';
import { Fields, LIMITS, MAX_PARAMS } from './fields.js';

export interface LlamaConfig {
  family: 'llama';
  /** Token ids are 0 … vocabSize − 1. */
  vocabSize: number;
  /** Context length (rotary positions have no table to outgrow; this sizes the graphs). */
  seqLen: number;
  layers: number;
  /** Width of the residual stream (C). */
  dModel: number;
  /** Query heads; each has dModel / heads channels (an even number, for the rotary halves). */
  heads: number;
  /** Key/value heads (grouped-query attention); divides heads. Default: heads (multi-head). */
  kvHeads: number;
  /** SwiGLU hidden width. Default: 8/3 · dModel rounded up to a multiple of 64. */
  ffnWidth: number;
  /** Base of the rotary frequencies. Default 10000. */
  ropeTheta: number;
  /** RMSNorm epsilon. Default 1e-5. */
  normEps: number;
  /** Output projection tied to the token embedding (as Llama 3.2 1B) or its own matrix. Default false. */
  tiedEmbeddings: boolean;
}

const FIELDS: readonly (keyof LlamaConfig)[] = ['family', 'vocabSize', 'seqLen', 'layers', 'dModel', 'heads', 'kvHeads', 'ffnWidth', 'ropeTheta', 'normEps', 'tiedEmbeddings'];

/** Llama's rule for the MLP width: two thirds of 4·dModel (SwiGLU has three matrices, not two),
 * rounded up to a multiple of 64 so the matrix products stay aligned. */
export function defaultFfnWidth(dModel: number): number {
  return Math.ceil((8 * dModel) / 3 / 64) * 64;
}

/** Validates the `model` part of a spec whose family is llama, and fills defaults. */
export function parseLlamaConfig(raw: unknown, field = 'model'): LlamaConfig {
  const fields = new Fields(raw, field, FIELDS);
  if (fields.get('family') !== 'llama') throw new ConfigError(fields.path('family'), 'must be llama for a Llama-family config');
  const dModel = fields.integer('dModel', LIMITS.dModel);
  const heads = fields.integer('heads', LIMITS.heads);
  const config: LlamaConfig = {
    family: 'llama',
    vocabSize: fields.integer('vocabSize', LIMITS.vocabSize),
    seqLen: fields.integer('seqLen', LIMITS.seqLen),
    layers: fields.integer('layers', LIMITS.layers),
    dModel,
    heads,
    kvHeads: fields.integer('kvHeads', LIMITS.heads, heads),
    ffnWidth: fields.integer('ffnWidth', LIMITS.ffnWidth, defaultFfnWidth(dModel)),
    ropeTheta: fields.positive('ropeTheta', 10_000),
    normEps: fields.positive('normEps', 1e-5),
    tiedEmbeddings: fields.boolean('tiedEmbeddings', false),
  };
  if (dModel % heads !== 0) throw new ConfigError(fields.path('heads'), `${heads} does not divide ${field}.dModel (${dModel})`);
  if ((dModel / heads) % 2 !== 0) throw new ConfigError(fields.path('heads'), `the head size ${field}.dModel / ${field}.heads = ${dModel / heads} must be even (rotary embeddings rotate channel pairs)`);
  if (heads % config.kvHeads !== 0) throw new ConfigError(fields.path('kvHeads'), `${config.kvHeads} does not divide ${field}.heads (${heads})`);
  const count = llamaParamCount(config);
  if (count > MAX_PARAMS) throw new ConfigError(field, `${count} parameters do not fit one Float32Array (at most ${MAX_PARAMS})`);
  return config;
}

export function headSize(config: LlamaConfig): number {
  return config.dModel / config.heads;
}

/** Output width of the fused q, k, v projection: heads + 2·kvHeads heads of headSize channels. */
export function qkvWidth(config: LlamaConfig): number {
  return (config.heads + 2 * config.kvHeads) * headSize(config);
}

/** Parameters: the embedding, per layer two norm gains, qkv, o, gate+up and down, the final norm,
 * and the output projection unless tied. No biases; rotary positions have no parameters. */
export function llamaParamCount(config: LlamaConfig): number {
  const { vocabSize: V, layers: L, dModel: C, ffnWidth: F } = config;
  const perLayer = 2 * C + C * qkvWidth(config) + C * C + 3 * C * F;
  return V * C + L * perLayer + C + (config.tiedEmbeddings ? 0 : C * V);
}

/** Matrix-product FLOPs per token, counted as for the GPT (PaLM appendix B): 2 per weight of every
 * matmul (the output projection included, tied or not) plus 4·T·C per layer for QKᵀ and att·V;
 * a training step is 3× the forward pass. */
export function llamaFlopsPerToken(config: LlamaConfig, pass: 'forward' | 'train' = 'train'): number {
  const { vocabSize: V, seqLen: T, layers: L, dModel: C, ffnWidth: F } = config;
  const matmulWeights = L * (C * qkvWidth(config) + C * C + 3 * C * F) + V * C;
  const forward = 2 * matmulWeights + 4 * L * T * C;
  return pass === 'train' ? 3 * forward : forward;
}
