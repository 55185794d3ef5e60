import { describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { modelParamCount } from '../../trainer/src/model/family.js';
import { parseTrainConfigYaml } from '../../trainer/src/train/config.js';

const shipped = readFileSync('trainer/configs/small.yaml', 'utf8');

describe('training config', () => {
  it('parses the shipped default config with its defaults filled in', () => {
    const config = parseTrainConfigYaml(shipped);
    expect(config.model).toMatchObject({ layers: 4, dModel: 256, heads: 4, mlpRatio: 4, norm: 'layernorm' });
    expect(config.inner.batch).toBe(16);
    expect(config.inner.beta2).toBe(0.95);
    expect(config.train.device).toBe('auto');
    expect(config.data.genres).toBe('all');
    expect(config.outer).toEqual({ kind: 'nesterov', lr: 0.7, momentum: 0.9 });
  });

  it('parses every shipped config; the Llama ones span a CPU size to one of ~1B parameters', () => {
    const configs = Object.fromEntries(readdirSync('trainer/configs').map((file) => [file, parseTrainConfigYaml(readFileSync(`trainer/configs/${file}`, 'utf8'))]));
    expect(Object.keys(configs)).toEqual(expect.arrayContaining(['small.yaml', 'llama-small.yaml', 'llama-1b.yaml']));
    expect(configs['llama-small.yaml']!.model).toMatchObject({ family: 'llama', kvHeads: 2, ffnWidth: 704, tiedEmbeddings: false });
    expect(modelParamCount(configs['llama-small.yaml']!.model)).toBeLessThan(10e6);
    expect(modelParamCount(configs['llama-1b.yaml']!.model)).toBe(1_235_814_400);
    expect(configs['llama-1b.yaml']!.train.device).toBe('cuda');
  });

  it.each([
    ['model:\n  vocabSize: 512\n', /^model\.\w+: /],
    [shipped.replace('heads: 4', 'heads: 6'), /^model\.heads: 6 does not divide model\.dModel \(256\)/],
    [shipped.replace('layers: 4', 'layers: 0'), /^model\.layers: /],
    [shipped.replace('seed: 1', 'seed: 1\nsead: 2'), /^sead: unknown field/],
    [shipped.replace('batch: 16', 'batch: 16\n  momentum: 0.9'), /^inner\.momentum: unknown field/],
    [shipped.replace('batch: 16', 'batch: 0'), /^inner\.batch: must be at least 1, got 0/],
    [shipped.replace('lr: 0.003', 'lr: -1'), /^inner\.lr: must be above 0, got -1/],
    [shipped.replace('steps: 1200', 'steps: 1.5'), /^train\.steps: must be an integer, got 1\.5/],
    [shipped.replace('genres: all', 'genres: xyz'), /^data\.genres: must be "all" or Brown genre letters/],
    [`${shipped}\n  device: tpu\n`, /^train\.device: must be auto, cpu or cuda/],
    ['seed: 1\n', /^model: is required/],
    [`${shipped}\nouter: {kind: adam}\n`, /^outer\.kind: must be nesterov or sgd, got "adam"/],
    [`${shipped}\nouter: {momentum: 1}\n`, /^outer\.momentum: must be below 1/],
    ['model: [', /^\(file\): not valid YAML/],
  ])('refuses a bad config and names the field (%#)', (text, message) => {
    expect(() => parseTrainConfigYaml(text)).toThrow(message);
  });
});
