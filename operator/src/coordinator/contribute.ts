import type { Envelope } from '../../../proto/gen/concord/v1/envelope_pb.js';
import { ContributionHeaderSchema } from '../../../proto/gen/concord/v1/federation_pb.js';
import type { ParallelSparseLoCoEncoder, SparseLoCoEncoder } from '../../../trainer/src/codec/index.js';
import { sha256 } from '../federation/blob-store.js';
import { sealEnvelope } from '../federation/envelope.js';
import type { Identity } from '../federation/identity.js';
import type { TrainerGateway } from './trainer-gateway.js';

/** What the cluster trained in a round: Δ = θ_base − θ_local, token-weighted over its trainers. */
export interface ClusterDelta {
  delta: Float32Array;
  tokens: bigint;
  /** Trainers whose deltas are in it, and those that failed (left, errored) with why. */
  trained: string[];
  failed: Array<{ trainerId: string; error: string }>;
  /** Token-weighted mean of the trainers' last inner-step losses (NaN when none trained). */
  loss: number;
}

export interface TrainRoundOptions {
  round: bigint;
  baseHash: Uint8Array;
  deadlineUnixMs: number;
  runSeed: bigint;
  peerId: string;
  /** The round's active peers (for assign()). */
  peers: string[];
  /** Inner steps at most (0 or absent: until the deadline). */
  maxSteps?: number;
  /** Called with each uploaded delta once it is folded into the result (to reuse its buffer). */
  release?: (delta: Float32Array) => void;
}

/**
 * Runs the round's train task on every given trainer and combines what they upload into the
 * cluster's pseudo-gradient, weighted by the tokens each processed. The first delta to arrive
 * becomes the result and the others are folded into it as they arrive (a running weighted mean),
 * so the coordinator holds the result and at most the deltas still uploading: no extra
 * model-sized buffer. A trainer that fails does not fail the round: its tokens are simply
 * absent. `replicas` in each task is the number of trainers given: their replica indices
 * (StatefulSet ordinals) must be 0 … n − 1, since assign() splits the peer's data into that many
 * slices. With no trainer done, the delta is zeros of `length`.
 */
export async function trainRound(gateway: TrainerGateway, trainerIds: readonly string[], options: TrainRoundOptions & { length: number }): Promise<ClusterDelta> {
  let mean: Float32Array | undefined;
  let tokens = 0n;
  let lossSum = 0;
  const trained: string[] = [];
  const failed: ClusterDelta['failed'] = [];
  await Promise.all(trainerIds.map(async (trainerId) => {
    try {
      const outcome = await gateway.run(trainerId, {
        case: 'train',
        value: {
          round: options.round, baseHash: options.baseHash, deadlineUnixMs: BigInt(options.deadlineUnixMs),
          peerId: options.peerId, peers: options.peers, replicas: trainerIds.length, runSeed: options.runSeed, maxSteps: options.maxSteps ?? 0,
        },
      });
      if (outcome.result.case !== 'train' || outcome.delta === undefined) throw new Error(`trainer ${trainerId} answered a train task with ${outcome.result.case}`);
      const weight = outcome.result.value.tokens;
      if (weight > 0n) {
        const { delta } = outcome;
        tokens += weight;
        // mean ← mean + (w / W)·(delta − mean), W the tokens so far: the token-weighted mean.
        if (mean === undefined) mean = delta;
        else {
          const share = Number(weight) / Number(tokens);
          for (let i = 0; i < mean.length; i++) mean[i] = mean[i]! + share * (delta[i]! - mean[i]!);
          options.release?.(delta);
        }
        lossSum += Number(weight) * outcome.result.value.finalLoss;
        trained.push(trainerId);
      }
    } catch (error) {
      failed.push({ trainerId, error: error instanceof Error ? error.message : String(error) });
    }
  }));
  trained.sort();
  return { delta: mean ?? new Float32Array(options.length), tokens, trained, failed, loss: tokens > 0n ? lossSum / Number(tokens) : Number.NaN };
}

/** A cluster's contribution for a round: the payload and the statement that commits to it. */
export interface Contribution {
  payload: Uint8Array;
  payloadHash: Buffer;
  /** Envelope without session, body ContributionHeader, signed by the cluster's identity. */
  statement: Envelope;
}

/**
 * Compresses the cluster's pseudo-gradient (plus error feedback) and signs the header
 * {run, round, base hash, tokens, payload hash, payload size}: the statement every peer checks
 * before it fetches the payload, and keeps as evidence.
 */
export async function makeContribution(
  identity: Identity,
  encoder: SparseLoCoEncoder | ParallelSparseLoCoEncoder,
  options: { runId: string; round: bigint; baseHash: Uint8Array; tokens: bigint; delta: Float32Array },
): Promise<Contribution> {
  // The single-threaded encoder returns a view of its reusable buffer: keep a copy.
  const payload = (await encoder.encode(options.delta)).slice();
  const payloadHash = sha256(payload);
  const statement = sealEnvelope(identity, {
    runId: options.runId, round: options.round, schema: ContributionHeaderSchema,
    body: { runId: options.runId, round: options.round, baseHash: options.baseHash, tokens: options.tokens, payloadHash, payloadBytes: BigInt(payload.length) },
  });
  return { payload, payloadHash, statement };
}
