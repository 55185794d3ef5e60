// `npm run export -- --checkpoint FILE [--out DIR]`: writes a trained model as a Hugging Face
// model folder (hf-export.ts says which files), for transformers in Python and transformers.js.
import { parseArgs } from 'node:util';
import { writeHuggingFaceExport } from '../export/hf-export.js';
import { loadTrainedModelForCli } from '../export/trained-model.js';

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { checkpoint: { type: 'string', default: 'out/train/model.ckpt' }, out: { type: 'string', default: 'out/export' } } });
  const model = await loadTrainedModelForCli(values.checkpoint!);
  if (model === undefined) return 1;
  try {
    const written = await writeHuggingFaceExport(values.out!, model.config.model, model.params, model.tokenizer);
    console.log(`wrote ${written.join(', ')}`);
    return 0;
  } catch (error) {
    console.error(`${values.checkpoint}: ${(error as Error).message}`);
    return 1;
  }
}

process.exitCode = await main();
