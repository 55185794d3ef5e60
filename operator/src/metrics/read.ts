import type { Registry } from 'prom-client';

/** The non-zero values of a labelled counter, by one label: for logs and reports. */
export async function countsOf(registry: Registry, metric: string, label: string): Promise<Record<string, number>> {
  const found = registry.getSingleMetric(metric);
  if (found === undefined) throw new Error(`no metric ${metric} in this registry`);
  const { values } = await found.get();
  return Object.fromEntries(values.filter((v) => v.value > 0).map((v) => [String(v.labels[label]), v.value]));
}
