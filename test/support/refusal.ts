import { Refusal } from '../../operator/src/federation/refusal.js';
import { RpcError } from '../../proto/grpc/index.js';

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

/** Awaits a call that must fail and returns the RpcError the real client saw. */
export async function refusal(call: Promise<unknown>): Promise<RpcError> {
  try {
    await call;
  } catch (error) {
    if (error instanceof RpcError) return error;
    throw error;
  }
  throw new Error('the call was accepted');
}
