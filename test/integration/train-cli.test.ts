/** @jest-environment ./test/support/ort-environment.cjs */
import { describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as ort from 'onnxruntime-node';
import { decodeSafetensors } from '../../trainer/src/export/safetensors.js';
import { loadTrainedModel } from '../../trainer/src/export/trained-model.js';
import { loadTokenizerJson } from '../../trainer/src/data/tokenizer-json.js';
import { COMMAND_MS, TRAINING_PROCESS_MS, within } from '../support/deadlines.js';

const run = promisify(execFile);

// npm run train / export / sample, as a person runs them (from the build output).
describe('the training CLIs', () => {
  it('train a checkpoint with a loss curve, export it in Hugging Face\'s layout, and sample from it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'concord-cli-'));
    try {
      const config = join(dir, 'tiny.yaml');
      // 40 steps; the wall-clock budget (train.minutes) only bounds a stuck run, and the process
      // has a little more than that to evaluate and write its files.
      const minutes = TRAINING_PROCESS_MS / 60_000;
      await writeFile(config, `seed: 5\nmodel: {vocabSize: 512, seqLen: 32, layers: 1, dModel: 32, heads: 2}\ninner: {batch: 4, lr: 0.01, warmupSteps: 5}\ntrain: {steps: 40, minutes: ${minutes}, evalEvery: 20, evalBatches: 2, threads: 1}\n`);
      const trained = await run(process.execPath, ['dist/trainer/src/cli/train.js', '--config', config, '--out', dir], { timeout: TRAINING_PROCESS_MS + COMMAND_MS });
      expect(trained.stdout).toMatch(/validation loss \d+\.\d+ nats vs unigram entropy \d+\.\d+ nats/);
      const summary = JSON.parse(await readFile(join(dir, 'summary.json'), 'utf8'));
      expect(summary.steps).toBe(40);
      expect(summary.validation.at(-1)[1]).toBeLessThan(summary.validation[0][1]);
      expect(await readFile(join(dir, 'loss.svg'), 'utf8')).toMatch(/^<svg[\s\S]*<polyline[\s\S]*validation/);

      const exported = await run(process.execPath, ['dist/trainer/src/cli/export.js', '--checkpoint', join(dir, 'model.ckpt'), '--out', join(dir, 'hf')]);
      expect(exported.stdout).toMatch(/config\.json.*model\.safetensors.*onnx\/model\.onnx/);
      const model = await loadTrainedModel(join(dir, 'model.ckpt'));
      // Hugging Face's layout for a GPT: GPT-2's config and parameter names (the exported decoder
      // and the transformers.js round trip have tests of their own).
      expect(JSON.parse(await readFile(join(dir, 'hf', 'config.json'), 'utf8'))).toMatchObject({ architectures: ['GPT2LMHeadModel'], n_embd: 32, n_layer: 1, vocab_size: 512 });
      const tensors = decodeSafetensors(await readFile(join(dir, 'hf', 'model.safetensors'))).tensors;
      expect([...tensors.get('transformer.wte.weight')!.data.subarray(0, 8)]).toEqual([...model.params.subarray(0, 8)]);
      expect(tensors.size).toBe(model.layout.tensors.length);
      // The exported tokenizer.json is Hugging Face's format, and encodes as the model's own tokenizer.
      const hf = await loadTokenizerJson(join(dir, 'hf', 'tokenizer.json'));
      expect(hf.encode('The jury said, "Ça va?" 1961.')).toEqual(Array.from(model.tokenizer.encode('The jury said, "Ça va?" 1961.')));
      expect(hf.eot).toBe(model.tokenizer.eot);
      const decoder = await ort.InferenceSession.create(await readFile(join(dir, 'hf', 'onnx', 'model.onnx')));
      expect(decoder.inputNames.slice(0, 3)).toEqual(['input_ids', 'attention_mask', 'position_ids']);
      await decoder.release();

      const sampled = await run(process.execPath, ['dist/trainer/src/cli/sample.js', '--checkpoint', join(dir, 'model.ckpt'), '--prompt', 'The jury', '--tokens', '20', '--seed', '3']);
      const again = await run(process.execPath, ['dist/trainer/src/cli/sample.js', '--checkpoint', join(dir, 'model.ckpt'), '--prompt', 'The jury', '--tokens', '20', '--seed', '3']);
      expect(sampled.stdout.startsWith('The jury')).toBe(true);
      expect(sampled.stdout.length).toBeGreaterThan('The jury'.length + 5);
      expect(again.stdout).toBe(sampled.stdout);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, within(TRAINING_PROCESS_MS, COMMAND_MS, 3 * COMMAND_MS));

  it('explains a missing or damaged checkpoint or config instead of crashing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'concord-cli-'));
    try {
      const failure = async (args: string[]) => (await run(process.execPath, args).then(() => undefined, (error: { code: number; stderr: string }) => error))!;
      const missing = await failure(['dist/trainer/src/cli/sample.js', '--checkpoint', join(dir, 'none.ckpt')]);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toMatch(/none\.ckpt: ENOENT/);
      await writeFile(join(dir, 'bad.ckpt'), 'not a checkpoint');
      const damaged = await failure(['dist/trainer/src/cli/export.js', '--checkpoint', join(dir, 'bad.ckpt'), '--out', dir]);
      expect(damaged.stderr).toMatch(/bad\.ckpt: not a Concord checkpoint \(bad magic\)/);
      await writeFile(join(dir, 'bad.yaml'), 'model: {vocabSize: 512, seqLen: 32, layers: 1, dModel: 30, heads: 4}\n');
      const config = await failure(['dist/trainer/src/cli/train.js', '--config', join(dir, 'bad.yaml'), '--out', dir]);
      expect(config.code).toBe(2);
      expect(config.stderr).toMatch(/model\.heads: 4 does not divide model\.dModel \(30\)/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, within(3 * COMMAND_MS));
});
