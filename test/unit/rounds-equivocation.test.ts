import { describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { create, toBinary } from '@bufbuild/protobuf';
import { EnvelopeHeaderSchema, EnvelopeSchema, type Envelope } from '../../proto/gen/concord/v1/envelope_pb.js';
import { ContributionHeaderSchema, ManifestSchema, type ContributionHeader } from '../../proto/gen/concord/v1/federation_pb.js';
import { envelopeSigningBytes, sealEnvelope } from '../../operator/src/federation/envelope.js';
import { generateIdentity, signBytes, type Identity } from '../../operator/src/federation/identity.js';
import { PeerDirectory } from '../../operator/src/federation/peers.js';
import { buildManifest } from '../../operator/src/rounds/agreement.js';
import { checkContributionHeader } from '../../operator/src/rounds/contribution.js';
import { decodeEvidence, encodeEvidence, EquivocationDetector, verifyEquivocationEvidence } from '../../operator/src/rounds/equivocation.js';

const RUN = 'ns/run';
const mallory = generateIdentity();
const alice = generateIdentity();
const hash = (text: string) => createHash('sha256').update(text).digest();
const base = hash('theta_3');

type Fields = Partial<Pick<ContributionHeader, 'round' | 'tokens' | 'payloadHash' | 'payloadBytes' | 'baseHash'>>;

function header(signer: Identity, over: Fields = {}): Envelope {
  const round = over.round ?? 3n;
  return sealEnvelope(signer, {
    runId: RUN, round, schema: ContributionHeaderSchema,
    body: { runId: RUN, round, baseHash: base, tokens: 1000n, payloadHash: hash('payload-a'), payloadBytes: 500n, ...over },
  });
}

/** A copy of an envelope as it would arrive off the wire: fresh byte arrays. */
function received(envelope: Envelope): Envelope {
  return create(EnvelopeSchema, { header: Uint8Array.from(envelope.header), body: Uint8Array.from(envelope.body), signature: Uint8Array.from(envelope.signature) });
}

describe('equivocation detector', () => {
  it('reports two different signed headers for one round, with the two envelopes as received', () => {
    const detector = new EquivocationDetector();
    const first = header(mallory);
    const second = header(mallory, { payloadHash: hash('payload-b') });
    expect(detector.record(first)).toEqual({ ok: true, repeat: false });
    const result = detector.record(second);
    expect(result.ok).toBe(false);
    if (result.ok || result.reason !== 'Equivocation') throw new Error('expected equivocation');
    expect(result.evidence[0]).toBe(first);
    expect(result.evidence[1]).toBe(second);
    expect(detector.evidenceAgainst(mallory.publicKey)).toBe(result.evidence);
    expect(detector.evidenceAgainst(alice.publicKey)).toBeUndefined();
  });

  it('takes a relayed copy of the same statement, and the same signer in other rounds or kinds, as no conflict', () => {
    const detector = new EquivocationDetector();
    const first = header(mallory);
    expect(detector.record(first).ok).toBe(true);
    expect(detector.record(received(first))).toEqual({ ok: true, repeat: true });
    expect(detector.record(header(mallory, { round: 4n, payloadHash: hash('payload-b') }))).toEqual({ ok: true, repeat: false });
    expect(detector.record(header(alice, { payloadHash: hash('payload-b') }))).toEqual({ ok: true, repeat: false });
    const manifest = sealEnvelope(mallory, { runId: RUN, round: 3n, schema: ManifestSchema, body: buildManifest(RUN, 3n, []) });
    expect(detector.record(manifest)).toEqual({ ok: true, repeat: false });
  });

  it('compares commitments, not encodings: the same fields encoded differently are the same statement', () => {
    const detector = new EquivocationDetector();
    const first = header(mallory);
    expect(detector.record(first).ok).toBe(true);
    // Same header fields, with the base hash written twice (the last one wins): other bytes, other signature.
    const body = Buffer.concat([toBinary(ContributionHeaderSchema, create(ContributionHeaderSchema, { baseHash: hash('junk') })), first.body]);
    const signed = create(EnvelopeSchema, { header: first.header, body, signature: signBytes(mallory, envelopeSigningBytes(first.header, body)) });
    expect(detector.record(signed)).toEqual({ ok: true, repeat: true });
  });

  it('catches a header signed with a stale base after a good one (rejected headers are commitments too)', () => {
    const peers = new PeerDirectory([{ name: 'mallory', publicKey: mallory.publicKey }]);
    const expected = { runId: RUN, round: 3n, baseHash: base, maxPayloadBytes: 1000, keyFor: peers.keyFor };
    const detector = new EquivocationDetector();
    const good = checkContributionHeader(header(mallory), expected);
    const stale = checkContributionHeader(header(mallory, { baseHash: hash('theta_2') }), expected);
    expect(good.ok && detector.record(good.envelope).ok).toBe(true);
    expect(!stale.ok && stale.reason).toBe('StaleBase');
    expect(!stale.ok && stale.signed && detector.record(stale.signed.envelope).ok).toBe(false);
  });

  it('reports manifests that differ for one round', () => {
    const detector = new EquivocationDetector();
    const entry = { payloadHash: hash('payload-a'), contributor: alice.publicKey, scorePpm: 900_000, header: sealEnvelope(alice, { runId: RUN, round: 3n, schema: ContributionHeaderSchema, body: { runId: RUN, round: 3n, baseHash: hash('base'), tokens: 512n, payloadHash: hash('payload-a'), payloadBytes: 100n } }) };
    const one = sealEnvelope(mallory, { runId: RUN, round: 3n, schema: ManifestSchema, body: buildManifest(RUN, 3n, [entry]) });
    const other = sealEnvelope(mallory, { runId: RUN, round: 3n, schema: ManifestSchema, body: buildManifest(RUN, 3n, [{ ...entry, scorePpm: 1 }]) });
    expect(detector.record(one).ok).toBe(true);
    const result = detector.record(other);
    expect(!result.ok && result.reason).toBe('Equivocation');
    if (!result.ok && result.reason === 'Equivocation') expect(verifyEquivocationEvidence(result.evidence, mallory.publicKey)).toEqual({ ok: true, kind: ManifestSchema.typeName, runId: RUN, round: 3n });
  });

  it('does not accuse anyone with an envelope whose signature fails, and records nothing unreadable', () => {
    const detector = new EquivocationDetector();
    expect(detector.record(header(mallory)).ok).toBe(true);
    const forged = { ...header(mallory, { tokens: 1n }), signature: Buffer.alloc(64, 1) };
    expect(detector.record(forged)).toMatchObject({ ok: false, reason: 'BadSignature' });
    expect(detector.evidenceAgainst(mallory.publicKey)).toBeUndefined();
    expect(detector.record(create(EnvelopeSchema, { header: Uint8Array.of(0xff), body: new Uint8Array(0), signature: new Uint8Array(64) }))).toMatchObject({ ok: false, reason: 'Malformed' });
  });

  it('forgets old rounds but keeps proofs', () => {
    const detector = new EquivocationDetector();
    detector.record(header(mallory, { round: 3n }));
    detector.record(header(mallory, { round: 3n, tokens: 1n }));
    detector.record(header(alice, { round: 3n }));
    detector.forgetBefore(4n);
    expect(detector.evidenceAgainst(mallory.publicKey)).toBeDefined();
    // Round 3 was forgotten: alice's other header for it is a first statement again.
    expect(detector.record(header(alice, { round: 3n, tokens: 1n }))).toEqual({ ok: true, repeat: false });
  });
});

describe('equivocation evidence', () => {
  const a = header(mallory);
  const b = header(mallory, { tokens: 999_999n });

  it('is verifiable by a third party holding only the public key, also after a trip through text', () => {
    const evidence = decodeEvidence(encodeEvidence([a, b]));
    expect(verifyEquivocationEvidence(evidence, mallory.publicKey)).toEqual({ ok: true, kind: ContributionHeaderSchema.typeName, runId: RUN, round: 3n });
    expect(verifyEquivocationEvidence([b, a], mallory.publicKey).ok).toBe(true);
  });

  it('is refused when tampered with or when it proves nothing', () => {
    const problem = (evidence: Envelope[], key: Uint8Array = mallory.publicKey) => {
      const verdict = verifyEquivocationEvidence(evidence, key);
      return verdict.ok ? 'verified' : verdict.problem;
    };
    // A flipped bit in a body, in a header, in a signature.
    for (const field of ['body', 'header', 'signature'] as const) {
      const bytes = Uint8Array.from(b[field]);
      bytes[bytes.length - 2]! ^= 0x04;
      expect(problem([a, { ...b, [field]: bytes }])).not.toBe('verified');
    }
    // Against someone else's key: an accusation of alice with mallory's statements.
    expect(problem([a, b], alice.publicKey)).toMatch(/UnknownPeer/);
    // One statement each from two signers.
    expect(problem([a, header(alice, { tokens: 5n })])).toMatch(/UnknownPeer/);
    // The same statement twice, or relayed.
    expect(problem([a, received(a)])).toBe('statements say the same thing');
    // Different rounds: not a conflict.
    expect(problem([a, header(mallory, { round: 4n })])).toMatch(/different runs or rounds/);
    // Different kinds: a header and a manifest of the same round.
    const manifest = sealEnvelope(mallory, { runId: RUN, round: 3n, schema: ManifestSchema, body: buildManifest(RUN, 3n, []) });
    expect(problem([a, manifest])).toMatch(/different kinds/);
    // Not two envelopes; not a key.
    expect(problem([a])).toMatch(/two envelopes/);
    expect(problem([a, b], Buffer.alloc(31))).toMatch(/32 bytes/);
    // A session message is not a statement.
    const session = sealEnvelope(mallory, { runId: RUN, round: 3n, schema: ContributionHeaderSchema, body: { runId: RUN, round: 3n }, session: { id: Buffer.alloc(16), sequence: 1n } });
    expect(problem([a, session])).toMatch(/not a statement/);
    // A statement whose body contradicts its envelope.
    const contradiction = sealEnvelope(mallory, { runId: RUN, round: 3n, schema: ContributionHeaderSchema, body: { runId: RUN, round: 4n } });
    expect(problem([a, contradiction])).toMatch(/contradicts/);
    // A header claiming to be signed by mallory, signed by alice.
    const headerBytes = toBinary(EnvelopeHeaderSchema, create(EnvelopeHeaderSchema, { runId: RUN, round: 3n, signer: mallory.publicKey, bodyType: ContributionHeaderSchema.typeName }));
    const framed = create(EnvelopeSchema, { header: headerBytes, body: b.body, signature: signBytes(alice, envelopeSigningBytes(headerBytes, b.body)) });
    expect(problem([a, framed])).toMatch(/BadSignature/);
  });
});
