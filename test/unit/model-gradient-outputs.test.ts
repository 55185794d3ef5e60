/** @jest-environment ./test/support/ort-environment.cjs */
import { describe, expect, it } from '@jest/globals';
import * as ort from 'onnxruntime-node';
import { GraphRunner, openSession } from '../../trainer/src/engine/session.js';
import { parseGptConfig } from '../../trainer/src/model/config.js';
import { buildGptGraph, gptParamSpecs, initGptParams } from '../../trainer/src/model/gpt.js';
import { layoutOf } from '../../trainer/src/params.js';

describe('per-tensor gradient outputs', () => {
  it('write the same gradients as the flat output, in place into views of one buffer', async () => {
    const config = parseGptConfig({ vocabSize: 64, seqLen: 8, layers: 2, dModel: 16, heads: 2 });
    const layout = layoutOf(gptParamSpecs(config));
    const params = initGptParams(config, 3);
    const feeds = {
      tokens: new ort.Tensor('int32', Int32Array.from({ length: 16 }, (_, i) => (i * 5) % 64), [2, 8]),
      targets: new ort.Tensor('int32', Int32Array.from({ length: 16 }, (_, i) => (i * 7 + 1) % 64), [2, 8]),
    };
    const flat = new GraphRunner((await openSession(buildGptGraph(config, { batch: 2, outputs: 'train' }), { device: 'cpu' })).session, layout);
    const perTensor = new GraphRunner((await openSession(buildGptGraph(config, { batch: 2, outputs: 'train', gradients: 'per-tensor' }), { device: 'cpu' })).session, layout);
    const expected = (await flat.run(params, feeds)).grads!.data as Float32Array;
    const grads = new Float32Array(layout.size);
    const fetches: Record<string, ort.Tensor> = { loss: new ort.Tensor('float32', new Float32Array(1), []) };
    for (const t of layout.tensors) fetches[`grad.${t.name}`] = new ort.Tensor('float32', grads.subarray(t.offset, t.offset + t.size), t.shape);
    await perTensor.run(params, feeds, fetches);
    expect(Buffer.from(grads.buffer).equals(Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength))).toBe(true);
  });
});
