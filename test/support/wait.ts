// The one wait helper of the tests: poll a condition until it holds, or bound a promise, each with
// a deadline from test/support/deadlines.ts and a message naming what was waited for.
export { waitFor } from '../../scripts/kube/cluster.js';

/** Resolves as `promise` does, or rejects after `timeoutMs` naming what it waited for. */
export async function withDeadline<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}
