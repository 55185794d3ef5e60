import type { ParamLayout } from '../params.js';

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
 * like the parameters; each element is computed in float64 and stored once, in index order, so
 * a step is deterministic. Decay is decoupled (Loshchilov & Hutter) and applies per tensor.
 */
export class AdamW {
  readonly m: Float32Array;
  readonly v: Float32Array;
  /** Steps taken so far (the bias corrections use it). */
  step = 0;
  private readonly decayRanges: Array<[number, number]>;

  /** `state` lets the moments live in memory the caller owns (e.g. shared with a worker). */
  constructor(
    private readonly layout: ParamLayout, decays: (name: string) => boolean, readonly config: AdamWConfig = DEFAULT_ADAMW,
    state?: { m: Float32Array; v: Float32Array; step: number },
  ) {
    this.m = state?.m ?? new Float32Array(layout.size);
    this.v = state?.v ?? new Float32Array(layout.size);
    this.step = state?.step ?? 0;
    if (this.m.length !== layout.size || this.v.length !== layout.size) throw new Error(`AdamW state must hold ${layout.size} values`);
    this.decayRanges = layout.tensors.filter((t) => decays(t.name)).map((t) => [t.offset, t.offset + t.size]);
  }

  /** The global L2 norm of `grads`, summed in index order in float64. */
  static norm(grads: Float32Array): number {
    let sum = 0;
    for (let i = 0; i < grads.length; i++) sum += grads[i]! * grads[i]!;
    return Math.sqrt(sum);
  }

  /** One update of `params` in place; returns the gradient norm before clipping. */
  update(params: Float32Array, grads: Float32Array, lr: number): number {
    const size = this.layout.size;
    if (params.length !== size || grads.length !== size) throw new Error(`AdamW needs ${size} values, got params ${params.length} and grads ${grads.length}`);
    const { beta1, beta2, eps, weightDecay, gradClip } = this.config;
    const norm = AdamW.norm(grads);
    if (!Number.isFinite(norm)) throw new Error(`gradient norm is ${norm}: the step diverged`);
    const scale = gradClip > 0 && norm > gradClip ? gradClip / norm : 1;
    this.step++;
    const correction1 = 1 - beta1 ** this.step;
    const correction2 = 1 - beta2 ** this.step;
    const stepSize = lr / correction1;
    const m = this.m;
    const v = this.v;
    // Decay first, over the selected tensors: θ ← θ − lr·wd·θ.
    if (weightDecay > 0) {
      const keep = 1 - lr * weightDecay;
      for (const [start, end] of this.decayRanges) for (let i = start; i < end; i++) params[i] = params[i]! * keep;
    }
    for (let i = 0; i < size; i++) {
      const g = grads[i]! * scale;
      const mi = beta1 * m[i]! + (1 - beta1) * g;
      const vi = beta2 * v[i]! + (1 - beta2) * g * g;
      m[i] = mi;
      v[i] = vi;
      params[i] = params[i]! - (stepSize * mi) / (Math.sqrt(vi / correction2) + eps);
    }
    return norm;
  }
}
