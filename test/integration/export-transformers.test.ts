/** @jest-environment ./test/support/ort-environment.cjs */
// A model exported by Concord opens in transformers.js (@huggingface/transformers) from local
// files only, tokenizes as Concord does, and generates greedily the same tokens as Concord's own
// sampler: a Llama-family model (grouped-query attention, untied output), the same with its ONNX
// weights in external data files (as a model past 1.5 GiB has them), and a GPT.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AutoModelForCausalLM, AutoTokenizer, env } from '@huggingface/transformers';
import { writeHuggingFaceExport } from '../../trainer/src/export/hf-export.js';
import type { ModelConfig } from '../../trainer/src/model/index.js';
import { concordGreedy, decisiveParams, smallTokenizer } from '../support/export-fixtures.js';

// Offline: nothing is fetched from the Hub, nothing cached outside the test's folder.
env.allowRemoteModels = false;
env.useFSCache = false;

const tokenizer = smallTokenizer();
const PROMPT = 'The jury said that the election';
const NEW_TOKENS = 24;

const llama: ModelConfig = { family: 'llama', vocabSize: tokenizer.vocabSize, seqLen: 64, layers: 2, dModel: 32, heads: 4, kvHeads: 2, ffnWidth: 96, ropeTheta: 10_000, normEps: 1e-5, tiedEmbeddings: false };
const SPLIT_WEIGHTS = { inlineLimitBytes: 0, chunkBytes: 40_000 };

describe.each<[string, ModelConfig, typeof SPLIT_WEIGHTS | undefined]>([
  ['a Llama-family model', llama, undefined],
  ['a Llama-family model, ONNX weights in external data files', llama, SPLIT_WEIGHTS],
  ['a GPT', { vocabSize: tokenizer.vocabSize, seqLen: 64, layers: 2, dModel: 32, heads: 4, mlpRatio: 4, norm: 'layernorm' }, undefined],
])('the Hugging Face export of %s', (_name, config, placement) => {
  let dir: string;
  const params = decisiveParams(config, 7);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'concord-hf-'));
    const written = await writeHuggingFaceExport(dir, config, params, tokenizer, placement);
    // Split weights: several data files (each tensor in one), counted in config.json.
    const dataFiles = written.filter((path) => /model\.onnx_data(_\d+)?$/.test(path));
    if (placement === undefined) expect(dataFiles).toEqual([]);
    else {
      expect(dataFiles.length).toBeGreaterThan(2);
      expect(JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'))['transformers.js_config']).toEqual({ use_external_data_format: dataFiles.length });
    }
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('tokenizes with transformers.js as Concord does', async () => {
    const hf = await AutoTokenizer.from_pretrained(dir, { local_files_only: true });
    const text = 'The jury said, "Ça va?" in 1961.';
    expect(hf.encode(text)).toEqual(Array.from(tokenizer.encode(text)));
    expect(hf.decode(Array.from(tokenizer.encode(text)))).toBe(text);
  });

  it('generates greedily with transformers.js the same tokens as Concord\'s sampler', async () => {
    const prompt = Array.from(tokenizer.encode(PROMPT));
    const ours = await concordGreedy(config, params, tokenizer, prompt, NEW_TOKENS);
    expect(new Set(ours).size).toBeGreaterThan(3); // not one token repeated: the test can tell orders apart

    const hfTokenizer = await AutoTokenizer.from_pretrained(dir, { local_files_only: true });
    const model = await AutoModelForCausalLM.from_pretrained(dir, { local_files_only: true, dtype: 'fp32', device: 'cpu' });
    const inputs = hfTokenizer(PROMPT);
    const output = await model.generate({ ...inputs, max_new_tokens: NEW_TOKENS, do_sample: false }) as { tolist(): bigint[][] };
    const theirs = output.tolist()[0]!.map(Number);
    await model.dispose();
    expect(theirs.slice(0, prompt.length)).toEqual(prompt);
    expect(theirs.slice(prompt.length)).toEqual(ours);
  });
});
