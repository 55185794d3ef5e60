import { Counter, type Registry } from 'prom-client';
import { REFUSAL_REASONS, type RefusalReason } from '../federation/refusal.js';

/** Metrics of the federation endpoint (coordinator ↔ coordinator). */
export interface FederationMetrics {
  /** Messages refused, by reason; counted by whichever side refused them (server or client). */
  readonly rejectedMessages: Counter<'reason'>;
  /** Handshakes by the side this coordinator played and how they ended. */
  readonly handshakes: Counter<'role' | 'result'>;
  /** Payload bytes streamed to and from peers. */
  readonly payloadBytes: Counter<'direction'>;
}

export function createFederationMetrics(registry: Registry): FederationMetrics {
  const rejectedMessages = new Counter({
    name: 'concord_rejected_messages_total',
    help: 'Messages from other clusters refused, by reason.',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  // Every reason is exported from the start (at 0), so a dashboard or alert sees the series
  // before the first refusal.
  for (const reason of REFUSAL_REASONS) rejectedMessages.inc({ reason }, 0);
  const handshakes = new Counter({
    name: 'concord_handshakes_total',
    help: 'Federation handshakes, by the role this coordinator played (client or server) and result (ok, refused, or failed in transport).',
    labelNames: ['role', 'result'] as const,
    registers: [registry],
  });
  const payloadBytes = new Counter({
    name: 'concord_payload_bytes_total',
    help: 'Contribution and checkpoint payload bytes streamed between clusters, by direction (sent or received).',
    labelNames: ['direction'] as const,
    registers: [registry],
  });
  return { rejectedMessages, handshakes, payloadBytes };
}

export function countRefusal(metrics: FederationMetrics, reason: RefusalReason): void {
  metrics.rejectedMessages.inc({ reason });
}
