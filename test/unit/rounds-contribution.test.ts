import { describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { create, toBinary } from '@bufbuild/protobuf';
import { EnvelopeHeaderSchema, EnvelopeSchema } from '../../proto/gen/concord/v1/envelope_pb.js';
import { ContributionHeaderSchema, StatusQuerySchema, type ContributionHeader } from '../../proto/gen/concord/v1/federation_pb.js';
import { envelopeSigningBytes, sealEnvelope } from '../../operator/src/federation/envelope.js';
import { generateIdentity, signBytes, type Identity } from '../../operator/src/federation/identity.js';
import { PeerDirectory } from '../../operator/src/federation/peers.js';
import { checkContributionHeader, checkPayload, checkUpdate, statementHash, type ExpectedContribution } from '../../operator/src/rounds/contribution.js';
import { normOutliers } from '../../operator/src/rounds/norms.js';
import { isRejectionReason, PENALISES_SIGNER, REJECTION_REASONS } from '../../operator/src/rounds/reasons.js';
import { SparseLoCoEncoder } from '../../trainer/src/codec/index.js';
import { aggregate } from '../../trainer/src/outer/aggregate.js';
import { seededRandom } from '../../trainer/src/random.js';

const RUN = 'ns/run';
const alice = generateIdentity();
const mallory = generateIdentity();
const peers = new PeerDirectory([{ name: 'alice', publicKey: alice.publicKey }]);
const base = createHash('sha256').update('theta_7').digest();
const expected: ExpectedContribution = { runId: RUN, round: 7n, baseHash: base, maxPayloadBytes: 4096, keyFor: peers.keyFor };

const LENGTH = 8192;
const codec = { chunk: 1024, k: 32, bits: 2 };

function payload(seed = 1): Buffer {
  const random = seededRandom(seed);
  const delta = Float32Array.from({ length: LENGTH }, () => random() - 0.5);
  return Buffer.from(new SparseLoCoEncoder(LENGTH, codec).encode(delta));
}

function sha256(bytes: Uint8Array): Buffer {
  return createHash('sha256').update(bytes).digest();
}

type HeaderFields = Partial<Pick<ContributionHeader, 'runId' | 'round' | 'baseHash' | 'tokens' | 'payloadHash' | 'payloadBytes'>>;

function headerFor(bytes: Uint8Array, over: HeaderFields = {}): HeaderFields {
  return { runId: RUN, round: 7n, baseHash: base, tokens: 4096n, payloadHash: sha256(bytes), payloadBytes: BigInt(bytes.length), ...over };
}

function statement(body: HeaderFields, options: { signer?: Identity; runId?: string; round?: bigint } = {}) {
  return sealEnvelope(options.signer ?? alice, { runId: options.runId ?? RUN, round: options.round ?? body.round ?? 7n, schema: ContributionHeaderSchema, body });
}

describe('contribution header', () => {
  const bytes = payload();

  it('accepts a header signed by a peer for this run, round and base, and names its statement', () => {
    const envelope = statement(headerFor(bytes));
    const result = checkContributionHeader(envelope, expected);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.signer.equals(alice.publicKey)).toBe(true);
    expect(result.header.tokens).toBe(4096n);
    expect(result.hash.equals(statementHash(envelope))).toBe(true);
    expect(result.hash.equals(sha256(envelopeSigningBytes(envelope.header, envelope.body)))).toBe(true);
  });

  it('names the reason for each bad header, in the order of the checks', () => {
    const reasonOf = (envelope: ReturnType<typeof statement> | undefined, over: Partial<ExpectedContribution> = {}) => {
      const result = checkContributionHeader(envelope, { ...expected, ...over });
      return result.ok ? 'accepted' : result.reason;
    };
    const good = statement(headerFor(bytes));
    expect(reasonOf(good)).toBe('accepted');
    expect(reasonOf(undefined)).toBe('Malformed');
    expect(reasonOf(statement(headerFor(bytes), { signer: mallory }))).toBe('UnknownPeer');
    const body = Uint8Array.from(good.body);
    body[body.length - 1]! ^= 1;
    expect(reasonOf({ ...good, body })).toBe('BadSignature');
    expect(reasonOf(statement(headerFor(bytes, { runId: 'ns/other' }), { runId: 'ns/other' }))).toBe('WrongRun');
    // A header from an older round, replayed: well-formed, but not this round's.
    expect(reasonOf(statement(headerFor(bytes, { round: 6n })))).toBe('WrongRound');
    expect(reasonOf(statement(headerFor(bytes, { baseHash: base.subarray(0, 31) })))).toBe('Malformed');
    expect(reasonOf(statement(headerFor(bytes, { payloadHash: new Uint8Array(0) })))).toBe('Malformed');
    expect(reasonOf(statement(headerFor(bytes, { payloadBytes: 23n })))).toBe('Malformed');
    expect(reasonOf(statement(headerFor(bytes, { payloadBytes: 4097n })))).toBe('TooLarge');
    expect(reasonOf(statement(headerFor(bytes, { tokens: 1n << 40n })), { maxTokens: 1n << 30n })).toBe('TooLarge');
    expect(reasonOf(statement(headerFor(bytes, { baseHash: sha256(Buffer.from('theta_6')) })))).toBe('StaleBase');
    // The body's run and round must be the envelope's: both are signed, a contradiction is no statement.
    expect(reasonOf(statement(headerFor(bytes, { round: 6n }), { round: 7n }))).toBe('Malformed');
    // The wrong kind of statement, and a session message instead of a statement.
    expect(reasonOf(sealEnvelope(alice, { runId: RUN, round: 7n, schema: StatusQuerySchema, body: {} }))).toBe('Malformed');
    expect(reasonOf(sealEnvelope(alice, { runId: RUN, round: 7n, schema: ContributionHeaderSchema, body: headerFor(bytes), session: { id: Buffer.alloc(16, 1), sequence: 1n } }))).toBe('Malformed');
  });

  it('keeps the signed statement with a rejection of its fields, not with one of its signature', () => {
    const stale = checkContributionHeader(statement(headerFor(bytes, { baseHash: Buffer.alloc(32) })), expected);
    expect(stale.ok).toBe(false);
    expect(!stale.ok && stale.signed?.signer.equals(alice.publicKey)).toBe(true);
    const good = statement(headerFor(bytes));
    const forged = checkContributionHeader({ ...good, signature: Buffer.alloc(64) }, expected);
    expect(!forged.ok && forged.signed).toBeUndefined();
  });

  it('verifies the body bytes as received, so a re-encoding with an extra field is a different statement', () => {
    // Protobuf parsers keep the last of a repeated field; the receiver verifies before it decodes.
    const good = statement(headerFor(bytes));
    const body = Buffer.concat([good.body, toBinary(ContributionHeaderSchema, create(ContributionHeaderSchema, { tokens: 1n << 50n }))]);
    const check = checkContributionHeader({ ...good, body }, expected);
    expect(!check.ok && check.reason).toBe('BadSignature');
    // Signed by alice this time: accepted, and the later field wins, as it would for everyone.
    const header = toBinary(EnvelopeHeaderSchema, create(EnvelopeHeaderSchema, { runId: RUN, round: 7n, signer: alice.publicKey, bodyType: ContributionHeaderSchema.typeName }));
    const signed = create(EnvelopeSchema, { header, body, signature: signBytes(alice, envelopeSigningBytes(header, body)) });
    const resigned = checkContributionHeader(signed, expected);
    expect(resigned.ok && resigned.header.tokens).toBe(1n << 50n);
  });
});

describe('contribution payload', () => {
  const bytes = payload();
  const header = create(ContributionHeaderSchema, headerFor(bytes));

  it('decodes a payload that matches its signed hash and size, and computes the norm as the aggregate does', () => {
    const result = checkPayload(header, bytes, LENGTH, codec);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.update.indices.length).toBe((LENGTH / codec.chunk) * codec.k);
    const { peers: [summary] } = aggregate([{ peerId: 'a', tokens: 1, score: 1, update: result.update }], LENGTH);
    expect(result.norm).toBe(summary!.norm);
  });

  it('names the reason for each bad payload', () => {
    const reasonOf = (h: ContributionHeader, b: Uint8Array, params: typeof codec | undefined = codec) => {
      const result = checkPayload(h, b, LENGTH, params);
      return result.ok ? 'accepted' : result.reason;
    };
    const signed = (b: Uint8Array, over: HeaderFields = {}) => create(ContributionHeaderSchema, headerFor(b, over));
    // Bytes that are not the signed ones (a relay's corruption, or another payload).
    const flipped = Buffer.from(bytes);
    flipped[40]! ^= 1;
    expect(reasonOf(header, flipped)).toBe('BadSignature');
    expect(reasonOf(header, payload(2))).toBe('BadSignature');
    // The signer signed a hash and a size that disagree.
    expect(reasonOf(signed(bytes, { payloadBytes: BigInt(bytes.length - 1) }), bytes)).toBe('TooLarge');
    expect(reasonOf(signed(bytes, { payloadBytes: BigInt(bytes.length + 1) }), bytes)).toBe('Malformed');
    // A signed payload that does not decode (a CodecError: trailing bytes, a bad magic).
    const trailing = Buffer.concat([bytes, Buffer.alloc(8)]);
    expect(reasonOf(signed(trailing), trailing)).toBe('Malformed');
    const badMagic = Buffer.from(bytes);
    badMagic[0] = 0x58;
    expect(reasonOf(signed(badMagic), badMagic)).toBe('Malformed');
    expect(reasonOf(signed(bytes.subarray(0, 20)), bytes.subarray(0, 20))).toBe('Malformed');
    // A payload for a model of another size.
    const other = Buffer.from(new SparseLoCoEncoder(LENGTH * 2, codec).encode(new Float32Array(LENGTH * 2).fill(1)));
    expect(reasonOf(signed(other), other)).toBe('Malformed');
    // Valid, but not made with the run's compression parameters (here: a dense update).
    const dense = Buffer.from(new SparseLoCoEncoder(LENGTH, { chunk: 1024, k: 1024, bits: 2 }).encode(new Float32Array(LENGTH).fill(0.5)));
    expect(reasonOf(signed(dense), dense)).toBe('Malformed');
    expect(checkPayload(signed(dense), dense, LENGTH).ok).toBe(true);
  });

  it('refuses non-finite values and malformed shapes in a decoded update', () => {
    const reasonOf = (indices: number[], values: number[], length = 16) => {
      const result = checkUpdate({ length, indices: Uint32Array.from(indices), values: Float32Array.from(values) }, 16);
      return result.ok ? 'accepted' : result.reason;
    };
    expect(reasonOf([1, 5], [0.5, -2])).toBe('accepted');
    expect(reasonOf([1, 5], [0.5, Number.NaN])).toBe('NonFinite');
    expect(reasonOf([1, 5], [Number.POSITIVE_INFINITY, 1])).toBe('NonFinite');
    expect(reasonOf([5, 1], [1, 1])).toBe('Malformed');
    expect(reasonOf([1, 1], [1, 1])).toBe('Malformed');
    expect(reasonOf([1, 16], [1, 1])).toBe('Malformed');
    expect(reasonOf([1], [1, 1])).toBe('Malformed');
    expect(reasonOf([1], [1], 32)).toBe('Malformed');
    const ok = checkUpdate({ length: 16, indices: Uint32Array.of(0, 3), values: Float32Array.of(3, 4) }, 16);
    expect(ok.ok && ok.norm).toBe(5);
  });
});

describe('norm outliers', () => {
  it('flags a norm above the multiple of the median, and only with enough contributions to trust the median', () => {
    const norms = [{ peerId: 'c', norm: 1.2 }, { peerId: 'a', norm: 1 }, { peerId: 'd', norm: 100 }, { peerId: 'b', norm: 0.8 }];
    // Median of [0.8, 1, 1.2, 100] is 1.1; 100 > 10 × 1.1.
    expect(normOutliers(norms)).toEqual([{ peerId: 'd', norm: 100, median: 1.1 }]);
    expect(normOutliers(norms, { multiple: 100 })).toEqual([]);
    expect(normOutliers(norms.slice(2))).toEqual([]);
    // A fast honest peer with 5× the median norm stays.
    expect(normOutliers([{ peerId: 'a', norm: 1 }, { peerId: 'b', norm: 1 }, { peerId: 'c', norm: 5 }])).toEqual([]);
    // Exactly at the multiple is not above it.
    expect(normOutliers([{ peerId: 'a', norm: 1 }, { peerId: 'b', norm: 1 }, { peerId: 'c', norm: 10 }])).toEqual([]);
    // Mostly empty updates: no median to judge by.
    expect(normOutliers([{ peerId: 'a', norm: 0 }, { peerId: 'b', norm: 0 }, { peerId: 'c', norm: 3 }])).toEqual([]);
  });
});

describe('rejection reasons', () => {
  it('are a closed set of CamelCase names, each with a reputation rule', () => {
    expect(new Set(REJECTION_REASONS).size).toBe(REJECTION_REASONS.length);
    for (const reason of REJECTION_REASONS) {
      expect(reason).toMatch(/^[A-Z][A-Za-z]+$/);
      expect(typeof PENALISES_SIGNER[reason]).toBe('boolean');
    }
    expect(Object.keys(PENALISES_SIGNER).sort()).toEqual([...REJECTION_REASONS].sort());
    expect(isRejectionReason('NearCopy')).toBe(true);
    expect(isRejectionReason('toString')).toBe(false);
  });
});
