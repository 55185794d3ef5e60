// Equivocation: one key signing two conflicting statements of one kind for one run and round
// (two contribution headers, or two manifests). The two signed envelopes as received are the
// proof; anyone holding the signer's public key can check it, with no trust in who reports it.
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { EnvelopeHeaderSchema, EnvelopeSchema, type Envelope } from '../../../proto/gen/concord/v1/envelope_pb.js';
import { ContributionHeaderSchema, ManifestSchema, type ContributionHeader, type Manifest } from '../../../proto/gen/concord/v1/federation_pb.js';
import { openEnvelope } from '../federation/envelope.js';
import { publicKeyObject } from '../federation/identity.js';
import { Refusal } from '../federation/refusal.js';
import { RejectionReason } from './reasons.js';

/** Two signed statements by one key for one run, round and kind that say different things. */
export type EquivocationEvidence = readonly [Envelope, Envelope];

/** What a statement is about and what it commits to, read from its (already verified) bytes. */
interface Statement {
  kind: string;
  runId: string;
  round: bigint;
  signer: Buffer;
  /** The commitment in canonical text: equal iff the two statements say the same thing. */
  content: string;
}

/**
 * The content of a statement of one of the two kinds that can equivocate, or a problem.
 *
 * "Different" means a different commitment, not different bytes: protobuf encoding is not
 * canonical, so a header re-encoded with the same fields (or a manifest listing the same entries
 * in another order) is the same statement. For a contribution header the commitment is (base
 * hash, tokens, payload hash, payload bytes); for a manifest, its set of (payload hash,
 * contributor, score) entries.
 */
function readStatement(envelope: Envelope): Statement | string {
  let header;
  try {
    header = fromBinary(EnvelopeHeaderSchema, envelope.header);
  } catch {
    return 'envelope header does not decode';
  }
  if (header.sessionId.length !== 0 || header.sequence !== 0n) return 'not a statement (it has a session)';
  const signer = Buffer.from(header.signer);
  try {
    if (header.bodyType === ContributionHeaderSchema.typeName) {
      const body = fromBinary(ContributionHeaderSchema, envelope.body);
      if (body.runId !== header.runId || body.round !== header.round) return 'contribution header contradicts its envelope (run or round)';
      return { kind: header.bodyType, runId: header.runId, round: header.round, signer, content: contributionContent(body) };
    }
    if (header.bodyType === ManifestSchema.typeName) {
      const body = fromBinary(ManifestSchema, envelope.body);
      if (body.runId !== header.runId || body.round !== header.round) return 'manifest contradicts its envelope (run or round)';
      return { kind: header.bodyType, runId: header.runId, round: header.round, signer, content: manifestContent(body) };
    }
  } catch {
    return `body does not decode as ${header.bodyType}`;
  }
  return `body type "${header.bodyType.slice(0, 64)}" cannot equivocate`;
}

function contributionContent(h: ContributionHeader): string {
  return [hex(h.baseHash), h.tokens, hex(h.payloadHash), h.payloadBytes].join(':');
}

function manifestContent(m: Manifest): string {
  return m.entries.map((e) => `${hex(e.payloadHash)}:${hex(e.contributor)}:${e.scorePpm}`).sort().join(',');
}

export type EquivocationCheck =
  /** `repeat`: the same statement was recorded before (e.g. relayed by another peer). */
  | { ok: true; repeat: boolean }
  | { ok: false; reason: typeof RejectionReason.Equivocation; detail: string; evidence: EquivocationEvidence }
  /** The envelope is not a verifiable statement; nothing was recorded. */
  | { ok: false; reason: typeof RejectionReason.BadSignature | typeof RejectionReason.Malformed; detail: string };

/**
 * Remembers the first statement of each (kind, signer, run, round) and reports a second one that
 * says something else. Feed it every statement whose signature verified — also those rejected
 * for a field (checkContributionHeader's `signed`): a signed header is a commitment whatever it
 * says. Memory: one envelope per signer and round and kind; `forgetBefore` drops old rounds.
 */
export class EquivocationDetector {
  private readonly first = new Map<string, { envelope: Envelope; content: string }>();
  private readonly proofs = new Map<string, EquivocationEvidence>();

  record(envelope: Envelope): EquivocationCheck {
    const statement = readStatement(envelope);
    if (typeof statement === 'string') return { ok: false, reason: RejectionReason.Malformed, detail: statement };
    const key = [statement.kind, statement.signer.toString('hex'), statement.runId, statement.round].join('\0');
    const seen = this.first.get(key);
    if (seen === undefined) {
      this.first.set(key, { envelope, content: statement.content });
      return { ok: true, repeat: false };
    }
    if (seen.content === statement.content) return { ok: true, repeat: true };
    const evidence: EquivocationEvidence = [seen.envelope, envelope];
    // The caller promised a verified envelope; check the pair before it is used to ban anyone,
    // so a mistake upstream cannot turn into a false accusation. Costs two verifications, only
    // when a conflict shows up.
    const verdict = verifyEquivocationEvidence(evidence, statement.signer);
    if (!verdict.ok) return { ok: false, reason: RejectionReason.BadSignature, detail: `conflicting statement does not verify: ${verdict.problem}` };
    const signerHex = statement.signer.toString('hex');
    if (!this.proofs.has(signerHex)) this.proofs.set(signerHex, evidence);
    return {
      ok: false, reason: RejectionReason.Equivocation, evidence,
      detail: `signed two different ${statement.kind.replace('concord.v1.', '')} statements for run "${statement.runId}" round ${statement.round}`,
    };
  }

  /** The first proof against a signer (raw public key), if it equivocated. */
  evidenceAgainst(signer: Uint8Array): EquivocationEvidence | undefined {
    return this.proofs.get(Buffer.from(signer).toString('hex'));
  }

  /** Drops the statements of rounds before `round` (proofs already found are kept). */
  forgetBefore(round: bigint): void {
    for (const key of this.first.keys()) {
      if (BigInt(key.slice(key.lastIndexOf('\0') + 1)) < round) this.first.delete(key);
    }
  }
}

export type EvidenceVerdict =
  | { ok: true; kind: string; runId: string; round: bigint }
  | { ok: false; problem: string };

/**
 * Checks a proof of equivocation against the accused key (raw 32 bytes), as any third party can:
 * both envelopes are statements of the same kind, signed by that key over the bytes given, for
 * the same run and round, and they commit to different things.
 */
export function verifyEquivocationEvidence(evidence: readonly Envelope[], publicKey: Uint8Array): EvidenceVerdict {
  if (evidence.length !== 2) return { ok: false, problem: `evidence must be two envelopes, got ${evidence.length}` };
  let key;
  try {
    key = publicKeyObject(publicKey);
  } catch (error) {
    return { ok: false, problem: (error as Error).message };
  }
  const accused = Buffer.from(publicKey);
  const statements: Statement[] = [];
  for (const [i, envelope] of evidence.entries()) {
    const statement = readStatement(envelope);
    if (typeof statement === 'string') return { ok: false, problem: `statement ${i + 1}: ${statement}` };
    // The signature over the exact bytes, by the accused key (openEnvelope verifies it before it
    // trusts any field of the header).
    const schema = statement.kind === ManifestSchema.typeName ? ManifestSchema : ContributionHeaderSchema;
    try {
      openEnvelope(envelope, { kind: 'statement', runId: statement.runId, schema, keyFor: (signer) => (signer.equals(accused) ? key : undefined) });
    } catch (error) {
      if (error instanceof Refusal) return { ok: false, problem: `statement ${i + 1}: ${error.reason}: ${error.message}` };
      throw error;
    }
    statements.push(statement);
  }
  const [a, b] = statements as [Statement, Statement];
  if (a.kind !== b.kind) return { ok: false, problem: `statements are of different kinds (${a.kind}, ${b.kind})` };
  if (a.runId !== b.runId || a.round !== b.round) return { ok: false, problem: `statements are for different runs or rounds (${a.runId}/${a.round}, ${b.runId}/${b.round})` };
  if (a.content === b.content) return { ok: false, problem: 'statements say the same thing' };
  return { ok: true, kind: a.kind, runId: a.runId, round: a.round };
}

/** Evidence as text for a status field or a report: base64 of each encoded envelope. */
export function encodeEvidence(evidence: readonly Envelope[]): string[] {
  return evidence.map((envelope) => Buffer.from(toBinary(EnvelopeSchema, envelope)).toString('base64'));
}

/** The inverse of encodeEvidence; throws if a string is not an encoded envelope. */
export function decodeEvidence(encoded: readonly string[]): Envelope[] {
  return encoded.map((text) => fromBinary(EnvelopeSchema, Buffer.from(text, 'base64')));
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}
