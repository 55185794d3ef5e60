// `npm run sample -- --checkpoint FILE --prompt "..." [--tokens N] [--temperature T] [--top-k K] [--seed S]`:
// generates text from a trained checkpoint, one token at a time.
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { GraphRunner, openSession } from '../engine/session.js';
import { sampleToken } from '../export/sample.js';
import { seededRandom } from '../random.js';
import { loadTrainedModelForCli } from '../export/trained-model.js';
import { buildModelGraph } from '../model/family.js';

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
  const { seqLen, vocabSize } = model.config.model;
  const { session } = await openSession(buildModelGraph(model.config.model, { batch: 1, outputs: 'logits' }));
  const runner = new GraphRunner(session, model.layout);
  const ids = Array.from(model.tokenizer.encode(values.prompt!));
  if (ids.length === 0) ids.push(model.tokenizer.eot);
  const window = new Int32Array(seqLen);
  const tokens = new ort.Tensor('int32', window, [1, seqLen]);
  const random = seededRandom(Number(values.seed));
  process.stdout.write(values.prompt!);
  for (let n = 0; n < count; n++) {
    // The last seqLen tokens, padded on the right: causal attention ignores the padding.
    const context = ids.slice(-seqLen);
    window.fill(0);
    window.set(context);
    const out = await runner.run(model.params, { tokens });
    const logits = (out.logits!.data as Float32Array).subarray((context.length - 1) * vocabSize, context.length * vocabSize);
    const next = sampleToken(logits, { temperature, topK }, random);
    if (next === model.tokenizer.eot) break;
    ids.push(next);
    process.stdout.write(model.tokenizer.decode([next]));
  }
  process.stdout.write('\n');
  return 0;
}

process.exitCode = await main();
