import { status } from '@grpc/grpc-js';
import { RpcError } from '../../../proto/grpc/index.js';

/**
 * Why a message from another cluster was refused. Every refusal names one of these, travels
 * to the sender as a gRPC status plus the `concord-reason` trailer, and is counted in
 * `concord_rejected_messages_total{reason}`. The set is closed, so the metric's label is bounded.
 */
export const RefusalReason = {
  /** The key is not one of this run's Peers. */
  UnknownPeer: 'UnknownPeer',
  /** No such session or pending handshake (expired, or the receiver restarted): handshake again. */
  UnknownSession: 'UnknownSession',
  /** A signature does not verify over the bytes received. */
  BadSignature: 'BadSignature',
  /** The message is bound to another run. */
  WrongRun: 'WrongRun',
  /** The client trains on another dataset than this run's (its dataset hash differs). */
  WrongDataset: 'WrongDataset',
  /** The round is outside the receiver's window. */
  StaleRound: 'StaleRound',
  /** The sequence number, or the handshake, was already used. */
  Replay: 'Replay',
  /** A field or the whole message exceeds its limit. */
  TooLarge: 'TooLarge',
  /** It does not decode, or a field has the wrong shape. */
  Malformed: 'Malformed',
} as const;

export type RefusalReason = (typeof RefusalReason)[keyof typeof RefusalReason];

export const REFUSAL_REASONS: readonly RefusalReason[] = Object.values(RefusalReason);

const STATUS_OF: Record<RefusalReason, status> = {
  UnknownPeer: status.PERMISSION_DENIED,
  UnknownSession: status.UNAUTHENTICATED,
  BadSignature: status.UNAUTHENTICATED,
  WrongRun: status.FAILED_PRECONDITION,
  WrongDataset: status.FAILED_PRECONDITION,
  StaleRound: status.OUT_OF_RANGE,
  Replay: status.ALREADY_EXISTS,
  TooLarge: status.RESOURCE_EXHAUSTED,
  Malformed: status.INVALID_ARGUMENT,
};

export function isRefusalReason(value: unknown): value is RefusalReason {
  return typeof value === 'string' && Object.hasOwn(STATUS_OF, value);
}

/** A refused message: an RpcError whose reason is one of RefusalReason. */
export class Refusal extends RpcError {
  declare readonly reason: RefusalReason;

  constructor(reason: RefusalReason, message: string) {
    super(STATUS_OF[reason], message, reason);
    this.name = 'Refusal';
  }
}

/** Shorthand used by the checks: `throw refuse('Malformed', 'signature must be 64 bytes')`. */
export function refuse(reason: RefusalReason, message: string): Refusal {
  return new Refusal(reason, message);
}
