// Writes a trained model as a Hugging Face model folder, the layout transformers (Python) and
// transformers.js (`@huggingface/transformers`) load from local files:
//
//   config.json              the family's transformers config (LlamaForCausalLM, GPT2LMHeadModel)
//   generation_config.json   end-of-text ends generation
//   model.safetensors        the parameters under transformers' names and shapes (hf-layout.ts)
//   tokenizer.json           the run's tokenizer in Hugging Face's format
//   tokenizer_config.json    what transformers.js needs beside it
//   onnx/model.onnx          the decoder with a key/value cache (decoder-onnx.ts), weights inside;
//   onnx/model.onnx_data…    or, for weights past 1.5 GiB, beside it in files of at most 1.5 GiB,
//                            which config.json's transformers.js_config counts for transformers.js
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tokenizerConfigJson, tokenizerJsonOf, type TextTokenizer } from '../data/tokenizer-json.js';
import type { ModelConfig } from '../model/family.js';
import { buildDecoderOnnx } from './decoder-onnx.js';
import type { WeightPlacement } from './onnx-builder.js';
import { hfConfigJson, hfGenerationConfigJson, hfTensors } from './hf-layout.js';
import { encodeSafetensors } from './safetensors.js';

/** Writes the model folder into `dir` (created if need be) for the model `config` with
 * parameters `params` and its run's tokenizer; returns the paths written. `placement` moves the
 * ONNX weights' limits (tests; the defaults suit every model). */
export async function writeHuggingFaceExport(
  dir: string, config: ModelConfig, params: Float32Array, tokenizer: TextTokenizer, placement?: Omit<WeightPlacement, 'fileName'>,
): Promise<string[]> {
  const tokens = { eot: tokenizer.eot };
  if (tokenizer.vocabSize > config.vocabSize) throw new Error(`model.vocabSize: ${config.vocabSize} is smaller than the tokenizer's ${tokenizer.vocabSize} tokens`);
  // Computed before anything is written, so a model the format cannot hold leaves no half folder.
  const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;
  const onnx = buildDecoderOnnx(config, params, { ...placement, fileName: 'model.onnx' });
  // transformers.js reads external data only when told how many files there are.
  const external = onnx.data.length === 0 ? {} : { 'transformers.js_config': { use_external_data_format: onnx.data.length } };
  const files: Record<string, string | Uint8Array | Uint8Array[]> = {
    'config.json': json({ ...hfConfigJson(config, tokens), ...external }),
    'generation_config.json': json(hfGenerationConfigJson(tokens)),
    // transformers refuses a safetensors file whose metadata does not say its framework.
    'model.safetensors': encodeSafetensors(hfTensors(config, params), { format: 'pt' }),
    'tokenizer.json': `${JSON.stringify(tokenizerJsonOf(tokenizer))}\n`,
    'tokenizer_config.json': json(tokenizerConfigJson(tokenizer.decode([tokenizer.eot]))),
    'onnx/model.onnx': onnx.model,
    ...Object.fromEntries(onnx.data.map((file) => [`onnx/${file.name}`, file.chunks])),
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
