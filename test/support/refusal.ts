import { Refusal } from '../../operator/src/federation/refusal.js';

/** The reason a check refused with, or 'accepted' if it did not throw; other errors propagate. */
export function reasonOf(check: () => unknown): string {
  try {
    check();
  } catch (error) {
    if (error instanceof Refusal) return error.reason;
    throw error;
  }
  return 'accepted';
}
