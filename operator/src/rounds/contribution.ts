// Structural checks of one contribution: its signed header, then its payload. Pure functions:
// the coordinator fetches the bytes and calls these; nothing here does I/O.
import { createHash, type KeyObject } from 'node:crypto';
import type { Envelope } from '../../../proto/gen/concord/v1/envelope_pb.js';
import { ContributionHeaderSchema, type ContributionHeader } from '../../../proto/gen/concord/v1/federation_pb.js';
import { CodecError, decodePayload, type CodecParams, type SparseUpdate } from '../../../trainer/src/codec/index.js';
import { HEADER_BYTES, readHeader } from '../../../trainer/src/codec/format.js';
import { clip, envelopeSigningBytes, openEnvelope } from '../federation/envelope.js';
import { Limits } from '../federation/limits.js';
import { Refusal, type RefusalReason } from '../federation/refusal.js';
import { reject, RejectionReason, type Rejection } from './reasons.js';

export interface ExpectedContribution {
  /** The run this coordinator serves. */
  runId: string;
  /** The round being validated. */
  round: bigint;
  /** SHA-256 of this round's base parameters θ_r, as this coordinator holds them (32 bytes). */
  baseHash: Uint8Array;
  /** The signer's `maxContributionBytes`. */
  maxPayloadBytes: number | bigint;
  /** The verification key of a signer that is a Peer of the run, else undefined (PeerDirectory.keyFor). */
  keyFor: (signer: Buffer) => KeyObject | undefined;
  /**
   * Largest believable token count for one round (optional). Tokens are self-reported and weigh
   * the contribution in the aggregate (tokens × score), so a claim beyond what the fastest
   * hardware could process in the window is refused as TooLarge.
   */
  maxTokens?: bigint;
}

/** A contribution header whose signature verified. */
export interface SignedContribution {
  /** The statement as received: keep it, it is the evidence if the signer equivocates. */
  envelope: Envelope;
  /** The signer's raw Ed25519 public key (32 bytes). */
  signer: Buffer;
  header: ContributionHeader;
  /** statementHash(envelope): what the round's random-batch seed is derived from. */
  hash: Buffer;
}

export type HeaderCheck =
  | ({ ok: true } & SignedContribution)
  /**
   * `signed` is present when the signature verified and only a field of the header is wrong:
   * the signer is then accountable (reputation) and the statement still goes to the
   * EquivocationDetector, since a signed header for the round is a commitment whatever it says.
   */
  | (Rejection & { signed?: SignedContribution });

/**
 * Opens a contribution header statement (an envelope without a session, body
 * ContributionHeader) and checks what it says against the round being validated. Order, which
 * decides the reason: envelope shape, signer, signature, run (openEnvelope); then the header's
 * own fields: run and round as the envelope's, the round, hash lengths, payload size, tokens,
 * and last the base hash — so a replayed header of an old round is WrongRound, and StaleBase
 * means a well-formed header for this round from a peer that is out of sync.
 */
export function checkContributionHeader(envelope: Envelope | undefined, expected: ExpectedContribution): HeaderCheck {
  let opened;
  try {
    opened = openEnvelope(envelope, { kind: 'statement', runId: expected.runId, schema: ContributionHeaderSchema, keyFor: expected.keyFor });
  } catch (error) {
    if (error instanceof Refusal) return reject(FROM_REFUSAL[error.reason], error.message);
    throw error;
  }
  const { header: envelopeHeader, signer, body: header } = opened;
  const signed: SignedContribution = { envelope: envelope!, signer, header, hash: statementHash(envelope!) };
  // The body repeats run and round so that a stored statement stands alone; both copies are
  // signed, and a statement that contradicts itself is not evidence of anything.
  if (header.runId !== envelopeHeader.runId || header.round !== envelopeHeader.round) {
    return reject(RejectionReason.Malformed, `header says run "${clip(header.runId)}" round ${header.round}, its envelope run "${clip(envelopeHeader.runId)}" round ${envelopeHeader.round}`);
  }
  const fail = (reason: RejectionReason, detail: string): HeaderCheck => ({ ...reject(reason, detail), signed });
  if (header.round !== expected.round) return fail(RejectionReason.WrongRound, `header is for round ${header.round}, this is round ${expected.round}`);
  if (header.baseHash.length !== Limits.hashBytes) return fail(RejectionReason.Malformed, `base hash must be ${Limits.hashBytes} bytes, got ${header.baseHash.length}`);
  if (header.payloadHash.length !== Limits.hashBytes) return fail(RejectionReason.Malformed, `payload hash must be ${Limits.hashBytes} bytes, got ${header.payloadHash.length}`);
  if (header.payloadBytes > BigInt(expected.maxPayloadBytes)) return fail(RejectionReason.TooLarge, `payload of ${header.payloadBytes} bytes exceeds the limit of ${expected.maxPayloadBytes}`);
  // Every payload starts with its fixed-size header; fewer bytes cannot decode.
  if (header.payloadBytes < BigInt(HEADER_BYTES)) return fail(RejectionReason.Malformed, `payload of ${header.payloadBytes} bytes is shorter than the ${HEADER_BYTES}-byte payload header`);
  if (expected.maxTokens !== undefined && header.tokens > expected.maxTokens) return fail(RejectionReason.TooLarge, `claims ${header.tokens} tokens, at most ${expected.maxTokens} are believable in one round`);
  if (!Buffer.from(header.baseHash).equals(expected.baseHash)) {
    return fail(RejectionReason.StaleBase, `computed from base ${hex8(header.baseHash)}…, this round's base is ${hex8(expected.baseHash)}…`);
  }
  return { ok: true, ...signed };
}

// openEnvelope's refusals, as contribution reasons. StaleRound cannot happen (no checkRound is
// passed: the round is checked here, from the signed body), nor can the session reasons
// (statements have no session) or the handshake's dataset check; they map to Malformed to keep
// the function total.
const FROM_REFUSAL: Readonly<Record<RefusalReason, RejectionReason>> = {
  UnknownPeer: RejectionReason.UnknownPeer,
  BadSignature: RejectionReason.BadSignature,
  WrongRun: RejectionReason.WrongRun,
  StaleRound: RejectionReason.WrongRound,
  TooLarge: RejectionReason.TooLarge,
  Malformed: RejectionReason.Malformed,
  UnknownSession: RejectionReason.Malformed,
  Replay: RejectionReason.Malformed,
  WrongDataset: RejectionReason.Malformed,
};

/**
 * The identity of a statement: SHA-256 of the bytes its signature covers (domain, header, body).
 * The signature itself is left out, so the hash names what was said, not one encoding of the
 * signature.
 */
export function statementHash(envelope: Envelope): Buffer {
  return createHash('sha256').update(envelopeSigningBytes(envelope.header, envelope.body)).digest();
}

export type PayloadCheck = { ok: true; update: SparseUpdate; norm: number } | Rejection;

/**
 * Checks a fetched payload against its verified header, then decodes it. The hash comes first:
 * until it matches, the bytes may be a relay's, and nothing about them can be blamed on the
 * signer (BadSignature). After it matches, every problem is one the signer signed.
 *
 * `bytes`: the payload as assembled by the fetcher, which stops at the header's payload_bytes
 * (itself at most maxPayloadBytes), so hashing it first costs no more than the limit allows.
 *
 * `codec`: the run's compression parameters; when given, a payload made with others (e.g.
 * k = chunk, a dense update, or a sparser one) is Malformed.
 */
export function checkPayload(header: ContributionHeader, bytes: Uint8Array, modelLength: number, codec?: CodecParams): PayloadCheck {
  const digest = createHash('sha256').update(bytes).digest();
  if (!digest.equals(header.payloadHash)) {
    return reject(RejectionReason.BadSignature, `payload SHA-256 ${hex8(digest)}… is not the signed ${hex8(header.payloadHash)}…`);
  }
  if (BigInt(bytes.length) !== header.payloadBytes) {
    return reject(bytes.length > header.payloadBytes ? RejectionReason.TooLarge : RejectionReason.Malformed, `payload is ${bytes.length} bytes, its header says ${header.payloadBytes}`);
  }
  let update: SparseUpdate;
  try {
    if (codec !== undefined) {
      const params = readHeader(bytes, modelLength);
      if (params.chunk !== codec.chunk || params.k !== codec.k || params.bits !== codec.bits) {
        return reject(RejectionReason.Malformed, `payload uses chunk ${params.chunk}, k ${params.k}, ${params.bits} bits; the run uses chunk ${codec.chunk}, k ${codec.k}, ${codec.bits} bits`);
      }
    }
    update = decodePayload(bytes, modelLength);
  } catch (error) {
    if (error instanceof CodecError) return reject(RejectionReason.Malformed, `payload does not decode: ${error.message}`);
    throw error;
  }
  return checkUpdate(update, modelLength);
}

/**
 * Checks a decoded update: shape (length, ascending in-range indices) and finite values, and
 * computes its L2 norm (float64, in index order, as trainer/src/outer/aggregate.ts does).
 * The version-1 decoder already guarantees all of this (its scales are checked finite, its
 * indices strictly increasing); the check is cheap and keeps the guarantee where the values are
 * trusted, should another decoder or format version produce the update.
 */
export function checkUpdate(update: SparseUpdate, modelLength: number): PayloadCheck {
  const { indices, values } = update;
  if (update.length !== modelLength) return reject(RejectionReason.Malformed, `update has ${update.length} values, the model ${modelLength}`);
  if (indices.length !== values.length) return reject(RejectionReason.Malformed, `update has ${indices.length} indices and ${values.length} values`);
  let sum = 0;
  let previous = -1;
  for (let j = 0; j < indices.length; j++) {
    const index = indices[j]!;
    if (index <= previous || index >= modelLength) return reject(RejectionReason.Malformed, `index ${index} at position ${j} is out of order or beyond ${modelLength}`);
    previous = index;
    const value = values[j]!;
    if (!Number.isFinite(value)) return reject(RejectionReason.NonFinite, `value at index ${index} is ${value}`);
    sum += value * value;
  }
  return { ok: true, update, norm: Math.sqrt(sum) };
}

function hex8(bytes: Uint8Array): string {
  return Buffer.from(bytes.subarray(0, 8)).toString('hex');
}
