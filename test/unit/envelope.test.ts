import { describe, expect, it } from '@jest/globals';
import { create, toBinary } from '@bufbuild/protobuf';
import { EnvelopeHeaderSchema, EnvelopeSchema } from '../../proto/gen/concord/v1/envelope_pb.js';
import { PeerStatusSchema, StatusQuerySchema } from '../../proto/gen/concord/v1/federation_pb.js';
import { openEnvelope, sealEnvelope, type OpenOptions } from '../../operator/src/federation/envelope.js';
import { generateIdentity } from '../../operator/src/federation/identity.js';
import { PeerDirectory } from '../../operator/src/federation/peers.js';
import { reasonOf } from '../support/refusal.js';

const alice = generateIdentity();
const mallory = generateIdentity();
const peers = new PeerDirectory([{ name: 'alice', publicKey: alice.publicKey }]);
const session = { id: Buffer.alloc(16, 7), sequence: 1n };
const options: OpenOptions<typeof StatusQuerySchema> = { kind: 'session', runId: 'ns/run', schema: StatusQuerySchema, keyFor: peers.keyFor };


describe('signed envelopes', () => {
  it('opens what was sealed and returns the decoded header and body', () => {
    const envelope = sealEnvelope(alice, { runId: 'ns/run', round: 3n, schema: StatusQuerySchema, body: { note: 'hi' }, session });
    const opened = openEnvelope(envelope, options);
    expect(opened.body.note).toBe('hi');
    expect(opened.header.round).toBe(3n);
    expect(opened.header.sequence).toBe(1n);
    expect(opened.signer.equals(alice.publicKey)).toBe(true);
  });

  it('refuses any change to the signed bytes with BadSignature', () => {
    const envelope = sealEnvelope(alice, { runId: 'ns/run', round: 3n, schema: StatusQuerySchema, body: { note: 'hi' }, session });
    for (let i = 0; i < envelope.body.length; i++) {
      const body = Uint8Array.from(envelope.body);
      body[i]! ^= 0x01;
      expect(reasonOf(() => openEnvelope({ ...envelope, body }, options))).toBe('BadSignature');
    }
    const signature = Uint8Array.from(envelope.signature);
    signature[10]! ^= 0x80;
    expect(reasonOf(() => openEnvelope({ ...envelope, signature }, options))).toBe('BadSignature');
  });

  it('names the reason for each kind of bad envelope', () => {
    const seal = (over: Partial<{ runId: string; round: bigint }> = {}) =>
      sealEnvelope(alice, { runId: 'ns/run', round: 3n, schema: StatusQuerySchema, body: {}, session, ...over });
    expect(reasonOf(() => openEnvelope(undefined, options))).toBe('Malformed');
    expect(reasonOf(() => openEnvelope(sealEnvelope(mallory, { runId: 'ns/run', round: 3n, schema: StatusQuerySchema, body: {}, session }), options))).toBe('UnknownPeer');
    expect(reasonOf(() => openEnvelope(seal({ runId: 'ns/other' }), options))).toBe('WrongRun');
    expect(reasonOf(() => openEnvelope(seal(), { ...options, checkRound: (r) => (r < 5n ? 'round 3 is over' : undefined) }))).toBe('StaleRound');
    expect(reasonOf(() => openEnvelope(seal(), { ...options, schema: PeerStatusSchema }))).toBe('Malformed');
    expect(reasonOf(() => openEnvelope(seal(), { ...options, kind: 'statement' }))).toBe('Malformed');
    const big = sealEnvelope(alice, { runId: 'ns/run', round: 3n, schema: StatusQuerySchema, body: { note: 'x'.repeat(2000) }, session });
    expect(reasonOf(() => openEnvelope(big, { ...options, maxBodyBytes: 1000 }))).toBe('TooLarge');
    const garbage = create(EnvelopeSchema, { header: Uint8Array.of(0xff, 0xff), body: new Uint8Array(0), signature: new Uint8Array(64) });
    expect(reasonOf(() => openEnvelope(garbage, options))).toBe('Malformed');
  });

  it('verifies the header bytes as received, not a re-encoding of them', () => {
    // Protobuf allows a field to repeat (the last one wins); a receiver that re-encoded the
    // header before verifying would see different bytes than the signer signed.
    const base = create(EnvelopeHeaderSchema, { runId: 'ns/run', round: 1n, signer: alice.publicKey, sessionId: session.id, sequence: 1n, bodyType: StatusQuerySchema.typeName });
    const header = Buffer.concat([toBinary(EnvelopeHeaderSchema, create(EnvelopeHeaderSchema, { round: 9n })), toBinary(EnvelopeHeaderSchema, base)]);
    const { signature } = sealEnvelope(alice, { runId: 'x', round: 0n, schema: StatusQuerySchema, body: {} });
    expect(reasonOf(() => openEnvelope({ ...create(EnvelopeSchema), header, body: new Uint8Array(0), signature }, options))).toBe('BadSignature');
  });

  it('makes statements without a session and refuses a statement where a session message is due', () => {
    const statement = sealEnvelope(alice, { runId: 'ns/run', round: 2n, schema: StatusQuerySchema, body: {} });
    expect(openEnvelope(statement, { ...options, kind: 'statement' }).header.sessionId).toHaveLength(0);
    expect(reasonOf(() => openEnvelope(statement, options))).toBe('Malformed');
  });
});
