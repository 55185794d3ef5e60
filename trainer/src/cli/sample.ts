// `npm run sample -- --checkpoint FILE --prompt "..." [--tokens N] [--temperature T] [--top-k K] [--seed S]`:
// generates text from a trained checkpoint, one token at a time.
import { parseArgs } from 'node:util';
import { openGenerator } from '../export/generate.js';
import { loadTrainedModelForCli } from '../export/trained-model.js';
import { seededRandom } from '../random.js';

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      checkpoint: { type: 'string', default: 'out/train/model.ckpt' }, prompt: { type: 'string', default: 'The ' },
      tokens: { type: 'string', default: '80' }, temperature: { type: 'string', default: '0.8' }, 'top-k': { type: 'string', default: '40' }, seed: { type: 'string', default: '1' },
    },
  });
  const count = Number(values.tokens);
  const temperature = Number(values.temperature);
  const topK = Number(values['top-k']);
  if (!(Number.isInteger(count) && count > 0) || !(temperature >= 0) || !(Number.isInteger(topK) && topK >= 0)) {
    console.error('usage: npm run sample -- --checkpoint FILE --prompt TEXT [--tokens N ≥ 1] [--temperature T ≥ 0] [--top-k K ≥ 0] [--seed S]');
    return 2;
  }
  const model = await loadTrainedModelForCli(values.checkpoint!);
  if (model === undefined) return 1;
  const generator = await openGenerator(model.config.model, model.params, model.tokenizer);
  process.stdout.write(values.prompt!);
  const prompt = Array.from(model.tokenizer.encode(values.prompt!));
  for await (const next of generator.generate(prompt, { count, temperature, topK, random: seededRandom(Number(values.seed)) })) {
    if (next !== model.tokenizer.eot) process.stdout.write(model.tokenizer.decode([next]));
  }
  process.stdout.write('\n');
  await generator.release();
  return 0;
}

process.exitCode = await main();
