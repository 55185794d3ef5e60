import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** Metrics of the controller manager (controller-runtime's, with Concord's prefix). */
export interface OperatorMetrics {
  readonly reconciles: Counter<'controller' | 'result'>;
  readonly reconcileDuration: Histogram<'controller'>;
  readonly queueDepth: Gauge<'controller'>;
  readonly leader: Gauge;
}

export const RECONCILE_RESULTS = ['success', 'error', 'requeue'] as const;

export function createOperatorMetrics(registry: Registry, controllers: readonly string[]): OperatorMetrics {
  const reconciles = new Counter({
    name: 'concord_reconcile_total',
    help: 'Reconciles by controller and result (success, error: retried with backoff, requeue: checked again later).',
    labelNames: ['controller', 'result'] as const,
    registers: [registry],
  });
  const reconcileDuration = new Histogram({
    name: 'concord_reconcile_duration_seconds',
    help: 'Time of one reconcile, by controller.',
    labelNames: ['controller'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const queueDepth = new Gauge({
    name: 'concord_workqueue_depth',
    help: 'Keys waiting in a controller\'s work queue.',
    labelNames: ['controller'] as const,
    registers: [registry],
  });
  const leader = new Gauge({ name: 'concord_leader', help: '1 while this operator instance holds the leader lease.', registers: [registry] });
  for (const controller of controllers) {
    for (const result of RECONCILE_RESULTS) reconciles.inc({ controller, result }, 0);
    queueDepth.set({ controller }, 0);
  }
  leader.set(0);
  return { reconciles, reconcileDuration, queueDepth, leader };
}
