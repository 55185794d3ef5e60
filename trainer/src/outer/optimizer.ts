/**
 * The outer optimizer: applies the round's aggregated pseudo-gradient g (θ_base − θ_local
 * direction, so a descent direction is −g) to the base parameters.
 *
 *   nesterov (DiLoCo; lr 0.7, momentum 0.9):  m ← μ·m + g;  θ ← θ − lr·(g + μ·m)
 *   sgd (Templar; lr 1.0):                    θ ← θ − lr·g   (lr 1 lands on the averaged local model)
 *
 * Each element is computed in float64 and rounded to float32, in index order: deterministic.
 */
export type OuterConfig = { kind: 'nesterov'; lr: number; momentum: number } | { kind: 'sgd'; lr: number };

export const DILOCO_OUTER: OuterConfig = { kind: 'nesterov', lr: 0.7, momentum: 0.9 };
export const TEMPLAR_OUTER: OuterConfig = { kind: 'sgd', lr: 1.0 };

export class OuterOptimizer {
  /** Momentum buffer (empty for sgd); part of a checkpoint. The owner may point it at other memory of the same length. */
  momentum: Float32Array;

  constructor(readonly length: number, readonly config: OuterConfig) {
    if (!(config.lr > 0 && Number.isFinite(config.lr))) throw new Error(`outer.lr must be a positive number, got ${config.lr}`);
    if (config.kind === 'nesterov' && !(config.momentum >= 0 && config.momentum < 1)) {
      throw new Error(`outer.momentum must be in [0, 1), got ${config.momentum}`);
    }
    this.momentum = new Float32Array(config.kind === 'nesterov' ? length : 0);
  }

  /** Updates `params` in place with the pseudo-gradient `g`. */
  step(params: Float32Array, g: Float32Array): void {
    if (params.length !== this.length || g.length !== this.length) throw new Error(`outer step needs ${this.length} values, got params ${params.length} and g ${g.length}`);
    const { lr } = this.config;
    if (this.config.kind === 'sgd') {
      for (let i = 0; i < params.length; i++) params[i] = params[i]! - lr * g[i]!;
      return;
    }
    const mu = this.config.momentum;
    const m = this.momentum;
    for (let i = 0; i < params.length; i++) {
      const next = Math.fround(mu * m[i]! + g[i]!);
      m[i] = next;
      params[i] = params[i]! - lr * (g[i]! + mu * next);
    }
  }
}
