import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { REJECTION_REASONS } from '../rounds/reasons.js';

/** The phases of an outer round (DESIGN.md), a closed set for the `phase` label. */
export const ROUND_PHASES = ['train', 'contribute', 'gather', 'validate', 'agree', 'apply'] as const;
export type RoundPhase = (typeof ROUND_PHASES)[number];

/**
 * Metrics of a coordinator's outer rounds. Labels are bounded: phases and rejection reasons are
 * closed sets, and `peer` takes only the names of the run's configured Peers.
 */
export interface RoundMetrics {
  readonly rounds: Counter;
  readonly phaseDuration: Histogram<'phase'>;
  readonly contributionsAccepted: Counter;
  readonly contributionsRejected: Counter<'reason'>;
  readonly reputation: Gauge<'peer'>;
  readonly loss: Gauge;
  readonly tokens: Counter;
  readonly compressionRatio: Gauge;
  /** 1 when this coordinator's model hash after the last round is the majority's, else 0. */
  readonly modelHashAgreement: Gauge;
  readonly round: Gauge;
}

export function createRoundMetrics(registry: Registry): RoundMetrics {
  const registers = [registry];
  const contributionsRejected = new Counter({
    name: 'concord_contributions_rejected_total', help: 'Contributions not accepted in a round, by reason.', labelNames: ['reason'] as const, registers,
  });
  // Every reason from the start at 0, so dashboards and alerts see the series before it happens.
  for (const reason of REJECTION_REASONS) contributionsRejected.inc({ reason }, 0);
  const phaseDuration = new Histogram({
    name: 'concord_round_phase_duration_seconds', help: 'Wall time of each phase of an outer round.', labelNames: ['phase'] as const, registers,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900],
  });
  for (const phase of ROUND_PHASES) phaseDuration.zero({ phase });
  return {
    rounds: new Counter({ name: 'concord_rounds_total', help: 'Outer rounds completed.', registers }),
    phaseDuration,
    contributionsAccepted: new Counter({ name: 'concord_contributions_accepted_total', help: 'Contributions applied in agreed rounds.', registers }),
    contributionsRejected,
    reputation: new Gauge({ name: 'concord_peer_reputation', help: 'Reputation of each configured peer (EMA of its scores, 0 to 1).', labelNames: ['peer'] as const, registers }),
    loss: new Gauge({ name: 'concord_loss', help: 'Validation loss of the model after the last round, in nats per token.', registers }),
    tokens: new Counter({ name: 'concord_tokens_total', help: 'Tokens this cluster trained on.', registers }),
    compressionRatio: new Gauge({ name: 'concord_compression_ratio', help: 'Size of the last pseudo-gradient as float32 over its compressed payload.', registers }),
    modelHashAgreement: new Gauge({ name: 'concord_model_hash_agreement', help: "1 when the model hash after the last round is the majority's, else 0.", registers }),
    round: new Gauge({ name: 'concord_round', help: 'The current outer round.', registers }),
  };
}
