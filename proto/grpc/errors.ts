import * as grpc from '@grpc/grpc-js';

/** Trailing-metadata key that carries a refusal's reason, next to the gRPC status code. */
export const REASON_METADATA_KEY = 'concord-reason';

/**
 * An RPC failure with a gRPC status code and, for refusals, a CamelCase reason that says why
 * (e.g. `BadSignature`). Thrown by handlers to refuse a call, and by clients when a call fails:
 * both ends see the same `code`, `reason` and message.
 */
export class RpcError extends Error {
  readonly code: grpc.status;
  readonly reason: string | undefined;

  constructor(code: grpc.status, message: string, reason?: string) {
    super(reason === undefined ? message : `${reason}: ${message}`);
    this.name = 'RpcError';
    this.code = code;
    this.reason = reason;
  }

  /** The status name, e.g. `PERMISSION_DENIED`. */
  get codeName(): string {
    return grpc.status[this.code] ?? String(this.code);
  }

  /** The message without the `Reason: ` prefix. */
  get detail(): string {
    return this.reason === undefined ? this.message : this.message.slice(this.reason.length + 2);
  }
}

/** Turns whatever a handler threw into the status sent to the client. */
export function toServiceStatus(error: unknown): Partial<grpc.StatusObject> {
  if (error instanceof RpcError) {
    const metadata = new grpc.Metadata();
    if (error.reason !== undefined) metadata.set(REASON_METADATA_KEY, error.reason);
    return { code: error.code, details: error.message, metadata };
  }
  // Anything else is a bug on this side: say so without leaking internals to a remote peer.
  return { code: grpc.status.INTERNAL, details: 'internal error', metadata: new grpc.Metadata() };
}

/** Maps a grpc-js client error to an RpcError with the server's reason, if it sent one. */
export function fromServiceError(error: unknown): RpcError {
  if (error instanceof RpcError) return error;
  const serviceError = error as Partial<grpc.ServiceError>;
  if (typeof serviceError.code !== 'number') {
    return new RpcError(grpc.status.UNKNOWN, error instanceof Error ? error.message : String(error));
  }
  const reasonValue = serviceError.metadata?.get(REASON_METADATA_KEY)[0];
  let reason = typeof reasonValue === 'string' ? reasonValue : undefined;
  // grpc-js itself refuses messages over the channel's size limit before any handler runs.
  if (reason === undefined && serviceError.code === grpc.status.RESOURCE_EXHAUSTED) reason = 'TooLarge';
  let details = serviceError.details ?? serviceError.message ?? '';
  if (reason !== undefined && details.startsWith(`${reason}: `)) details = details.slice(reason.length + 2);
  return new RpcError(serviceError.code, details, reason);
}
