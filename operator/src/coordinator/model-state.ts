// What a coordinator holds between rounds: the model θ_r, the outer optimizer's momentum, the
// round number — equal on every honest cluster — and its own error-feedback buffer and view of
// its peers, which are not. Two checkpoint files come out of it:
//   - the shared checkpoint (params, momentum, round): what any peer may fetch by model hash to
//     resync or join late. Its bytes depend only on the agreed state, so every honest donor
//     serves the same file and a transfer can resume from another donor at the same offset;
//   - the local checkpoint on the run's volume: the shared state plus error feedback and
//     reputation, from which a restarted coordinator resumes.
//
// Memory: the parameters and the momentum live *inside* the shared checkpoint file (views into
// it), so serving the file to peers and the parameters to the cluster's trainers costs no copy,
// and the outer step updates the file in place: its header has a fixed length (the round is
// written with 20 digits, enough for any uint64), so only the round's digits and the sections
// change. A peer streaming the previous round's checkpoint while the step runs gets bytes that
// do not hash to what it asked for; it checks, and fetches from another donor.
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeCheckpoint, encodeCheckpointHead, modelHash, saveCheckpoint, type Checkpoint } from '../../../trainer/src/checkpoint.js';
import { initModelParams, modelParamSpecs, type ModelConfig } from '../../../trainer/src/model/family.js';
import { OuterOptimizer, type OuterConfig } from '../../../trainer/src/outer/optimizer.js';
import { layoutOf, type ParamLayout } from '../../../trainer/src/params.js';
import type { PeerReputation } from '../rounds/reputation.js';

export const LOCAL_CHECKPOINT = 'coordinator.ckpt';

export interface LocalExtras {
  errorFeedback: Float32Array;
  reputation: PeerReputation[];
}

/** A shared checkpoint file and the views of its sections. */
interface SharedFile {
  file: Buffer;
  params: Float32Array;
  momentum: Float32Array;
}

export class ModelState {
  readonly layout: ParamLayout;
  readonly outer: OuterOptimizer;
  /** SHA-256 model hash of `params` (checkpoint.ts), the base hash contributions name. */
  hash: Buffer;
  private shared: SharedFile;

  private constructor(
    readonly runId: string,
    /** The round these parameters are the base of. */
    public round: bigint,
    params: Float32Array,
    momentum: Float32Array | undefined,
    outer: OuterConfig,
    layout: ParamLayout,
  ) {
    this.layout = layout;
    this.outer = new OuterOptimizer(layout.size, outer);
    this.shared = this.newFile(round, (p, m) => {
      p.set(params);
      if (momentum !== undefined) m.set(momentum);
    });
    this.outer.momentum = this.shared.momentum;
    this.hash = modelHash(layout, this.shared.params);
  }

  /** θ_r: a view into the shared checkpoint file. */
  get params(): Float32Array {
    return this.shared.params;
  }

  /** Round 0: the initial parameters from the run's seed, the same at every peer. */
  static initial(runId: string, model: ModelConfig, outer: OuterConfig, runSeed: bigint): ModelState {
    const layout = layoutOf(modelParamSpecs(model));
    return new ModelState(runId, 0n, initModelParams(model, runSeed.toString()), undefined, outer, layout);
  }

  /** Takes the outer step with the round's aggregate, in place: θ_{r+1} = step(θ_r); the round moves on. */
  step(aggregate: Float32Array | undefined): void {
    const round = this.round + 1n;
    const head = this.head(round);
    const { file, params } = this.shared;
    if (head.length !== params.byteOffset - file.byteOffset) throw new Error('checkpoint header changed length (unreachable: the round has a fixed width)');
    if (aggregate !== undefined) this.outer.step(params, aggregate);
    file.set(head, 0);
    this.round = round;
    this.hash = modelHash(this.layout, params);
  }

  /**
   * The shared checkpoint file (see the top of this file), and a view of its parameter bytes:
   * what the cluster's trainers fetch as the round's base. No copy: both are the live state.
   */
  sharedCheckpoint(): { file: Buffer; params: Uint8Array } {
    const { file, params } = this.shared;
    return { file, params: new Uint8Array(params.buffer, params.byteOffset, params.byteLength) };
  }

  /**
   * Replaces the state with a fetched shared checkpoint, after checking that its parameters hash
   * to `expectedHash` and fit this run's model. Throws (state unchanged) otherwise.
   */
  adopt(bytes: Uint8Array, expectedHash: Uint8Array): void {
    const checkpoint = decodeCheckpoint(bytes);
    const params = checkpoint.sections.get('params')!;
    if (params.length !== this.layout.size) throw new Error(`checkpoint has ${params.length} parameters, this run's model ${this.layout.size}`);
    const hash = modelHash(this.layout, params);
    if (!hash.equals(expectedHash)) throw new Error(`checkpoint parameters hash to ${hash.toString('hex').slice(0, 16)}…, expected ${Buffer.from(expectedHash).toString('hex').slice(0, 16)}…`);
    if (checkpoint.meta.runId !== this.runId) throw new Error(`checkpoint is of run ${JSON.stringify(checkpoint.meta.runId)}, this is ${this.runId}`);
    const round = checkpoint.meta.round;
    if (typeof round !== 'string' || !/^\d+$/.test(round)) throw new Error('checkpoint has no round');
    const momentum = checkpoint.sections.get('momentum') ?? new Float32Array(0);
    if (momentum.length !== this.outer.momentum.length) throw new Error(`checkpoint momentum has ${momentum.length} values, expected ${this.outer.momentum.length}`);
    this.shared = this.newFile(BigInt(round), (p, m) => {
      p.set(params);
      m.set(momentum);
    });
    this.outer.momentum = this.shared.momentum;
    this.round = BigInt(round);
    this.hash = hash;
  }

  /** Writes the local checkpoint atomically into `dir`. */
  async save(dir: string, extras: LocalExtras): Promise<void> {
    await mkdir(dir, { recursive: true });
    const checkpoint = this.checkpoint(this.round, this.shared.params, this.shared.momentum);
    checkpoint.sections.set('error_feedback', extras.errorFeedback);
    checkpoint.meta.reputation = extras.reputation;
    await saveCheckpoint(join(dir, LOCAL_CHECKPOINT), checkpoint);
  }

  /** Resumes from the local checkpoint in `dir`, or returns undefined when there is none. */
  static async load(dir: string, runId: string, model: ModelConfig, outer: OuterConfig): Promise<{ state: ModelState; extras: LocalExtras } | undefined> {
    let bytes: Buffer;
    try {
      bytes = await readFile(join(dir, LOCAL_CHECKPOINT));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    const checkpoint = decodeCheckpoint(bytes);
    const layout = layoutOf(modelParamSpecs(model));
    const params = checkpoint.sections.get('params')!;
    if (params.length !== layout.size) throw new Error(`local checkpoint has ${params.length} parameters, this run's model ${layout.size}`);
    if (checkpoint.meta.runId !== runId) throw new Error(`local checkpoint is of run ${JSON.stringify(checkpoint.meta.runId)}, this is ${runId}`);
    const round = checkpoint.meta.round;
    if (typeof round !== 'string' || !/^\d+$/.test(round)) throw new Error('local checkpoint has no round');
    const state = new ModelState(runId, BigInt(round), params, checkpoint.sections.get('momentum'), outer, layout);
    const errorFeedback = checkpoint.sections.get('error_feedback') ?? new Float32Array(layout.size);
    if (errorFeedback.length !== layout.size) throw new Error(`local checkpoint's error feedback has ${errorFeedback.length} values, the model ${layout.size}`);
    return { state, extras: { errorFeedback, reputation: (checkpoint.meta.reputation ?? []) as PeerReputation[] } };
  }

  /**
   * A new shared file for `round`, laid out as encodeCheckpoint lays it out, its params and
   * momentum sections filled by `fill` through views into it.
   */
  private newFile(round: bigint, fill: (params: Float32Array, momentum: Float32Array) => void): SharedFile {
    const size = this.layout.size;
    const momentumLength = this.outer.momentum.length;
    const head = this.head(round);
    // A fresh ArrayBuffer: offset 0, so the section views are 4-byte aligned (head is a multiple of 64).
    const file = Buffer.from(new ArrayBuffer(head.length + 4 * (size + momentumLength)));
    file.set(head, 0);
    const params = new Float32Array(file.buffer, head.length, size);
    const momentum = new Float32Array(file.buffer, head.length + 4 * size, momentumLength);
    fill(params, momentum);
    return { file, params, momentum };
  }

  /** The bytes of the shared file before its sections: magic, header length, header, padding. */
  private head(round: bigint): Buffer {
    const sections = [{ name: 'params', length: this.layout.size }];
    if (this.outer.momentum.length > 0) sections.push({ name: 'momentum', length: this.outer.momentum.length });
    return Buffer.concat(encodeCheckpointHead(this.layout, sections, this.meta(round)));
  }

  private checkpoint(round: bigint, params: Float32Array, momentum: Float32Array): Checkpoint {
    const sections = new Map<string, Float32Array>([['params', params]]);
    if (momentum.length > 0) sections.set('momentum', momentum);
    return { layout: this.layout, sections, meta: this.meta(round) };
  }

  /** 20 digits, zero-padded: the header keeps its length from round to round (see the top). */
  private meta(round: bigint): Record<string, unknown> {
    return { runId: this.runId, round: round.toString().padStart(20, '0') };
  }
}
