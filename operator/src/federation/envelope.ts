import type { KeyObject } from 'node:crypto';
import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from '@bufbuild/protobuf';
import { EnvelopeHeaderSchema, EnvelopeSchema, type Envelope, type EnvelopeHeader } from '../../../proto/gen/concord/v1/envelope_pb.js';
import { signBytes, verifyBytes, type Identity } from './identity.js';
import { Limits } from './limits.js';
import { refuse } from './refusal.js';

const DOMAIN = Buffer.from('concord.v1.Envelope\0');

/**
 * The bytes an envelope's signature covers:
 * "concord.v1.Envelope" 0x00 || uint32be(len(header)) || header || body.
 * The length prefix keeps the header/body boundary unambiguous.
 */
export function envelopeSigningBytes(header: Uint8Array, body: Uint8Array): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(header.length);
  return Buffer.concat([DOMAIN, length, header, body]);
}

export interface SealOptions<Desc extends DescMessage> {
  runId: string;
  round: bigint;
  schema: Desc;
  body: MessageInitShape<Desc>;
  /** Session messages: the session id and this direction's next sequence number. */
  session?: { id: Uint8Array; sequence: bigint };
}

/** Encodes, binds and signs a message. Without `session` the result is a statement. */
export function sealEnvelope<Desc extends DescMessage>(identity: Identity, options: SealOptions<Desc>): Envelope {
  const header = toBinary(EnvelopeHeaderSchema, create(EnvelopeHeaderSchema, {
    runId: options.runId,
    round: options.round,
    signer: identity.publicKey,
    sessionId: options.session?.id ?? new Uint8Array(0),
    sequence: options.session?.sequence ?? 0n,
    bodyType: options.schema.typeName,
  }));
  const body = toBinary(options.schema, create(options.schema, options.body));
  return create(EnvelopeSchema, { header, body, signature: signBytes(identity, envelopeSigningBytes(header, body)) });
}

export type EnvelopeKind = 'session' | 'statement';

export interface OpenOptions<Desc extends DescMessage> {
  kind: EnvelopeKind;
  /** The run this receiver serves. */
  runId: string;
  /** The body type this call expects. */
  schema: Desc;
  /** The verification key for a signer, or undefined if the signer is not allowed. */
  keyFor: (signer: Buffer) => KeyObject | undefined;
  /** Why a round is not accepted now, or undefined if it is. */
  checkRound?: (round: bigint) => string | undefined;
  maxBodyBytes?: number;
}

export interface OpenedEnvelope<Desc extends DescMessage> {
  header: EnvelopeHeader;
  signer: Buffer;
  body: MessageShape<Desc>;
}

/**
 * Checks an envelope received from another cluster and decodes it. The order of the checks
 * decides which reason a bad message gets: shape and size, then the signer, then the signature
 * over the exact bytes received, and only then what the signed header says (run, body type,
 * round). Session and replay checks belong to the session table, which runs after this.
 */
export function openEnvelope<Desc extends DescMessage>(envelope: Envelope | undefined, options: OpenOptions<Desc>): OpenedEnvelope<Desc> {
  if (envelope === undefined) throw refuse('Malformed', 'envelope is missing');
  const maxBodyBytes = options.maxBodyBytes ?? Limits.bodyBytes;
  if (envelope.header.length > Limits.headerBytes) throw refuse('TooLarge', `envelope header of ${envelope.header.length} bytes exceeds ${Limits.headerBytes}`);
  if (envelope.body.length > maxBodyBytes) throw refuse('TooLarge', `envelope body of ${envelope.body.length} bytes exceeds ${maxBodyBytes}`);
  if (envelope.signature.length !== Limits.signatureBytes) throw refuse('Malformed', `signature must be ${Limits.signatureBytes} bytes, got ${envelope.signature.length}`);

  let header: EnvelopeHeader;
  try {
    header = fromBinary(EnvelopeHeaderSchema, envelope.header);
  } catch (error) {
    throw refuse('Malformed', `envelope header does not decode: ${(error as Error).message}`);
  }
  if (header.signer.length !== Limits.publicKeyBytes) throw refuse('Malformed', `signer must be a ${Limits.publicKeyBytes}-byte key, got ${header.signer.length} bytes`);
  const signer = Buffer.from(header.signer);
  const key = options.keyFor(signer);
  if (key === undefined) throw refuse('UnknownPeer', `signer ${signer.toString('base64')} is not a peer of run ${options.runId}`);
  if (!verifyBytes(key, envelopeSigningBytes(envelope.header, envelope.body), envelope.signature)) {
    throw refuse('BadSignature', 'envelope signature does not verify');
  }

  if (header.runId !== options.runId) throw refuse('WrongRun', `envelope is for run "${clip(header.runId)}", this is run "${options.runId}"`);
  if (options.kind === 'session') {
    if (header.sessionId.length !== Limits.sessionIdBytes) throw refuse('Malformed', `session id must be ${Limits.sessionIdBytes} bytes, got ${header.sessionId.length}`);
    if (header.sequence === 0n) throw refuse('Malformed', 'session messages need a sequence number of at least 1');
  } else if (header.sessionId.length !== 0 || header.sequence !== 0n) {
    throw refuse('Malformed', 'a statement has no session id or sequence number');
  }
  if (header.bodyType !== options.schema.typeName) throw refuse('Malformed', `body type must be ${options.schema.typeName}, got "${clip(header.bodyType)}"`);
  const roundProblem = options.checkRound?.(header.round);
  if (roundProblem !== undefined) throw refuse('StaleRound', roundProblem);

  let body: MessageShape<Desc>;
  try {
    body = fromBinary(options.schema, envelope.body);
  } catch (error) {
    throw refuse('Malformed', `body does not decode as ${options.schema.typeName}: ${(error as Error).message}`);
  }
  return { header, signer, body };
}

/** Untrusted text in a refusal message, cut short and stripped of control characters. */
export function clip(text: string, max = 64): string {
  const safe = text.replace(/[\u0000-\u001f\u007f]/g, '?');
  return safe.length > max ? `${safe.slice(0, max)}…` : safe;
}
