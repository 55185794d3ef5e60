/** Learning rate schedule of the inner optimizer: linear warmup, then cosine decay to a floor. */
export interface ScheduleConfig {
  /** Peak learning rate. */
  lr: number;
  warmupSteps: number;
  /** Steps over which the cosine runs from lr down to lr·minLrRatio; constant after. */
  decaySteps: number;
  minLrRatio: number;
}

export function learningRate(step: number, config: ScheduleConfig): number {
  const { lr, warmupSteps, decaySteps, minLrRatio } = config;
  if (step < warmupSteps) return (lr * (step + 1)) / warmupSteps;
  const progress = Math.min(1, (step - warmupSteps) / Math.max(1, decaySteps - warmupSteps));
  const floor = lr * minLrRatio;
  return floor + (lr - floor) * 0.5 * (1 + Math.cos(Math.PI * progress));
}
