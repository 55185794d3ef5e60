import type { ApplyTask, EvaluateTask, JoinResponse, TrainTask } from '../../../proto/gen/concord/v1/trainer_pb.js';
import { modelHash } from '../checkpoint.js';
import { decodePayload } from '../codec/index.js';
import { modelParamSpecs } from '../model/family.js';
import { aggregate, type Contribution } from '../outer/aggregate.js';
import { OuterOptimizer } from '../outer/optimizer.js';
import { layoutOf } from '../params.js';
import { TrainerThread } from '../engine/trainer-thread.js';
import type { TrainConfig } from '../train/config.js';
import { CoordinatorClient, type TrainerIdentity } from './coordinator-client.js';

export interface TrainerAgentOptions {
  /** `host:port` of the coordinator's TrainerService. */
  coordinator: string;
  identity: TrainerIdentity;
  config: TrainConfig;
  /** Leaving: the agent finishes its current task's bookkeeping, leaves and stops its thread. */
  signal: AbortSignal;
  /** Called with each finished train task, for logs. */
  onTrained?: (summary: { taskId: string; round: bigint; steps: number; tokens: number; loss: number }) => void;
}

/**
 * A trainer pod's main loop: joins its coordinator and works through the tasks it is given.
 * A train task runs from the round's base parameters (fetched by hash) on the data assign()
 * gives this peer and replica, until the task's wall-clock deadline, then uploads
 * Δ = θ_base − θ_local and reports the tokens it trained. An evaluate task scores another peer's
 * contribution (per-sequence losses before and after its step, on that peer's trained data and
 * on control data).
 * An apply task takes the round's outer step and reports the new model hash.
 */
export async function runTrainerAgent(options: TrainerAgentOptions): Promise<void> {
  const { identity, config, signal } = options;
  const trainer = await TrainerThread.start(config);
  const client = new CoordinatorClient(options.coordinator);
  /** The round's base, fetched once per round and kept for the evaluate tasks that follow. */
  let cachedBase: { hash: string; params: Float32Array } | undefined;
  const layout = layoutOf(modelParamSpecs(config.model));
  /** The outer optimizer's state (momentum) lives as long as the trainer takes part in the run. */
  const outer = new OuterOptimizer(layout.size, config.outer);
  try {
    await client.join({ ...identity, device: trainer.ready.provider }, async (task: JoinResponse) => {
      if (task.task.case === 'train') return train(task.taskId, task.task.value);
      if (task.task.case === 'evaluate') return evaluate(task.taskId, task.task.value);
      if (task.task.case === 'apply') return apply(task.taskId, task.task.value);
      throw new Error(`unknown task ${task.taskId}`);
    }, { signal });
  } finally {
    client.close();
    await trainer.close();
  }

  async function baseOf(hash: Uint8Array): Promise<Float32Array> {
    const key = Buffer.from(hash).toString('hex');
    if (cachedBase?.hash !== key) cachedBase = { hash: key, params: await client.fetchParams(hash, trainer.ready.paramCount, { signal }) };
    return cachedBase.params;
  }

  async function evaluate(taskId: string, task: EvaluateTask): Promise<void> {
    const params = await baseOf(task.baseHash);
    // The payload is decoded by the codec, which checks every bound (it comes from another peer).
    const update = decodePayload(await client.fetchBlob(task.payloadHash, Math.max(1024, params.length * 4), { signal }), params.length);
    if (task.sampleSeed.length !== 32) throw new Error(`evaluate: sample_seed must be 32 bytes, got ${task.sampleSeed.length}`);
    const losses = await trainer.scoreContribution({
      base: params, indices: update.indices, values: update.values, step: task.step,
      // The contributor's whole slice of the round: all of its replicas' data.
      assignment: { runSeed: task.runSeed, peers: task.peers, peerId: task.contributorPeerId, round: Number(task.round), replica: 0, replicas: 1 },
      trained: Math.max(1, Number(task.trainedSequences)), seed: task.sampleSeed, batches: Math.min(64, Math.max(1, task.batches)),
    });
    await client.complete(taskId, {
      case: 'evaluate',
      value: { ownBefore: [...losses.own.before], ownAfter: [...losses.own.after], controlBefore: [...losses.control.before], controlAfter: [...losses.control.after] },
    });
  }

  /**
   * The outer step of a round: decodes the agreed contributions, aggregates them (canonical
   * order, median-norm clipping, tokens × score with the task's bounds on claims) and steps from the base. The result is the next
   * round's base, kept, and its hash goes back to the coordinator: every honest trainer computes
   * the same bits.
   */
  async function apply(taskId: string, task: ApplyTask): Promise<void> {
    const params = await baseOf(task.baseHash);
    const contributions: Contribution[] = [];
    for (const input of task.inputs) {
      const payload = await client.fetchBlob(input.payloadHash, Math.max(1024, params.length * 4), { signal });
      contributions.push({ peerId: input.contributorPeerId, tokens: Number(input.tokens), score: input.scorePpm / 1e6, update: decodePayload(payload, params.length) });
    }
    const next = params.slice();
    const bounds = {
      ...(task.maxTokens > 0n ? { maxTokens: Number(task.maxTokens) } : {}),
      ...(task.relativeTokenCap > 0 ? { relativeTokenCap: task.relativeTokenCap } : {}),
      ...(task.maxShare > 0 ? { maxShare: task.maxShare } : {}),
    };
    if (contributions.length > 0) outer.step(next, aggregate(contributions, params.length, bounds).delta);
    const hash = modelHash(layout, next);
    cachedBase = { hash: hash.toString('hex'), params: next };
    await trainer.loadParams(next.slice());
    await client.complete(taskId, { case: 'apply', value: { modelHash: hash } });
  }

  async function train(taskId: string, task: TrainTask): Promise<void> {
    const base = await baseOf(task.baseHash);
    await trainer.loadParams(base.slice());
    let lastReport = 0;
    const result = await trainer.train({
      deadlineMs: Number(task.deadlineUnixMs),
      ...(task.maxSteps > 0 ? { maxSteps: task.maxSteps } : {}),
      assignment: {
        runSeed: task.runSeed, peers: task.peers, peerId: task.peerId, round: Number(task.round),
        replica: identity.replica, replicas: Math.max(1, task.replicas),
      },
      onProgress: (p) => {
        // At most one report a second: progress is for people and status, not for control.
        if (p.elapsedMs - lastReport < 1000) return;
        lastReport = p.elapsedMs;
        void client.reportProgress(taskId, { step: p.step, loss: p.loss, tokens: p.tokens, tokensPerSecond: p.tokensPerSecond }).catch(() => undefined);
      },
    });
    const local = await trainer.readParams();
    const delta = new Float32Array(base.length);
    for (let i = 0; i < delta.length; i++) delta[i] = base[i]! - local[i]!;
    // 1 MiB chunks: the coordinator holds less of a model-sized upload in flight.
    await client.uploadDelta(taskId, delta, 1024 * 1024, { signal });
    const finalLoss = result.losses.at(-1) ?? Number.NaN;
    await client.complete(taskId, { case: 'train', value: { tokens: BigInt(result.tokens), steps: BigInt(result.steps), finalLoss } });
    options.onTrained?.({ taskId, round: task.round, steps: result.steps, tokens: result.tokens, loss: finalLoss });
  }
}
