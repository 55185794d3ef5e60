import { describe, expect, it } from '@jest/globals';
import { modelHash } from '../../trainer/src/checkpoint.js';
import { TrainerThread } from '../../trainer/src/engine/trainer-thread.js';
import { modelParamSpecs } from '../../trainer/src/model/family.js';
import { layoutOf } from '../../trainer/src/params.js';
import { parseTrainConfig } from '../../trainer/src/train/config.js';
import { LATE_MS, TRAIN_WINDOW_MS, within, WORKERS_MS } from '../support/deadlines.js';

// The trainer as the CLI and the trainer pod run it: the inner loop on a worker thread (from the
// build output; `npm test` builds first), on real Brown text.
const config = parseTrainConfig({
  seed: 7,
  model: { vocabSize: 512, seqLen: 32, layers: 1, dModel: 32, heads: 2 },
  inner: { batch: 4, lr: 0.01, warmupSteps: 5 },
  train: { steps: 60, minutes: 5, evalBatches: 2, threads: 1, device: 'cpu' },
});
const layout = layoutOf(modelParamSpecs(config.model));

async function trainOnce(steps: number) {
  const trainer = await TrainerThread.start(config);
  try {
    const before = await trainer.evaluate();
    const progress: number[] = [];
    const result = await trainer.train({ maxSteps: steps, onProgress: (p) => progress.push(p.step) });
    return { trainer, before, after: await trainer.evaluate(), result, progress, hash: modelHash(layout, await trainer.readParams()).toString('hex') };
  } finally {
    await trainer.close();
  }
}

describe('the trainer on a worker thread', () => {
  it('trains real text: validation loss falls, every token is counted, progress is reported', async () => {
    const run = await trainOnce(60);
    expect(run.trainer.ready.provider).toBe('cpu');
    expect(run.result.steps).toBe(60);
    expect(run.result.tokens).toBe(60 * 4 * 32);
    expect(run.after).toBeLessThan(run.before - 0.5);
    expect(run.progress.at(-1)).toBe(60);
  }, within(WORKERS_MS));

  it('gives the same model hash for the same seed, config and data after N steps', async () => {
    const [a, b] = [await trainOnce(12), await trainOnce(12)];
    expect(a.hash).toBe(b.hash);
    expect(a.result.losses).toEqual(b.result.losses);
  }, within(2 * WORKERS_MS));

  it('stops at the wall-clock deadline, whatever the step budget', async () => {
    const trainer = await TrainerThread.start(config);
    try {
      // The window is the test's: long enough for the first step to start inside it on a loaded
      // machine (the worker is up), far too short for the step budget on any machine.
      const started = Date.now();
      const result = await trainer.train({ maxSteps: 1_000_000, deadlineMs: started + TRAIN_WINDOW_MS });
      expect(result.stoppedBy).toBe('deadline');
      expect(Date.now() - started).toBeLessThan(TRAIN_WINDOW_MS + LATE_MS);
      expect(result.steps).toBeGreaterThan(0);
    } finally {
      await trainer.close();
    }
  }, within(TRAIN_WINDOW_MS, WORKERS_MS));

  it('starts a round from loaded base parameters and gives the pseudo-gradient θ_base − θ_local', async () => {
    const trainer = await TrainerThread.start(config);
    try {
      await trainer.train({ maxSteps: 3 });
      const base = await trainer.readParams();
      base[0] = 0.125; // a recognisable base, as a coordinator's agreed θ_r would be
      await trainer.loadParams(base.slice());
      expect((await trainer.readParams())[0]).toBe(0.125);
      await trainer.train({ maxSteps: 3 });
      const local = await trainer.readParams();
      const delta = base.map((v, i) => v - local[i]!);
      expect(Math.max(...delta.map(Math.abs))).toBeGreaterThan(0);
      await expect(trainer.loadParams(new Float32Array(3))).rejects.toThrow(/load-params: got 3 values, the model has \d+/);
    } finally {
      await trainer.close();
    }
  }, within(WORKERS_MS));
});
