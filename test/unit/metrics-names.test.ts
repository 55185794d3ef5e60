import { describe, expect, it } from '@jest/globals';
import { Registry } from 'prom-client';
import { createFederationMetrics } from '../../operator/src/metrics/federation.js';
import { createRoundMetrics, ROUND_PHASES } from '../../operator/src/metrics/rounds.js';
import { REJECTION_REASONS } from '../../operator/src/rounds/reasons.js';

// The project's metric rules: prefix concord_, base units, counters end in _total, and only
// labels whose values come from closed sets (or the configured peers).
const BOUNDED_LABELS = new Set(['reason', 'role', 'result', 'direction', 'phase', 'peer']);

describe('metric names and labels', () => {
  const registry = new Registry();
  createFederationMetrics(registry);
  const rounds = createRoundMetrics(registry);

  it('follow the naming rules', async () => {
    const metrics = await registry.getMetricsAsJSON();
    expect(metrics.length).toBeGreaterThan(10);
    for (const metric of metrics) {
      expect(metric.name).toMatch(/^concord_[a-z0-9_]+$/);
      const type = String(metric.type);
      if (type === 'counter') expect(metric.name).toMatch(/_total$/);
      else expect(metric.name).not.toMatch(/_total$/);
      if (type === 'histogram') expect(metric.name).toMatch(/_(seconds|bytes)$/);
      expect(metric.name).not.toMatch(/_(ms|milliseconds|kb|mb|minutes)(_|$)/);
      for (const value of metric.values) for (const label of Object.keys(value.labels)) {
        if (label === 'le') continue; // histogram buckets
        expect(BOUNDED_LABELS.has(label)).toBe(true);
      }
    }
  });

  it('export every rejection reason and round phase from the start, at zero', async () => {
    const text = await registry.metrics();
    for (const reason of REJECTION_REASONS) expect(text).toContain(`concord_contributions_rejected_total{reason="${reason}"} 0`);
    for (const phase of ROUND_PHASES) expect(text).toContain(`concord_round_phase_duration_seconds_count{phase="${phase}"} 0`);
    rounds.contributionsRejected.inc({ reason: 'NearCopy' });
    expect(await registry.metrics()).toContain('concord_contributions_rejected_total{reason="NearCopy"} 1');
  });
});
