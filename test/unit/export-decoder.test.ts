/** @jest-environment ./test/support/ort-environment.cjs */
// The exported decoder with a key/value cache (what transformers.js runs) against the training
// graph's logits: the whole prompt at once, then one token per step with the cache, and a batch
// with left padding, for the Llama family (grouped-query and multi-head, untied and tied) and the
// GPT, with parameters spread far from the init so attention and positions decide the outputs.
import { describe, expect, it } from '@jest/globals';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromBinary } from '@bufbuild/protobuf';
import * as ort from 'onnxruntime-node';
import { ModelProtoSchema } from 'onnx-buf';
import { buildDecoderOnnx } from '../../trainer/src/export/decoder-onnx.js';
import { modelParamSpecs, type ModelConfig } from '../../trainer/src/model/index.js';
import { layoutOf } from '../../trainer/src/params.js';
import { modelSession, randomBatch, sessionOptions, spreadParams } from '../support/model-graphs.js';

const llama: ModelConfig = { family: 'llama', vocabSize: 37, seqLen: 9, layers: 2, dModel: 16, heads: 4, kvHeads: 2, ffnWidth: 24, ropeTheta: 10_000, normEps: 1e-5, tiedEmbeddings: false };
const gpt: ModelConfig = { vocabSize: 37, seqLen: 9, layers: 2, dModel: 16, heads: 4, mlpRatio: 4, norm: 'layernorm' };

const llamaTensorBytes = (params: Float32Array) => layoutOf(modelParamSpecs(llama)).tensors.map((t) => t.size * params.BYTES_PER_ELEMENT);

/** Feeds for one call of the decoder: ids [B, S], mask [B, total], positions [B, S], cache. */
function decoderFeeds(config: ModelConfig, ids: number[][], mask: number[][], positions: number[][], cache: Record<string, ort.Tensor>): Record<string, ort.Tensor> {
  const B = ids.length;
  const int64 = (rows: number[][]) => new ort.Tensor('int64', BigInt64Array.from(rows.flat(), BigInt), [B, rows[0]!.length]);
  return { input_ids: int64(ids), attention_mask: int64(mask), position_ids: int64(positions), ...cache };
}

function emptyCache(config: ModelConfig, batch: number): Record<string, ort.Tensor> {
  const kvHeads = config.family === 'llama' ? config.kvHeads : config.heads;
  const shape = [batch, kvHeads, 0, config.dModel / config.heads];
  const cache: Record<string, ort.Tensor> = {};
  for (let i = 0; i < config.layers; i++) for (const part of ['key', 'value']) cache[`past_key_values.${i}.${part}`] = new ort.Tensor('float32', new Float32Array(0), shape);
  return cache;
}

/** The present.* outputs of one call as the past_key_values.* inputs of the next. */
const carry = (out: ort.InferenceSession.ReturnType): Record<string, ort.Tensor> =>
  Object.fromEntries(Object.entries(out).filter(([name]) => name.startsWith('present.')).map(([name, t]) => [name.replace('present.', 'past_key_values.'), t]));

function maxDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

describe.each<[string, ModelConfig]>([
  ['Llama, grouped-query attention, untied output', llama],
  ['Llama, multi-head attention, tied output', { ...llama, kvHeads: 4, tiedEmbeddings: true }],
  ['GPT', gpt],
])('the exported decoder (%s)', (_name, config) => {
  const V = config.vocabSize;
  const T = config.seqLen;

  async function setup() {
    const reference = await modelSession(config, 'float32', 'logits', 1);
    const params = Float32Array.from(spreadParams(config, reference.layout, 5));
    const tokens = randomBatch(config, 1, 8).tokens;
    const expected = (await reference.run(params, { tokens, targets: tokens })).logits!.data as Float32Array; // [1, T, V]
    await reference.session.release();
    const decoder = await ort.InferenceSession.create(buildDecoderOnnx(config, params).model, sessionOptions);
    return { tokens: Array.from(tokens), expected, decoder };
  }

  it('gives the training graph\'s logits for a whole prompt, then token by token from its cache', async () => {
    const { tokens, expected, decoder } = await setup();
    const scale = maxDifference(expected, new Float32Array(expected.length));
    expect(scale).toBeGreaterThan(1); // logits far from uniform: a wrong position or head would show

    const prompt = 4;
    let out = await decoder.run(decoderFeeds(config, [tokens.slice(0, prompt)], [Array(prompt).fill(1)], [[0, 1, 2, 3]], emptyCache(config, 1)));
    expect(out.logits!.dims).toEqual([1, prompt, V]);
    expect(maxDifference(out.logits!.data as Float32Array, expected.subarray(0, prompt * V))).toBeLessThan(1e-4 * scale);
    for (let t = prompt; t < T; t++) {
      out = await decoder.run(decoderFeeds(config, [[tokens[t]!]], [Array(t + 1).fill(1)], [[t]], carry(out)));
      expect(out['present.0.key']!.dims[2]).toBe(t + 1);
      expect(maxDifference(out.logits!.data as Float32Array, expected.subarray(t * V, (t + 1) * V))).toBeLessThan(1e-4 * scale);
    }
    await decoder.release();
  });

  it('ignores left padding in a batch (positions counted from the first real token)', async () => {
    const { tokens, expected, decoder } = await setup();
    const scale = maxDifference(expected, new Float32Array(expected.length));
    const pad = 3;
    const short = tokens.slice(0, T - pad);
    const ids = [[...Array(pad).fill(0), ...short], tokens];
    const mask = [[...Array(pad).fill(0), ...short.map(() => 1)], tokens.map(() => 1)];
    const positions = [[...Array(pad).fill(1), ...short.map((_, i) => i)], tokens.map((_, i) => i)];
    const out = await decoder.run(decoderFeeds(config, ids, mask, positions, emptyCache(config, 2)));
    const logits = out.logits!.data as Float32Array;
    expect(maxDifference(logits.subarray(pad * V, T * V), expected.subarray(0, (T - pad) * V))).toBeLessThan(1e-4 * scale);
    expect(maxDifference(logits.subarray(T * V, 2 * T * V), expected)).toBeLessThan(1e-4 * scale);
    await decoder.release();
  });
});

describe('the exported decoder\'s interface', () => {
  it('names the inputs and outputs transformers.js feeds and reads', async () => {
    const params = new Float32Array(layoutOf(modelParamSpecs(llama)).size);
    const session = await ort.InferenceSession.create(buildDecoderOnnx(llama, params).model, sessionOptions);
    expect([...session.inputNames]).toEqual(['input_ids', 'attention_mask', 'position_ids', 'past_key_values.0.key', 'past_key_values.0.value', 'past_key_values.1.key', 'past_key_values.1.value']);
    expect([...session.outputNames].sort()).toEqual(['logits', 'present.0.key', 'present.0.value', 'present.1.key', 'present.1.value']);
    await session.release();
  });

  it('puts the weights in aligned external data files of bounded size when asked, with the same outputs', async () => {
    const params = Float32Array.from(spreadParams(llama, layoutOf(modelParamSpecs(llama)), 4));
    const files = buildDecoderOnnx(llama, params, { fileName: 'decoder.onnx', inlineLimitBytes: 0, chunkBytes: 10_000 });
    expect(files.data.map((f) => f.name).slice(0, 3)).toEqual(['decoder.onnx_data', 'decoder.onnx_data_1', 'decoder.onnx_data_2']);
    const external = fromBinary(ModelProtoSchema, files.model).graph!.initializer.filter((t) => t.externalData.length > 0);
    expect(external.map((t) => t.name)).toEqual(expect.arrayContaining(['wte', 'h1.qkv.w', 'lm_head.w']));
    for (const t of external) expect(Number(t.externalData.find((e) => e.key === 'offset')!.value) % 4096).toBe(0);
    const largest = Math.max(...llamaTensorBytes(params));
    for (const file of files.data) expect(file.chunks.reduce((n, c) => n + c.length, 0)).toBeLessThanOrEqual(Math.max(10_000, largest));
    const dir = await mkdtemp(join(tmpdir(), 'concord-onnx-'));
    try {
      await writeFile(join(dir, 'decoder.onnx'), files.model);
      for (const file of files.data) await writeFile(join(dir, file.name), file.chunks);
      const inlineModel = buildDecoderOnnx(llama, params).model;
      const externalBytes = files.data.reduce((n, f) => n + f.chunks.reduce((m, c) => m + c.length, 0), 0);
      expect(externalBytes).toBeGreaterThanOrEqual(params.byteLength);
      expect(files.model.length).toBeLessThan(inlineModel.length - 0.9 * params.byteLength); // the weights are not also inside
      const split = await ort.InferenceSession.create(join(dir, 'decoder.onnx'), sessionOptions);
      const inline = await ort.InferenceSession.create(inlineModel, sessionOptions);
      const feeds = decoderFeeds(llama, [[3, 1, 4, 1, 5]], [[1, 1, 1, 1, 1]], [[0, 1, 2, 3, 4]], emptyCache(llama, 1));
      const a = (await split.run(feeds)).logits!.data as Float32Array;
      const b = (await inline.run(feeds)).logits!.data as Float32Array;
      expect(maxDifference(a, b)).toBe(0);
      await split.release();
      await inline.release();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a parameter vector of the wrong size', () => {
    expect(() => buildDecoderOnnx(llama, new Float32Array(3))).toThrow(/params have 3 values/);
  });
});
