// Writes a trained model as a Hugging Face model folder, the layout transformers (Python) and
// transformers.js (`@huggingface/transformers`) load from local files:
//
//   config.json              the family's transformers config (LlamaForCausalLM, GPT2LMHeadModel)
//   generation_config.json   end-of-text ends generation
//   model.safetensors        the parameters under transformers' names and shapes (hf-layout.ts)
//   tokenizer.json           the run's tokenizer in Hugging Face's format
//   tokenizer_config.json    what transformers.js needs beside it
//   onnx/model.onnx          the decoder with a key/value cache, weights inside (decoder-onnx.ts)
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tokenizerConfigJson, tokenizerJsonOf } from '../data/tokenizer-json.js';
import { buildDecoderOnnx } from './decoder-onnx.js';
import { hfConfigJson, hfGenerationConfigJson, hfTensors } from './hf-layout.js';
import { encodeSafetensors } from './safetensors.js';
import type { TextTokenizer } from '../data/tokenizer-json.js';
import type { ModelConfig } from '../model/family.js';

export const HF_EXPORT_FILES = ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'onnx/model.onnx'] as const;

/** Writes every file of HF_EXPORT_FILES into `dir` (created if need be) for the model `config`
 * with parameters `params` and its run's tokenizer; returns their paths. */
export async function writeHuggingFaceExport(dir: string, config: ModelConfig, params: Float32Array, tokenizer: TextTokenizer): Promise<string[]> {
  const tokens = { eot: tokenizer.eot };
  if (tokenizer.vocabSize > config.vocabSize) throw new Error(`the tokenizer has ${tokenizer.vocabSize} tokens, model.vocabSize only ${config.vocabSize}`);
  // Computed before anything is written, so a model the format cannot hold leaves no half folder.
  const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;
  const files: Record<(typeof HF_EXPORT_FILES)[number], string | Uint8Array | Buffer[]> = {
    'config.json': json(hfConfigJson(config, tokens)),
    'generation_config.json': json(hfGenerationConfigJson(tokens)),
    // transformers refuses a safetensors file whose metadata does not say its framework.
    'model.safetensors': encodeSafetensors(hfTensors(config, params), { format: 'pt' }),
    'tokenizer.json': `${JSON.stringify(tokenizerJsonOf(tokenizer))}\n`,
    'tokenizer_config.json': json(tokenizerConfigJson(tokenizer.decode([tokenizer.eot]))),
    'onnx/model.onnx': buildDecoderOnnx(config, params),
  };
  await mkdir(join(dir, 'onnx'), { recursive: true });
  const written: string[] = [];
  for (const [name, content] of Object.entries(files)) {
    const path = join(dir, name);
    await writeFile(path, content);
    written.push(path);
  }
  return written;
}
