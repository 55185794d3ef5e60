// `npm run export -- --checkpoint FILE [--out DIR]`: writes a trained model in two portable forms:
//   model.safetensors  the parameters (F32, names as in the layout), readable by any ML stack;
//   model.onnx         a self-contained inference model: input `tokens` int32 [1, seqLen],
//                      output `logits` float32 [1, seqLen, vocabSize], weights inside;
// plus tokenizer.json (Hugging Face's format) and tokenizer_config.json to turn text into ids and back.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { encodeSafetensors } from '../export/safetensors.js';
import { tokenizerJsonOf, tokenizerConfigJson } from '../data/tokenizer-json.js';
import { loadTrainedModelForCli } from '../export/trained-model.js';
import { buildModelGraph } from '../model/family.js';

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { checkpoint: { type: 'string', default: 'out/train/model.ckpt' }, out: { type: 'string', default: 'out/export' } } });
  const model = await loadTrainedModelForCli(values.checkpoint!);
  if (model === undefined) return 1;
  await mkdir(values.out!, { recursive: true });
  const metadata = { format: 'concord-gpt', config: JSON.stringify(model.config.model) };
  await writeFile(join(values.out!, 'model.safetensors'), encodeSafetensors(model.layout, model.params, metadata));
  await writeFile(join(values.out!, 'model.onnx'), buildModelGraph(model.config.model, { batch: 1, outputs: 'logits', weights: model.params }));
  await writeFile(join(values.out!, 'tokenizer.json'), `${JSON.stringify(tokenizerJsonOf(model.tokenizer))}\n`);
  await writeFile(join(values.out!, 'tokenizer_config.json'), `${JSON.stringify(tokenizerConfigJson(model.tokenizer.decode([model.tokenizer.eot])), null, 2)}\n`);
  console.log(`wrote ${['model.safetensors', 'model.onnx', 'tokenizer.json', 'tokenizer_config.json'].map((f) => join(values.out!, f)).join(', ')}`);
  return 0;
}

process.exitCode = await main();
