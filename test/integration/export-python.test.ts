/** @jest-environment ./test/support/ort-environment.cjs */
// The exported model folder opened by the reference implementation, Hugging Face transformers in
// Python (LlamaForCausalLM, GPT2LMHeadModel): every tensor loads under its name and shape, the
// logits equal Concord's training graph's, the tokenizer encodes as Concord's, and greedy
// generation picks the same tokens. The Python environment comes from scripts/python/setup.sh,
// which `npm test` runs before the suites (scripts/setup-machine.sh).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { writeHuggingFaceExport } from '../../trainer/src/export/hf-export.js';
import type { ModelConfig } from '../../trainer/src/model/index.js';
import { concordGreedy, decisiveParams, smallTokenizer } from '../support/export-fixtures.js';
import { modelSession } from '../support/model-graphs.js';

const tokenizer = smallTokenizer();
const TEXT = 'The jury said, "Ça va?" in 1961.';
const NEW_TOKENS = 16;

interface Reference {
  class: string;
  loading: { missing_keys: string[]; unexpected_keys: string[]; mismatched_keys: string[] };
  logits: number[];
  encoded: number[];
  generated: number[];
}

async function python(): Promise<string> {
  const { stdout } = await promisify(execFile)('bash', ['scripts/python/setup.sh', '--python']);
  const path = stdout.trim();
  await promisify(execFile)('bash', ['scripts/python/setup.sh', '--check']).catch(() => {
    throw new Error(`the Python reference environment (${path}) is missing: run scripts/python/setup.sh (npm test runs it through scripts/setup-machine.sh)`);
  });
  return path;
}

/** Runs the reference on `dir` with one request; rejects with its stderr if it fails. */
function reference(executable: string, dir: string, request: object): Promise<Reference> {
  return new Promise((resolve, reject) => {
    const child = spawn(executable, ['test/support/python/hf_reference.py', dir], { env: { ...process.env, HF_HUB_OFFLINE: '1', TRANSFORMERS_OFFLINE: '1' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(stdout) as Reference) : reject(new Error(`hf_reference.py exited ${code}: ${stderr.slice(-2000)}`))));
    child.stdin.end(JSON.stringify(request));
  });
}

const llama: ModelConfig = { family: 'llama', vocabSize: tokenizer.vocabSize, seqLen: 48, layers: 2, dModel: 32, heads: 4, kvHeads: 2, ffnWidth: 96, ropeTheta: 500_000, normEps: 1e-6, tiedEmbeddings: false };

describe.each<[string, ModelConfig, string]>([
  ['Llama, grouped-query attention, untied output', llama, 'LlamaForCausalLM'],
  ['Llama, multi-head attention, tied output', { ...llama, kvHeads: 4, tiedEmbeddings: true, ropeTheta: 10_000 }, 'LlamaForCausalLM'],
  ['GPT', { vocabSize: tokenizer.vocabSize, seqLen: 48, layers: 2, dModel: 32, heads: 4, mlpRatio: 4, norm: 'layernorm' }, 'GPT2LMHeadModel'],
])('transformers (Python) opens the export of a %s', (_name, config, className) => {
  let dir: string;
  const params = decisiveParams(config, 3);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'concord-hf-py-'));
    await writeHuggingFaceExport(dir, config, params, tokenizer);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('loads every tensor, and computes Concord\'s logits, tokens and greedy continuation', async () => {
    const ids = Array.from(tokenizer.encode(TEXT)).slice(0, 20);
    const result = await reference(await python(), dir, { ids, text: TEXT, new_tokens: NEW_TOKENS });
    expect(result.class).toBe(className);
    expect(result.loading).toEqual({ missing_keys: [], unexpected_keys: [], mismatched_keys: [] });
    expect(result.encoded).toEqual(Array.from(tokenizer.encode(TEXT)));

    // Concord's logits for the same ids (the rest of the window is padding; attention is causal).
    const concord = await modelSession(config, 'float32', 'logits', 1);
    const tokens = new Int32Array(config.seqLen);
    tokens.set(ids);
    const logits = (await concord.run(params, { tokens, targets: tokens })).logits!.data as Float32Array;
    await concord.session.release();
    const ours = logits.subarray(0, ids.length * config.vocabSize);
    let scale = 0;
    let worst = 0;
    for (let i = 0; i < ours.length; i++) {
      scale = Math.max(scale, Math.abs(ours[i]!));
      worst = Math.max(worst, Math.abs(ours[i]! - result.logits[i]!));
    }
    expect(result.logits.length).toBe(ours.length);
    expect(scale).toBeGreaterThan(1);
    expect(worst).toBeLessThan(1e-4 * scale);

    expect(result.generated).toEqual(await concordGreedy(config, params, tokenizer, ids, NEW_TOKENS));
  });
});
