import type { ParamLayout } from '../params.js';
import { AdamWKernel } from './adamw-kernel.js';

export interface AdamWConfig {
  beta1: number;
  beta2: number;
  eps: number;
  /** Decoupled weight decay, applied to the tensors `decays` selects. */
  weightDecay: number;
  /** Global gradient norm above which gradients are scaled down to it; 0 turns clipping off. */
  gradClip: number;
}

export const DEFAULT_ADAMW: AdamWConfig = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, gradClip: 1.0 };

/**
 * AdamW over the flat parameter vector (the inner optimizer of a trainer). Moments are float32
 * like the parameters, and so is the update, four elements at a time (adamw-kernel.ts: the same
 * bits on every machine), and the gradient norm for clipping (four float32 lanes per chunk of 16K
 * values, the chunks' sums added in float64 in index order). Decay is decoupled (Loshchilov &
 * Hutter) and applies per tensor.
 */
export class AdamW {
  readonly m: Float32Array;
  readonly v: Float32Array;
  /** Steps taken so far (the bias corrections use it). */
  step = 0;
  /** [start, end, decayed] runs covering the vector: tensors side by side with the same decay merged. */
  private readonly runs: Array<[number, number, boolean]> = [];
  private readonly kernel = new AdamWKernel();

  /** `state` lets the moments live in memory the caller owns (e.g. shared with a worker). */
  constructor(
    private readonly layout: ParamLayout, decays: (name: string) => boolean, readonly config: AdamWConfig = DEFAULT_ADAMW,
    state?: { m: Float32Array; v: Float32Array; step: number },
  ) {
    this.m = state?.m ?? new Float32Array(layout.size);
    this.v = state?.v ?? new Float32Array(layout.size);
    this.step = state?.step ?? 0;
    if (this.m.length !== layout.size || this.v.length !== layout.size) throw new Error(`AdamW state must hold ${layout.size} values`);
    for (const t of layout.tensors) {
      const last = this.runs.at(-1);
      const decayed = decays(t.name);
      if (last !== undefined && last[1] === t.offset && last[2] === decayed) last[1] = t.offset + t.size;
      else this.runs.push([t.offset, t.offset + t.size, decayed]);
    }
  }

  /** One update of `params` in place; returns the gradient norm before clipping. */
  update(params: Float32Array, grads: Float32Array, lr: number): number {
    const size = this.layout.size;
    if (params.length !== size || grads.length !== size) throw new Error(`AdamW needs ${size} values, got params ${params.length} and grads ${grads.length}`);
    const { beta1, beta2, eps, weightDecay, gradClip } = this.config;
    const norm = Math.sqrt(this.kernel.squaredNorm(grads));
    if (!Number.isFinite(norm)) throw new Error(`gradient norm is ${norm}: the step diverged`);
    const scale = gradClip > 0 && norm > gradClip ? gradClip / norm : 1;
    this.step++;
    const step = { scale, beta1, beta2, eps, stepSize: lr / (1 - beta1 ** this.step), invSqrtC2: 1 / Math.sqrt(1 - beta2 ** this.step) };
    // Decay scales θ before the step: θ ← θ·(1 − lr·wd) − lr·m̂ / (√v̂ + ε).
    const keep = 1 - lr * weightDecay;
    const arrays = { params, grads, m: this.m, v: this.v };
    for (const [start, end, decayed] of this.runs) this.kernel.update(arrays, start, end, decayed ? keep : 1, step);
    return norm;
  }
}
