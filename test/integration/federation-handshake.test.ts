import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { status } from '@grpc/grpc-js';
import { ContributionQuerySchema, FederationService, StatusQuerySchema } from '../../proto/gen/concord/v1/federation_pb.js';
import { createClient, RpcError } from '../../proto/grpc/index.js';
import { sealEnvelope } from '../../operator/src/federation/envelope.js';
import { freshNonce, handshakeTranscript, signTranscript } from '../../operator/src/federation/handshake.js';
import { generateIdentity, type Identity } from '../../operator/src/federation/identity.js';
import { Limits, PROTOCOL } from '../../operator/src/federation/limits.js';
import { countsOf } from '../../operator/src/metrics/read.js';
import { connect, RUN_ID, startServer, type TestServer } from '../support/federation.js';
import { refusal } from '../support/refusal.js';

describe('federation handshake and signed messages over real gRPC', () => {
  const alice = generateIdentity();
  let server: TestServer;
  let raw: ReturnType<typeof createClient<(typeof FederationService)['method']>>;

  beforeAll(async () => {
    server = await startServer([alice]);
    raw = createClient(FederationService, server.address);
  });
  afterAll(async () => {
    raw.close();
    await server.close();
  });

  /** A session for `alice` made by hand, so tests can send exactly the envelopes they want. */
  async function session(identity: Identity = alice) {
    const client = connect(server, identity);
    const id = await client.handshake();
    client.close();
    let sequence = 0n;
    return {
      seal: (over: { runId?: string; round?: bigint; sequence?: bigint; note?: string } = {}) =>
        sealEnvelope(identity, {
          runId: over.runId ?? RUN_ID, round: over.round ?? 4n, schema: StatusQuerySchema, body: { note: over.note ?? '' },
          session: { id, sequence: over.sequence ?? ++sequence },
        }),
    };
  }

  it('completes a handshake and exchanges one signed message each way', async () => {
    const client = connect(server, alice);
    const sessionId = await client.handshake();
    expect(sessionId).toHaveLength(16);
    const reply = await client.status('hello from alice');
    client.close();
    expect(reply.status.phase).toBe('Training');
    expect(reply.status.round).toBe(4n);
    expect(reply.sequence).toBe(1n);
    expect(server.accepted.at(-1)).toMatchObject({ peerName: 'peer-0', round: 4n, sequence: 1n });
  });

  it('refuses a key that is not a peer: UnknownPeer, PERMISSION_DENIED', async () => {
    const error = await refusal(connect(server, generateIdentity()).handshake());
    expect(error.reason).toBe('UnknownPeer');
    expect(error.code).toBe(status.PERMISSION_DENIED);
    expect(error.message).toMatch(/is not a peer of run team-a\/gpt-small/);
  });

  it('refuses an impostor who claims a peer key without holding it: BadSignature', async () => {
    const hello = await raw.hello({ protocol: PROTOCOL, runId: RUN_ID, clientKey: alice.publicKey, clientNonce: freshNonce() });
    const error = await refusal(raw.finish({ serverNonce: hello.serverNonce, clientSignature: Buffer.alloc(64, 3) }));
    expect(error.reason).toBe('BadSignature');
    expect(error.code).toBe(status.UNAUTHENTICATED);
  });

  it('refuses a client of another run: WrongRun', async () => {
    const error = await refusal(connect(server, alice, { runId: 'team-b/other' }).handshake());
    expect(error.reason).toBe('WrongRun');
    expect(error.code).toBe(status.FAILED_PRECONDITION);
    const s = await session();
    const inSession = await refusal(raw.getStatus({ envelope: s.seal({ runId: 'team-b/other' }) }));
    expect(inSession.reason).toBe('WrongRun');
  });

  it('refuses a client that trains on another dataset: WrongDataset, with both named', async () => {
    const error = await refusal(connect(server, alice, { datasetHash: Buffer.alloc(32, 0xab) }).handshake());
    expect(error.reason).toBe('WrongDataset');
    expect(error.code).toBe(status.FAILED_PRECONDITION);
    expect(error.message).toMatch(/run "team-a\/gpt-small" trains on the bundled corpus, the client on dataset abababababababab…/);
  });

  it('refuses a round message outside the window: StaleRound; answers the status at any round', async () => {
    const client = connect(server, alice);
    const id = await client.handshake();
    client.close();
    const stale = sealEnvelope(alice, { runId: RUN_ID, round: 1n, schema: ContributionQuerySchema, body: { payloadHash: Buffer.alloc(32), offset: 0n }, session: { id, sequence: 1n } });
    const drain = async () => {
      for await (const chunk of raw.fetchContribution({ envelope: stale })) void chunk;
    };
    const error = await refusal(drain());
    expect(error.reason).toBe('StaleRound');
    expect(error.code).toBe(status.OUT_OF_RANGE);
    expect(error.message).toMatch(/round 1 is outside 3..5/);
    // A peer that is behind asks for the status (and checkpoints) to catch up: any round may.
    const s = await session();
    await expect(raw.getStatus({ envelope: s.seal({ round: 1n }) })).resolves.toBeDefined();
  });

  it('refuses a replayed envelope and a replayed handshake finish: Replay', async () => {
    const s = await session();
    const envelope = s.seal();
    await raw.getStatus({ envelope });
    const error = await refusal(raw.getStatus({ envelope }));
    expect(error.reason).toBe('Replay');
    expect(error.code).toBe(status.ALREADY_EXISTS);

    const clientNonce = freshNonce();
    const hello = await raw.hello({ protocol: PROTOCOL, runId: RUN_ID, clientKey: alice.publicKey, clientNonce });
    const transcript = handshakeTranscript({ runId: RUN_ID, clientKey: alice.publicKey, serverKey: server.identity.publicKey, clientNonce, serverNonce: hello.serverNonce });
    const finish = { serverNonce: hello.serverNonce, clientSignature: signTranscript(alice, 'client', transcript) };
    await raw.finish(finish);
    expect((await refusal(raw.finish(finish))).reason).toBe('Replay');
  });

  it('refuses an oversized body and an oversized request: TooLarge', async () => {
    const s = await session();
    const bigBody = await refusal(raw.getStatus({ envelope: s.seal({ note: 'x'.repeat(Limits.bodyBytes + 1) }) }));
    expect(bigBody.reason).toBe('TooLarge');
    expect(bigBody.code).toBe(status.RESOURCE_EXHAUSTED);
    const bigRequest = await refusal(raw.hello({ protocol: PROTOCOL, runId: RUN_ID, clientKey: Buffer.alloc(Limits.unaryMessageBytes + 1) }));
    expect(bigRequest.reason).toBe('TooLarge');
  });

  it('refuses a message that does not decode or has the wrong shape: Malformed', async () => {
    const short = await refusal(raw.hello({ protocol: PROTOCOL, runId: RUN_ID, clientKey: alice.publicKey, clientNonce: Buffer.alloc(3) }));
    expect(short.reason).toBe('Malformed');
    expect(short.code).toBe(status.INVALID_ARGUMENT);
    expect(short.message).toMatch(/client nonce must be 32 bytes, got 3/);
    const noEnvelope = await refusal(raw.getStatus({}));
    expect(noEnvelope.reason).toBe('Malformed');
  });

  it('refuses a session the server does not know: UnknownSession', async () => {
    const s = await session();
    const fresh = await startServer([alice]);
    try {
      // The envelope's session was made with the first server: the second one does not know it.
      const other = createClient(FederationService, fresh.address);
      const error = await refusal(other.getStatus({ envelope: s.seal() }));
      other.close();
      expect(error.reason).toBe('UnknownSession');
    } finally {
      await fresh.close();
    }
  });

  it('counts every refusal in concord_rejected_messages_total by reason', async () => {
    const counts = await server.rejected();
    for (const reason of ['UnknownPeer', 'BadSignature', 'WrongRun', 'StaleRound', 'Replay', 'TooLarge', 'Malformed']) {
      expect(counts[reason]).toBeGreaterThanOrEqual(1);
    }
  });

  it('checks the server too: a client refuses a server that holds another key', async () => {
    const client = connect(server, alice, { serverKey: generateIdentity().publicKey });
    const error = await refusal(client.handshake());
    client.close();
    expect(error.reason).toBe('UnknownPeer');
    expect(error.message).toMatch(/presented key/);
  });

  it('streams a contribution by hash and refuses one larger than the limit', async () => {
    const payload = Buffer.alloc(3 * 1024 * 1024 + 5, 9);
    const hash = server.contributions.put(payload);
    const client = connect(server, alice);
    expect((await client.fetchContribution(hash, payload.length)).equals(payload)).toBe(true);
    const error = await refusal(client.fetchContribution(hash, 1024));
    expect(error.reason).toBe('TooLarge');
    const missing = await refusal(client.fetchContribution(Buffer.alloc(32), 1024));
    expect(missing.code).toBe(status.NOT_FOUND);
    client.close();
  });

  it('shares one handshake between concurrent first calls, and their sequence numbers never collide', async () => {
    const own = await startServer([alice]);
    const client = connect(own, alice);
    try {
      const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => client.status(`call ${i}`)));
      expect(new Set(replies.map((r) => r.sequence)).size).toBe(20);
      expect(await countsOf(own.registry, 'concord_handshakes_total', 'role')).toEqual({ server: 1 });
      expect(own.accepted).toHaveLength(20);
    } finally {
      client.close();
      await own.close();
    }
  });

  it('resumes a transfer from an offset inside a chunk', async () => {
    const payload = Buffer.from(Array.from({ length: 9 * 1024 * 1024 + 17 }, (_, i) => (i * 7) % 256));
    const payloadHash = server.contributions.put(payload);
    const client = connect(server, alice);
    const sessionId = await client.handshake();
    client.close();
    const envelope = sealEnvelope(alice, {
      runId: RUN_ID, round: 4n, schema: ContributionQuerySchema, body: { payloadHash, offset: 5_000_000n }, session: { id: sessionId, sequence: 1n },
    });
    const parts: Buffer[] = [];
    const offsets: bigint[] = [];
    for await (const chunk of raw.fetchContribution({ envelope })) {
      offsets.push(chunk.offset);
      parts.push(Buffer.from(chunk.data));
    }
    // The rest of the first 4 MiB chunk, then whole chunks from the shared encoding.
    expect(offsets).toEqual([5_000_000n, 8n * 1024n * 1024n]);
    expect(Buffer.concat(parts).equals(payload.subarray(5_000_000))).toBe(true);
  });

  it('re-handshakes transparently after the server forgot the session', async () => {
    // The session table's clock is the test's: the session goes idle when the test says so, not
    // after some milliseconds that a loaded machine could spend inside the first call already.
    let now = 0;
    const own = await startServer([alice], { sessions: { idleTimeoutMs: 60_000, now: () => now } });
    const client = connect(own, alice);
    try {
      await client.status();
      now += 60_001;
      const reply = await client.status();
      expect(reply.status.phase).toBe('Training');
      expect(await own.rejected()).toEqual({ UnknownSession: 1 });
    } finally {
      client.close();
      await own.close();
    }
  });

});
