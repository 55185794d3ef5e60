import { loadCheckpoint } from '../checkpoint.js';
import { openDataset } from '../data/open.js';
import type { TextTokenizer } from '../data/tokenizer-json.js';
import { modelParamSpecs } from '../model/family.js';
import { layoutOf, type ParamLayout } from '../params.js';
import { parseTrainConfig, type TrainConfig } from '../train/config.js';

export interface TrainedModel {
  config: TrainConfig;
  layout: ParamLayout;
  params: Float32Array;
  tokenizer: TextTokenizer;
  meta: Record<string, unknown>;
}

/**
 * A checkpoint written by `npm run train`, with the tokenizer of its run (rebuilt from the
 * corpus and the config: training the BPE is deterministic, and cached).
 */
export async function loadTrainedModel(path: string): Promise<TrainedModel> {
  const checkpoint = await loadCheckpoint(path);
  if (checkpoint.meta.config === undefined) throw new Error(`${path}: the checkpoint has no training config in its metadata`);
  const config = parseTrainConfig(checkpoint.meta.config);
  const layout = layoutOf(modelParamSpecs(config.model));
  if (JSON.stringify(layout) !== JSON.stringify(checkpoint.layout)) throw new Error(`${path}: the parameter layout does not match its model config`);
  const { tokenizer } = await openDataset(config);
  return { config, layout, params: checkpoint.sections.get('params')!, tokenizer, meta: checkpoint.meta };
}

/**
 * For the command-line tools: the model, or undefined after printing why it could not be loaded
 * (a missing or damaged checkpoint is the user's to fix: the path and the reason, no stack trace).
 */
export async function loadTrainedModelForCli(path: string): Promise<TrainedModel | undefined> {
  try {
    return await loadTrainedModel(path);
  } catch (error) {
    console.error(`${path}: ${(error as Error).message}`);
    return undefined;
  }
}
