// The model part of a TrainingRun spec: a GPT's architecture as plain data, checked once, with
// errors that name the field ("model.heads: 6 does not divide model.dModel (512)").
import { ConfigError } from '../config-error.js';

export type NormKind = 'layernorm' | 'rmsnorm';

export interface GptConfig {
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
const FIELDS: readonly (keyof GptConfig)[] = ['vocabSize', 'seqLen', 'layers', 'dModel', 'heads', 'mlpRatio', 'norm'];

/** Upper bounds that catch typos (an extra zero) before they become an allocation failure.
 * Token ids travel as int32; the parameter vector is one Float32Array. */
const LIMITS = { vocabSize: 2 ** 31 - 1, seqLen: 1 << 20, layers: 1024, dModel: 1 << 16, heads: 1 << 12 } as const;
const MAX_PARAMS = 2 ** 32 - 1;

/** Validates the `model` part of a spec (a plain object, as parsed from YAML) and fills defaults. */
export function parseGptConfig(raw: unknown, field = 'model'): GptConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError(field, `must be a mapping, got ${describe(raw)}`);
  }
  const obj = raw as Record<string, unknown>;
  for (const key of Object.keys(obj)) {
    if (!(FIELDS as readonly string[]).includes(key)) {
      throw new ConfigError(`${field}.${key}`, `unknown field (allowed: ${FIELDS.join(', ')})`);
    }
  }
  const size = (key: keyof typeof LIMITS): number => {
    const value = obj[key];
    const path = `${field}.${key}`;
    if (value === undefined || value === null) throw new ConfigError(path, 'is required');
    if (typeof value !== 'number' || !Number.isInteger(value)) throw new ConfigError(path, `must be an integer, got ${describe(value)}`);
    if (value < 1) throw new ConfigError(path, `must be at least 1, got ${value}`);
    if (value > LIMITS[key]) throw new ConfigError(path, `must be at most ${LIMITS[key]}, got ${value}`);
    return value;
  };
  const config: GptConfig = {
    vocabSize: size('vocabSize'),
    seqLen: size('seqLen'),
    layers: size('layers'),
    dModel: size('dModel'),
    heads: size('heads'),
    mlpRatio: 4,
    norm: 'layernorm',
  };
  if (config.dModel % config.heads !== 0) {
    throw new ConfigError(`${field}.heads`, `${config.heads} does not divide ${field}.dModel (${config.dModel})`);
  }
  if (obj.mlpRatio !== undefined) {
    const value = obj.mlpRatio;
    const path = `${field}.mlpRatio`;
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw new ConfigError(path, `must be a positive number, got ${describe(value)}`);
    if (!Number.isInteger(value * config.dModel)) {
      throw new ConfigError(path, `${value} · ${field}.dModel (${config.dModel}) is not an integer MLP width`);
    }
    config.mlpRatio = value;
  }
  if (obj.norm !== undefined) {
    if (typeof obj.norm !== 'string' || !(NORMS as readonly string[]).includes(obj.norm)) {
      throw new ConfigError(`${field}.norm`, `must be one of ${NORMS.join(', ')}, got ${describe(obj.norm)}`);
    }
    config.norm = obj.norm as NormKind;
  }
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

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `string ${JSON.stringify(value)}`;
  return `${typeof value} ${String(value)}`;
}
