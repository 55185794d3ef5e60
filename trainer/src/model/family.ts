// One entry point over the model families: a TrainingRun's `model.family` picks the GPT (the
// default) or the Llama family, and everything that only needs "the model" — the trainer, the
// coordinator, the export — goes through these functions instead of naming a family.
import { ConfigError } from '../config-error.js';
import type { TensorSpec } from '../params.js';
import { gptFlopsPerToken, gptParamCount, mlpWidth, parseGptConfig, type GptConfig } from './config.js';
import type { ModelGraphOptions } from './graph-io.js';
import { buildGptGraph, gptParamSpecs, initGptParams, paramRole, type ParamRole } from './gpt.js';
import { llamaFlopsPerToken, llamaParamCount, parseLlamaConfig, qkvWidth, type LlamaConfig } from './llama-config.js';
import { buildLlamaGraph, initLlamaParams, llamaParamRole, llamaParamSpecs } from './llama.js';

export type ModelConfig = GptConfig | LlamaConfig;
export type ModelFamily = 'gpt' | 'llama';
export const MODEL_FAMILIES: readonly ModelFamily[] = ['gpt', 'llama'];

export function familyOf(config: ModelConfig): ModelFamily {
  return config.family === 'llama' ? 'llama' : 'gpt';
}

/** Validates the `model` part of a spec: `family` (default gpt) picks which fields it has. */
export function parseModelConfig(raw: unknown, field = 'model'): ModelConfig {
  const family = typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? (raw as Record<string, unknown>).family : undefined;
  if (family === 'llama') return parseLlamaConfig(raw, field);
  if (family === undefined || family === 'gpt') return parseGptConfig(raw, field);
  throw new ConfigError(`${field}.family`, `must be one of ${MODEL_FAMILIES.join(', ')}, got ${JSON.stringify(family)}`);
}

export function modelParamSpecs(config: ModelConfig): TensorSpec[] {
  return config.family === 'llama' ? llamaParamSpecs(config) : gptParamSpecs(config);
}

/** The run's initial parameters: the same bits at every partner for the same seed. */
export function initModelParams(config: ModelConfig, seed: number | string, into?: Float32Array): Float32Array {
  return config.family === 'llama' ? initLlamaParams(config, seed, into) : initGptParams(config, seed, into);
}

export function buildModelGraph(config: ModelConfig, options: ModelGraphOptions): Uint8Array {
  return config.family === 'llama' ? buildLlamaGraph(config, options) : buildGptGraph(config, options);
}

export function modelParamRole(config: ModelConfig, name: string): ParamRole {
  return config.family === 'llama' ? llamaParamRole(name) : paramRole(name);
}

/** AdamW's weight decay for one family: matrices and embeddings, not biases or norm gains. */
export function decayRule(config: ModelConfig): (name: string) => boolean {
  return (name) => {
    const role = modelParamRole(config, name);
    return role === 'embedding' || role === 'weight' || role === 'residual';
  };
}

export function modelParamCount(config: ModelConfig): number {
  return config.family === 'llama' ? llamaParamCount(config) : gptParamCount(config);
}

export function modelFlopsPerToken(config: ModelConfig, pass: 'forward' | 'train' = 'train'): number {
  return config.family === 'llama' ? llamaFlopsPerToken(config, pass) : gptFlopsPerToken(config, pass);
}

/**
 * Bytes of activations one training step must hold for its backward pass, at float32 (what any
 * implementation that does not recompute must keep), per layer:
 *   GPT:   the block input, both norm outputs, q/k/v, the attention output, the MLP hidden before
 *          and after GELU: B·T·(6 + 2·mlpRatio)·C values;
 *   Llama: the block input, both norm outputs, the qkv product, the rotated q and k, the attention
 *          output, gate and up, silu(gate) and its product with up: B·T·(4C + qkv + (H+K)·hs + 4F);
 * plus the attention probabilities (B·heads·T·T) per layer, the final norm output (B·T·C) and the
 * logits with their softmax (2·B·T·V).
 */
export function activationFloorBytes(config: ModelConfig, batch: number): number {
  const { seqLen: T, layers: L, dModel: C, heads: H, vocabSize: V } = config;
  const bt = batch * T;
  const perToken = config.family === 'llama'
    ? 4 * C + qkvWidth(config) + (config.heads + config.kvHeads) * (C / H) + 4 * config.ffnWidth
    : C * (6 + (2 * mlpWidth(config)) / C);
  const perLayer = bt * perToken + batch * H * T * T;
  return 4 * (L * perLayer + bt * C + 2 * bt * V);
}

/** The memory a training step cannot do without: parameters, gradients and AdamW's two moments
 * (16 bytes per parameter) plus the activation floor. */
export function trainingMemoryFloor(config: ModelConfig, batch: number): { state: number; activations: number; total: number } {
  const state = 16 * modelParamCount(config);
  const activations = activationFloorBytes(config, batch);
  return { state, activations, total: state + activations };
}

/** One line for logs and the command line: family, shape, parameters, FLOPs per token, memory floor. */
export function describeModel(config: ModelConfig, batch: number): string {
  const floor = trainingMemoryFloor(config, batch);
  const shape = config.family === 'llama'
    ? `Llama ${config.layers} layers, dModel ${config.dModel}, ${config.heads} heads (${config.kvHeads} key/value), ffn ${config.ffnWidth}, ${config.tiedEmbeddings ? 'tied' : 'untied'} output`
    : `GPT ${config.layers} layers, dModel ${config.dModel}, ${config.heads} heads, ${config.norm}`;
  return `${shape}, seq ${config.seqLen}, vocab ${config.vocabSize}: ${formatCount(modelParamCount(config))} parameters, ` +
    `${(modelFlopsPerToken(config, 'train') / 1e9).toFixed(3)} GFLOP per trained token, ` +
    `memory floor ${(floor.total / 2 ** 30).toFixed(2)} GiB at batch ${batch} (${(floor.state / 2 ** 30).toFixed(2)} state + ${(floor.activations / 2 ** 30).toFixed(2)} activations)`;
}

function formatCount(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)}B` : `${(n / 1e6).toFixed(2)}M`;
}
