import { describe, expect, it } from '@jest/globals';
import { create } from '@bufbuild/protobuf';
import { FinishRequestSchema, HelloRequestSchema } from '../../proto/gen/concord/v1/federation_pb.js';
import { HandshakeResponder } from '../../operator/src/federation/handshake-responder.js';
import { freshNonce, handshakeTranscript, sessionIdOf, signTranscript, verifyTranscript } from '../../operator/src/federation/handshake.js';
import { generateIdentity, publicKeyObject } from '../../operator/src/federation/identity.js';
import { PROTOCOL } from '../../operator/src/federation/limits.js';
import { PeerDirectory } from '../../operator/src/federation/peers.js';
import { reasonOf } from '../support/refusal.js';
import { SessionTable } from '../../operator/src/federation/sessions.js';

const server = generateIdentity();
const client = generateIdentity();
const DATASET = Buffer.alloc(32, 7);

function setup(now = () => 1_000) {
  const sessions = new SessionTable({ now });
  const responder = new HandshakeResponder(server, 'ns/run', new PeerDirectory([{ name: 'client', publicKey: client.publicKey }]), sessions, { now, pendingTtlMs: 1000 });
  return { sessions, responder };
}

function hello(over: Record<string, unknown> = {}) {
  return create(HelloRequestSchema, { protocol: PROTOCOL, runId: 'ns/run', clientKey: client.publicKey, clientNonce: freshNonce(), ...over });
}


describe('handshake', () => {
  it('binds run, dataset, both keys and both nonces: changing any one changes the transcript', () => {
    const parts = { runId: 'ns/run', clientKey: client.publicKey, serverKey: server.publicKey, clientNonce: freshNonce(), serverNonce: freshNonce() };
    const base = handshakeTranscript(parts);
    expect(handshakeTranscript({ ...parts, datasetHash: new Uint8Array(0) }).equals(base)).toBe(true);
    for (const change of [{ runId: 'ns/runs' }, { clientKey: server.publicKey }, { serverKey: client.publicKey }, { clientNonce: freshNonce() }, { serverNonce: freshNonce() }, { datasetHash: DATASET }]) {
      expect(handshakeTranscript({ ...parts, ...change }).equals(base)).toBe(false);
    }
  });

  it('does not accept a server signature as a client signature', () => {
    const transcript = handshakeTranscript({ runId: 'r', clientKey: server.publicKey, serverKey: server.publicKey, clientNonce: freshNonce(), serverNonce: freshNonce() });
    const asServer = signTranscript(server, 'server', transcript);
    expect(verifyTranscript(publicKeyObject(server.publicKey), 'server', transcript, asServer)).toBe(true);
    expect(verifyTranscript(publicKeyObject(server.publicKey), 'client', transcript, asServer)).toBe(false);
  });

  it('completes with a session both sides derive from the transcript', () => {
    const { responder, sessions } = setup();
    const request = hello();
    const answer = responder.hello(request);
    const transcript = handshakeTranscript({ runId: 'ns/run', clientKey: client.publicKey, serverKey: server.publicKey, clientNonce: request.clientNonce, serverNonce: answer.serverNonce as Uint8Array });
    expect(verifyTranscript(publicKeyObject(server.publicKey), 'server', transcript, answer.serverSignature as Uint8Array)).toBe(true);
    const { response } = responder.finish(create(FinishRequestSchema, { serverNonce: answer.serverNonce as Uint8Array, clientSignature: signTranscript(client, 'client', transcript) }));
    expect(Buffer.from(response.sessionId as Uint8Array).equals(sessionIdOf(transcript))).toBe(true);
    expect(sessions.size).toBe(1);
  });

  it('refuses bad hellos with the reason that fits', () => {
    const { responder } = setup();
    expect(reasonOf(() => responder.hello(hello({ clientKey: generateIdentity().publicKey })))).toBe('UnknownPeer');
    expect(reasonOf(() => responder.hello(hello({ runId: 'ns/other' })))).toBe('WrongRun');
    expect(reasonOf(() => responder.hello(hello({ runId: 'x'.repeat(300) })))).toBe('TooLarge');
    expect(reasonOf(() => responder.hello(hello({ protocol: 'concord/0' })))).toBe('Malformed');
    expect(reasonOf(() => responder.hello(hello({ clientNonce: new Uint8Array(8) })))).toBe('Malformed');
    expect(reasonOf(() => responder.hello(hello({ datasetHash: new Uint8Array(31) })))).toBe('Malformed');
  });

  it('refuses a partner that trains on another dataset, naming both, and completes when the datasets agree', () => {
    const sessions = new SessionTable({ now: () => 1_000 });
    const pinned = new HandshakeResponder(server, 'ns/run', new PeerDirectory([{ name: 'client', publicKey: client.publicKey }]), sessions, { now: () => 1_000, datasetHash: DATASET });
    expect(() => pinned.hello(hello())).toThrow(/run "ns\/run" trains on dataset 0707070707070707…, the client on the bundled corpus/);
    expect(reasonOf(() => pinned.hello(hello({ datasetHash: Buffer.alloc(32, 8) })))).toBe('WrongDataset');
    expect(reasonOf(() => setup().responder.hello(hello({ datasetHash: DATASET })))).toBe('WrongDataset');
    const request = hello({ datasetHash: DATASET });
    const answer = pinned.hello(request);
    // The server signed the transcript with the dataset in it: one without it does not verify.
    const without = handshakeTranscript({ runId: 'ns/run', clientKey: client.publicKey, serverKey: server.publicKey, clientNonce: request.clientNonce, serverNonce: answer.serverNonce as Uint8Array });
    const withIt = handshakeTranscript({ runId: 'ns/run', clientKey: client.publicKey, serverKey: server.publicKey, clientNonce: request.clientNonce, serverNonce: answer.serverNonce as Uint8Array, datasetHash: DATASET });
    expect(verifyTranscript(publicKeyObject(server.publicKey), 'server', without, answer.serverSignature as Uint8Array)).toBe(false);
    expect(verifyTranscript(publicKeyObject(server.publicKey), 'server', withIt, answer.serverSignature as Uint8Array)).toBe(true);
    pinned.finish(create(FinishRequestSchema, { serverNonce: answer.serverNonce as Uint8Array, clientSignature: signTranscript(client, 'client', withIt) }));
    expect(sessions.size).toBe(1);
  });

  it('refuses a wrong client signature, a replayed finish and an expired hello', () => {
    let now = 1_000;
    const { responder } = setup(() => now);
    const request = hello();
    const answer = responder.hello(request);
    const transcript = handshakeTranscript({ runId: 'ns/run', clientKey: client.publicKey, serverKey: server.publicKey, clientNonce: request.clientNonce, serverNonce: answer.serverNonce as Uint8Array });
    const finish = create(FinishRequestSchema, { serverNonce: answer.serverNonce as Uint8Array, clientSignature: signTranscript(client, 'client', transcript) });
    const forged = create(FinishRequestSchema, { serverNonce: answer.serverNonce as Uint8Array, clientSignature: signTranscript(generateIdentity(), 'client', transcript) });
    expect(reasonOf(() => responder.finish(forged))).toBe('BadSignature');
    // A failed finish ends that handshake; the client starts again.
    expect(reasonOf(() => responder.finish(finish))).toBe('UnknownSession');

    const second = hello();
    const answer2 = responder.hello(second);
    const transcript2 = handshakeTranscript({ runId: 'ns/run', clientKey: client.publicKey, serverKey: server.publicKey, clientNonce: second.clientNonce, serverNonce: answer2.serverNonce as Uint8Array });
    const finish2 = create(FinishRequestSchema, { serverNonce: answer2.serverNonce as Uint8Array, clientSignature: signTranscript(client, 'client', transcript2) });
    expect(reasonOf(() => responder.finish(finish2))).toBe('accepted');
    expect(reasonOf(() => responder.finish(finish2))).toBe('Replay');

    const third = responder.hello(hello());
    now += 5_000;
    expect(reasonOf(() => responder.finish(create(FinishRequestSchema, { serverNonce: third.serverNonce as Uint8Array, clientSignature: new Uint8Array(64) })))).toBe('UnknownSession');
  });

  it('keeps a bounded number of pending handshakes per key', () => {
    const { responder } = setup();
    const answers = Array.from({ length: 6 }, () => responder.hello(hello()));
    // The two oldest were evicted to make room.
    expect(reasonOf(() => responder.finish(create(FinishRequestSchema, { serverNonce: answers[0]!.serverNonce as Uint8Array, clientSignature: new Uint8Array(64) })))).toBe('UnknownSession');
    expect(reasonOf(() => responder.finish(create(FinishRequestSchema, { serverNonce: answers[5]!.serverNonce as Uint8Array, clientSignature: new Uint8Array(64) })))).toBe('BadSignature');
  });
});
