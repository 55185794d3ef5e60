// Small helpers over @kubernetes/client-node: server-side apply with the operator's field owner,
// the "does the live object already hold what we want" test that saves needless applies, and
// the HTTP status of an API error.
import { KubernetesObjectApi, PatchStrategy, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';

/** The HTTP status of a client-node ApiException (404, 409, …), if the error is one. */
export function statusOf(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

export class Applier {
  private readonly objects: KubernetesObjectApi;

  constructor(config: KubeConfig, private readonly fieldManager: string) {
    this.objects = KubernetesObjectApi.makeApiClient(config);
  }

  /**
   * Server-side apply: the API server merges `desired` into the live object, owning exactly the
   * fields `desired` sets for this field manager (force: the operator's fields are the operator's,
   * whoever edited them since; that is how drift is corrected).
   */
  async apply<T extends KubernetesObject>(desired: T): Promise<T> {
    return this.objects.patch(desired, undefined, undefined, this.fieldManager, true, PatchStrategy.ServerSideApply);
  }

  /** Deletes the object; one that is already gone is fine. */
  async delete(object: KubernetesObject): Promise<void> {
    try {
      await this.objects.delete(object, undefined, undefined, undefined, undefined, 'Background');
    } catch (error) {
      if (statusOf(error) !== 404) throw error;
    }
  }
}

/**
 * Whether `live` already holds every field of `desired` (arrays element by element, objects key
 * by key; fields only `live` has are the API server's defaults or other owners' and don't count).
 * Quantities and ports the API server normalises ("1000m" → "1") make this answer false, which
 * only costs an apply that changes nothing.
 */
export function holds(live: unknown, desired: unknown): boolean {
  if (desired === undefined) return true;
  if (desired === null || typeof desired !== 'object') {
    if (live instanceof Date && typeof desired === 'string') return live.toISOString() === new Date(desired).toISOString();
    return live === desired;
  }
  if (Array.isArray(desired)) {
    return Array.isArray(live) && live.length === desired.length && desired.every((item, i) => holds(live[i], item));
  }
  if (live === null || typeof live !== 'object' || Array.isArray(live)) return false;
  const record = live as Record<string, unknown>;
  return Object.entries(desired as Record<string, unknown>).every(([key, value]) => holds(record[key], value));
}

/** JSON with sorted keys: two values that differ only in key order are equal. */
export function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (v !== null && typeof v === 'object' && !Array.isArray(v)
    ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)))
    : v));
}
