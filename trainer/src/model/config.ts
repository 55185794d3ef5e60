// The model part of a TrainingRun spec: a GPT's architecture as plain data, checked once, with
// errors that name the field ("model.heads: 6 does not divide model.dModel (512)").
import { ConfigError } from '../config-error.js';
import { Fields, LIMITS, MAX_PARAMS } from './fields.js';

export type NormKind = 'layernorm' | 'rmsnorm';

export interface GptConfig {
  /** The model family; absent means 'gpt' (configs written before there was a choice). */
  family?: 'gpt';
  /** Token ids are 0 … vocabSize − 1 (the tokenizer's vocabulary, EOT included). */
  vocabSize: number;
  /** Context length: tokens per sequence, and the number of learned positions. */
  seqLen: number;
  /** Transformer blocks. */
  layers: number;
  /** Width of the residual stream (C). */
  dModel: number;
  /** Attention heads; each has dModel / heads channels. */
  heads: number;
  /** MLP hidden width = mlpRatio · dModel (must be an integer). Default 4. */
  mlpRatio: number;
  /** LayerNorm (weight and bias) or RMSNorm (weight only), for every norm. Default layernorm. */
  norm: NormKind;
}

/**
 * A small GPT that trains in minutes on 2 CPU cores: 4.2M parameters, a quarter of them the
 * (tied) token embedding.
 */
export const DEFAULT_SMALL_GPT: Readonly<GptConfig> = Object.freeze({
  vocabSize: 4096,
  seqLen: 128,
  layers: 4,
  dModel: 256,
  heads: 4,
  mlpRatio: 4,
  norm: 'layernorm',
});

/** A configuration problem; the message starts with the field path. */
export { ConfigError as GptConfigError } from '../config-error.js';

const NORMS: readonly NormKind[] = ['layernorm', 'rmsnorm'];
const FIELDS: readonly (keyof GptConfig)[] = ['family', 'vocabSize', 'seqLen', 'layers', 'dModel', 'heads', 'mlpRatio', 'norm'];

/** Validates the `model` part of a spec (a plain object, as parsed from YAML) and fills defaults. */
export function parseGptConfig(raw: unknown, field = 'model'): GptConfig {
  const fields = new Fields(raw, field, FIELDS);
  fields.oneOf('family', ['gpt'], 'gpt');
  const config: GptConfig = {
    vocabSize: fields.integer('vocabSize', LIMITS.vocabSize),
    seqLen: fields.integer('seqLen', LIMITS.seqLen),
    layers: fields.integer('layers', LIMITS.layers),
    dModel: fields.integer('dModel', LIMITS.dModel),
    heads: fields.integer('heads', LIMITS.heads),
    mlpRatio: 4,
    norm: 'layernorm',
  };
  if (config.dModel % config.heads !== 0) {
    throw new ConfigError(`${field}.heads`, `${config.heads} does not divide ${field}.dModel (${config.dModel})`);
  }
  config.mlpRatio = fields.positive('mlpRatio', 4);
  if (!Number.isInteger(config.mlpRatio * config.dModel)) {
    throw new ConfigError(`${field}.mlpRatio`, `${config.mlpRatio} · ${field}.dModel (${config.dModel}) is not an integer MLP width`);
  }
  config.norm = fields.oneOf('norm', NORMS, 'layernorm');
  const count = gptParamCount(config);
  if (count > MAX_PARAMS) throw new ConfigError(field, `${count} parameters do not fit one Float32Array (at most ${MAX_PARAMS})`);
  return config;
}

/** MLP hidden width. */
export function mlpWidth(config: GptConfig): number {
  return config.mlpRatio * config.dModel;
}

/** Number of parameters (the length of the flat vector): embeddings, blocks, final norm. The
 * output projection is tied to the token embedding, so it adds nothing. */
export function gptParamCount(config: GptConfig): number {
  const { vocabSize: V, seqLen: T, layers: L, dModel: C } = config;
  const M = mlpWidth(config);
  const norm = config.norm === 'layernorm' ? 2 * C : C;
  const attention = C * 3 * C + 3 * C + C * C + C;
  const mlp = C * M + M + M * C + C;
  return V * C + T * C + L * (2 * norm + attention + mlp) + norm;
}

/**
 * Floating-point operations of the matrix products per token, the usual MFU numerator (PaLM,
 * appendix B): a forward pass costs 2 per weight of every matmul (attention 4C² and MLP 2MC per
 * layer, the tied head VC; the embedding lookup is free) plus 4·T·C per layer for QKᵀ and att·V
 * (computed over the full T×T, causal mask or not). Backward costs twice the forward, so a
 * training step is 3×. Elementwise work (norms, softmax, GELU, the loss) is not counted.
 */
export function gptFlopsPerToken(config: GptConfig, pass: 'forward' | 'train' = 'train'): number {
  const { vocabSize: V, seqLen: T, layers: L, dModel: C } = config;
  const matmulWeights = L * (4 * C * C + 2 * mlpWidth(config) * C) + V * C;
  const forward = 2 * matmulWeights + 4 * L * T * C;
  return pass === 'train' ? 3 * forward : forward;
}
