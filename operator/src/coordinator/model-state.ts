// What a coordinator holds between rounds: the model θ_r, the outer optimizer's momentum, the
// round number — equal on every honest cluster — and its own error-feedback buffer and view of
// its peers, which are not. Two checkpoint files come out of it:
//   - the shared checkpoint (params, momentum, round): what any peer may fetch by model hash to
//     resync or join late. Its bytes depend only on the agreed state, so every honest donor
//     serves the same file and a transfer can resume from another donor at the same offset;
//   - the local checkpoint on the run's volume: the shared state plus error feedback and
//     reputation, from which a restarted coordinator resumes.
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeCheckpoint, encodeCheckpoint, modelHash, saveCheckpoint, type Checkpoint } from '../../../trainer/src/checkpoint.js';
import { gptParamSpecs, initGptParams } from '../../../trainer/src/model/gpt.js';
import { OuterOptimizer, type OuterConfig } from '../../../trainer/src/outer/optimizer.js';
import { layoutOf, type ParamLayout } from '../../../trainer/src/params.js';
import type { GptConfig } from '../../../trainer/src/model/config.js';
import type { PeerReputation } from '../rounds/reputation.js';

export const LOCAL_CHECKPOINT = 'coordinator.ckpt';

export interface LocalExtras {
  errorFeedback: Float32Array;
  reputation: PeerReputation[];
}

export class ModelState {
  readonly layout: ParamLayout;
  /** SHA-256 model hash of `params` (checkpoint.ts), the base hash contributions name. */
  hash: Buffer;

  private constructor(
    readonly runId: string,
    /** The round these parameters are the base of. */
    public round: bigint,
    public params: Float32Array,
    readonly outer: OuterOptimizer,
    layout: ParamLayout,
  ) {
    this.layout = layout;
    this.hash = modelHash(layout, params);
  }

  /** Round 0: the initial parameters from the run's seed, the same at every peer. */
  static initial(runId: string, model: GptConfig, outer: OuterConfig, runSeed: bigint): ModelState {
    const layout = layoutOf(gptParamSpecs(model));
    const params = initGptParams(model, runSeed.toString());
    return new ModelState(runId, 0n, params, new OuterOptimizer(layout.size, outer), layout);
  }

  /** Takes the outer step with the round's aggregate: θ_{r+1}, and the round moves on. */
  step(aggregate: Float32Array | undefined): void {
    if (aggregate !== undefined) this.outer.step(this.params, aggregate);
    this.round++;
    this.hash = modelHash(this.layout, this.params);
  }

  /**
   * The shared checkpoint file (see the top of this file), and a view of its parameter bytes:
   * what the cluster's trainers fetch as the round's base, without a second copy.
   */
  sharedCheckpoint(): { file: Buffer; params: Uint8Array } {
    const parts = encodeCheckpoint(this.checkpoint());
    const offset = parts[0]!.length + parts[1]!.length + parts[2]!.length;
    const file = Buffer.concat(parts);
    return { file, params: file.subarray(offset, offset + 4 * this.layout.size) };
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
    this.params = params;
    this.outer.momentum.set(momentum);
    this.round = BigInt(round);
    this.hash = hash;
  }

  /** Writes the local checkpoint atomically into `dir`. */
  async save(dir: string, extras: LocalExtras): Promise<void> {
    await mkdir(dir, { recursive: true });
    const checkpoint = this.checkpoint();
    checkpoint.sections.set('error_feedback', extras.errorFeedback);
    checkpoint.meta.reputation = extras.reputation;
    await saveCheckpoint(join(dir, LOCAL_CHECKPOINT), checkpoint);
  }

  /** Resumes from the local checkpoint in `dir`, or returns undefined when there is none. */
  static async load(dir: string, runId: string, model: GptConfig, outer: OuterConfig): Promise<{ state: ModelState; extras: LocalExtras } | undefined> {
    let bytes: Buffer;
    try {
      bytes = await readFile(join(dir, LOCAL_CHECKPOINT));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    const state = ModelState.initial(runId, model, outer, 0n);
    state.adopt(bytes, modelHash(state.layout, decodeCheckpoint(bytes).sections.get('params')!));
    const checkpoint = decodeCheckpoint(bytes);
    const errorFeedback = checkpoint.sections.get('error_feedback') ?? new Float32Array(state.layout.size);
    if (errorFeedback.length !== state.layout.size) throw new Error(`local checkpoint's error feedback has ${errorFeedback.length} values, the model ${state.layout.size}`);
    return { state, extras: { errorFeedback, reputation: (checkpoint.meta.reputation ?? []) as PeerReputation[] } };
  }

  private checkpoint(): Checkpoint {
    const sections = new Map<string, Float32Array>([['params', this.params]]);
    if (this.outer.momentum.length > 0) sections.set('momentum', this.outer.momentum);
    return { layout: this.layout, sections, meta: { runId: this.runId, round: this.round.toString() } };
  }
}
