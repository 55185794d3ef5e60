import { describe, expect, it } from '@jest/globals';
import { TrainerGateway } from '../../operator/src/coordinator/trainer-gateway.js';
import { MemoryBlobStore } from '../../operator/src/federation/blob-store.js';
import { runTrainerAgent } from '../../trainer/src/agent/trainer-agent.js';
import { decodePayload, SparseLoCoEncoder } from '../../trainer/src/codec/index.js';
import { modelHash } from '../../trainer/src/checkpoint.js';
import { aggregate } from '../../trainer/src/outer/aggregate.js';
import { OuterOptimizer } from '../../trainer/src/outer/optimizer.js';
import { layoutOf } from '../../trainer/src/params.js';
import { initModelParams, modelParamCount, modelParamSpecs } from '../../trainer/src/model/family.js';
import { parseTrainConfig } from '../../trainer/src/train/config.js';
import { CALL_MS, TEARDOWN_MS, TRAINERS_JOIN_MS, within, WORKERS_MS } from '../support/deadlines.js';
import { waitFor } from '../support/wait.js';

/** Inner steps of the round below: its work is a number of steps, not what a time window allows on this machine. */
const STEPS = 40;

// A trainer pod's loop against a coordinator's gateway, over real gRPC on loopback, training a
// tiny GPT on its worker thread (from the build output; npm test builds first).
describe('the trainer agent', () => {
  it('trains a round from the base it is sent, scores contributions, and applies the outer step to the same bits on every trainer', async () => {
    const config = parseTrainConfig({
      seed: 7, model: { vocabSize: 512, seqLen: 32, layers: 1, dModel: 32, heads: 2 },
      inner: { batch: 4, lr: 0.01, warmupSteps: 2 }, train: { steps: 1000, minutes: 5, threads: 1, device: 'cpu' },
    });
    const paramCount = modelParamCount(config.model);
    const blobs = new MemoryBlobStore();
    const base = initModelParams(config.model, 99);
    const baseHash = blobs.put(new Uint8Array(base.buffer));
    const gateway = new TrainerGateway({ paramCount, blobs });
    const port = await gateway.listen('127.0.0.1', 0);
    const leave = new AbortController();
    const trained: number[] = [];
    const agent = runTrainerAgent({
      coordinator: `127.0.0.1:${port}`, identity: { trainerId: 'trainer-0', group: 'cpu', replica: 0, device: 'cpu' },
      config, signal: leave.signal, onTrained: (s) => trained.push(s.steps),
    });
    // A second trainer, for the outer step below.
    const second = runTrainerAgent({ coordinator: `127.0.0.1:${port}`, identity: { trainerId: 'trainer-1', group: 'cpu', replica: 1, device: 'cpu' }, config, signal: leave.signal });
    try {
      await gateway.waitForTrainers(2, TRAINERS_JOIN_MS);
      // The deadline only bounds a stuck trainer: the round ends after STEPS steps.
      const outcome = await gateway.run('trainer-0', {
        case: 'train',
        value: { round: 3n, baseHash, deadlineUnixMs: BigInt(Date.now() + CALL_MS), peerId: 'peer-a', peers: ['peer-a', 'peer-b'], replicas: 1, runSeed: 42n, maxSteps: STEPS },
      });
      expect(outcome.result.case).toBe('train');
      if (outcome.result.case !== 'train') throw new Error('unreachable');
      const steps = Number(outcome.result.value.steps);
      expect(steps).toBe(STEPS);
      expect(Number(outcome.result.value.tokens)).toBe(steps * 4 * 32);
      // The agent logs the task after the coordinator has its result (once CompleteTask answers).
      await waitFor(() => trained.length > 0, CALL_MS, 'the agent to report its trained task', 10);
      expect(trained).toEqual([steps]);
      const delta = outcome.delta!;
      expect(delta).toHaveLength(paramCount);
      expect(delta.every(Number.isFinite)).toBe(true);
      // Training moved the parameters away from the base it was sent.
      expect(delta.some((v) => Math.abs(v) > 1e-4)).toBe(true);

      // Scoring (Gauntlet, paired): the update it trained, compressed as its cluster would send
      // it, lowers the loss of the sequences it trained on — pair by pair, the same sequences
      // before and after — and more than the same update sign-flipped does.
      const mean = (values: readonly number[]) => values.reduce((a, b) => a + b, 0) / values.length;
      const scoreOf = async (update: Float32Array) => {
        const payloadHash = blobs.put(new SparseLoCoEncoder(paramCount, { chunk: 4096, k: 256, bits: 4 }).encode(update).slice());
        const scored = await gateway.run('trainer-0', {
          case: 'evaluate',
          value: { round: 3n, baseHash, payloadHash, contributorPeerId: 'peer-a', step: 0.5, peers: ['peer-a', 'peer-b'], runSeed: 42n, batches: 4, sampleSeed: Buffer.alloc(32, 5), trainedSequences: BigInt(steps * 4) },
        });
        if (scored.result.case !== 'evaluate') throw new Error(`expected an evaluate result, got ${scored.result.case}`);
        return scored.result.value;
      };
      const honest = await scoreOf(delta);
      for (const side of [honest.ownBefore, honest.ownAfter, honest.controlBefore, honest.controlAfter]) expect(side).toHaveLength(4 * 4);
      expect(mean(honest.ownAfter)).toBeLessThan(mean(honest.ownBefore));
      const flipped = await scoreOf(delta.map((v) => -v));
      // Near a fresh initialisation a step this long is far from linear: the flipped update may
      // lower the loss too, but it lowers it less than the update the trainer really made.
      expect(mean(flipped.ownAfter)).toBeGreaterThan(mean(honest.ownAfter));
      // The same seed draws the same sequences: the losses before the step are the same.
      expect(flipped.ownBefore).toEqual(honest.ownBefore);
      expect(flipped.controlBefore).toEqual(honest.controlBefore);

      // The outer step, on two trainers: the same inputs give the same model hash, and the same
      // bits as applying them here with the same code.
      const payloads = [delta, delta.map((v) => 0.5 * v)].map((update) => new SparseLoCoEncoder(paramCount, { chunk: 4096, k: 64, bits: 2 }).encode(update).slice());
      const inputs = payloads.map((payload, i) => ({ payloadHash: blobs.put(payload), contributorPeerId: ['peer-b', 'peer-a'][i]!, tokens: 1000n, scorePpm: 800_000 }));
      const hashes = await Promise.all(['trainer-0', 'trainer-1'].map(async (id) => {
        const applied = await gateway.run(id, { case: 'apply', value: { round: 3n, baseHash, inputs } });
        if (applied.result.case !== 'apply') throw new Error(`expected an apply result, got ${applied.result.case}`);
        return Buffer.from(applied.result.value.modelHash).toString('hex');
      }));
      const expected = base.slice();
      new OuterOptimizer(paramCount, config.outer).step(expected, aggregate(
        payloads.map((payload, i) => ({ peerId: ['peer-b', 'peer-a'][i]!, tokens: 1000, score: 0.8, update: decodePayload(payload, paramCount) })), paramCount,
      ).delta);
      expect(hashes).toEqual([modelHash(layoutOf(modelParamSpecs(config.model)), expected).toString('hex'), hashes[0]]);
    } finally {
      leave.abort();
      await Promise.all([agent, second]);
      await gateway.close(100);
    }
  }, within(TRAINERS_JOIN_MS, 2 * CALL_MS, 3 * WORKERS_MS, TEARDOWN_MS));
});
