import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import { EnvelopeSchema } from '../../proto/gen/concord/v1/envelope_pb.js';
import {
  ContributionQuerySchema, FetchContributionRequestSchema, FinishRequestSchema, GetStatusRequestSchema, HelloRequestSchema, HelloResponseSchema, StatusQuerySchema,
} from '../../proto/gen/concord/v1/federation_pb.js';
import { fromServiceError } from '../../proto/grpc/index.js';
import { sealEnvelope } from '../../operator/src/federation/envelope.js';
import { freshNonce, handshakeTranscript, signTranscript } from '../../operator/src/federation/handshake.js';
import { generateIdentity } from '../../operator/src/federation/identity.js';
import { PROTOCOL } from '../../operator/src/federation/limits.js';
import { REFUSAL_REASONS } from '../../operator/src/federation/refusal.js';
import { connect, RUN_ID, startServer, type TestServer } from '../support/federation.js';

const CASES = 10_000;
const SEED = 20261125;
const SERVICE = '/concord.v1.FederationService';

/** A small deterministic PRNG (mulberry32), so a failure can be reproduced from the seed. */
function prng(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  const int = (n: number) => Math.floor(next() * n);
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));
  return { next, int, bytes };
}

type Random = ReturnType<typeof prng>;

/** One random change to a byte string: flip, overwrite, insert, delete, truncate, extend, splice. */
function mutate(random: Random, input: Uint8Array): Buffer {
  const bytes = Buffer.from(input);
  const at = random.int(Math.max(bytes.length, 1));
  switch (random.int(8)) {
    case 0: if (bytes.length) bytes[at]! ^= 1 << random.int(8); return bytes;
    case 1: if (bytes.length) bytes[at] = random.int(256); return bytes;
    case 2: return Buffer.concat([bytes.subarray(0, at), random.bytes(1 + random.int(8)), bytes.subarray(at)]);
    case 3: return Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1 + random.int(4))]);
    case 4: return bytes.subarray(0, at);
    case 5: return Buffer.concat([bytes, random.bytes(1 + random.int(16))]);
    case 6: return Buffer.concat([bytes.subarray(0, at), bytes.subarray(random.int(bytes.length + 1))]);
    default: {
      for (let i = 0, n = 1 + random.int(4); i < n && bytes.length; i++) bytes[random.int(bytes.length)] = random.int(256);
      return bytes;
    }
  }
}

describe('fuzzing the federation endpoint over real gRPC', () => {
  const alice = generateIdentity();
  const impostor = generateIdentity();
  let server: TestServer;
  let client: grpc.Client;
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);

  beforeAll(async () => {
    process.on('unhandledRejection', onUnhandled);
    server = await startServer([alice]);
    client = new grpc.Client(server.address, grpc.credentials.createInsecure());
  });
  afterAll(async () => {
    process.off('unhandledRejection', onUnhandled);
    client.close();
    await server.close();
  });

  /** Sends raw bytes to a method, as any client on the network could, and returns the outcome. */
  function send(method: string, bytes: Buffer, streaming: boolean): Promise<{ ok: true } | { ok: false; reason: string | undefined; code: number }> {
    const identity = (b: Buffer) => b;
    const path = `${SERVICE}/${method}`;
    return new Promise((resolve) => {
      const fail = (error: unknown) => {
        const e = fromServiceError(error);
        resolve({ ok: false, reason: e.reason, code: e.code });
      };
      if (!streaming) {
        client.makeUnaryRequest(path, identity, identity, bytes, (error) => (error ? fail(error) : resolve({ ok: true })));
      } else {
        const call = client.makeServerStreamRequest(path, identity, identity, bytes);
        call.on('data', () => undefined);
        call.on('error', fail);
        call.on('end', () => resolve({ ok: true }));
      }
    });
  }

  it(`refuses ${CASES} random and mutated envelopes and handshake messages, each with a reason, and keeps serving`, async () => {
    const random = prng(SEED);

    // Valid originals, each used once first: after that, any copy is a replay and any change
    // breaks a signature or a shape, so every fuzzed message must be refused.
    const setup = connect(server, alice);
    const sessionId = await setup.handshake();
    setup.close();
    let sequence = 0n;
    const seal = (schema: typeof StatusQuerySchema | typeof ContributionQuerySchema, body: object) =>
      sealEnvelope(alice, { runId: RUN_ID, round: 4n, schema, body: body as never, session: { id: sessionId, sequence: ++sequence } });
    const payloadHash = server.contributions.put(Buffer.alloc(1000, 1));
    const statusRequest = Buffer.from(toBinary(GetStatusRequestSchema, create(GetStatusRequestSchema, { envelope: seal(StatusQuerySchema, { note: 'seed' }) })));
    const fetchRequest = Buffer.from(toBinary(FetchContributionRequestSchema, create(FetchContributionRequestSchema, { envelope: seal(ContributionQuerySchema, { payloadHash }) })));
    expect(await send('GetStatus', statusRequest, false)).toEqual({ ok: true });
    expect(await send('FetchContribution', fetchRequest, true)).toEqual({ ok: true });

    const clientNonce = freshNonce();
    const impostorHello = Buffer.from(toBinary(HelloRequestSchema, create(HelloRequestSchema, { protocol: PROTOCOL, runId: RUN_ID, clientKey: impostor.publicKey, clientNonce })));
    const aliceHello = create(HelloRequestSchema, { protocol: PROTOCOL, runId: RUN_ID, clientKey: alice.publicKey, clientNonce });
    const hello = await new Promise<Buffer>((resolve, reject) =>
      client.makeUnaryRequest(`${SERVICE}/Hello`, (b: Buffer) => b, (b: Buffer) => b, Buffer.from(toBinary(HelloRequestSchema, aliceHello)), (e, r) => (e ? reject(e) : resolve(r!))));
    const { serverNonce } = fromBinary(HelloResponseSchema, hello);
    const transcript = handshakeTranscript({ runId: RUN_ID, clientKey: alice.publicKey, serverKey: server.identity.publicKey, clientNonce, serverNonce });
    const finishRequest = Buffer.from(toBinary(FinishRequestSchema, create(FinishRequestSchema, { serverNonce, clientSignature: signTranscript(alice, 'client', transcript) })));
    expect(await send('Finish', finishRequest, false)).toEqual({ ok: true });

    const seeds: Array<{ method: string; bytes: Buffer; streaming: boolean }> = [
      { method: 'GetStatus', bytes: statusRequest, streaming: false },
      { method: 'FetchContribution', bytes: fetchRequest, streaming: true },
      { method: 'Finish', bytes: finishRequest, streaming: false },
      { method: 'Hello', bytes: impostorHello, streaming: false },
    ];
    const methods = ['Hello', 'Finish', 'GetStatus', 'Announce', 'FetchContribution', 'ExchangeManifest', 'FetchCheckpoint'];
    const streamingMethods = new Set(['FetchContribution', 'FetchCheckpoint']);

    const refusedBefore = Object.values(await server.rejected()).reduce((a, b) => a + b, 0);
    const outcomes = new Map<string, number>();
    const accepted: string[] = [];
    let done = 0;
    const makeCase = (): { method: string; bytes: Buffer; streaming: boolean; what: string } => {
      const kind = random.next();
      if (kind < 0.6) {
        // A mutated valid message, to its own method (a few rounds of mutation).
        const seed = seeds[random.int(seeds.length)]!;
        let bytes = seed.bytes;
        for (let i = 0, n = 1 + random.int(3); i < n; i++) bytes = mutate(random, bytes);
        return { ...seed, bytes, what: `mutated ${seed.method}` };
      }
      const method = methods[random.int(methods.length)]!;
      const streaming = streamingMethods.has(method);
      if (kind < 0.8) {
        // An envelope with random or mutated parts around a real signature.
        const base = create(EnvelopeSchema, { header: mutate(random, random.bytes(random.int(80))), body: random.bytes(random.int(40)), signature: random.int(2) ? random.bytes(64) : random.bytes(random.int(70)) });
        const bytes = Buffer.from(toBinary(GetStatusRequestSchema, create(GetStatusRequestSchema, { envelope: base })));
        return { method, bytes, streaming, what: `random envelope to ${method}` };
      }
      // Plain random bytes, sometimes a seed of another method sent to the wrong one.
      const bytes = random.int(4) === 0 ? seeds[random.int(seeds.length)]!.bytes : random.bytes(random.int(200));
      return { method, bytes, streaming, what: `random bytes to ${method}` };
    };

    const worker = async () => {
      while (done < CASES) {
        done++;
        const fuzz = makeCase();
        const outcome = await send(fuzz.method, fuzz.bytes, fuzz.streaming);
        if (outcome.ok || outcome.reason === undefined || !(REFUSAL_REASONS as readonly string[]).includes(outcome.reason)) {
          accepted.push(`${fuzz.what}: ${JSON.stringify(outcome)} ${fuzz.bytes.toString('hex').slice(0, 200)}`);
        } else {
          outcomes.set(outcome.reason, (outcomes.get(outcome.reason) ?? 0) + 1);
        }
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));

    expect(accepted).toEqual([]);
    // Several different reasons were exercised, not one catch-all.
    expect(outcomes.size).toBeGreaterThanOrEqual(5);
    // Every refusal was counted once by the server.
    const refusedAfter = Object.values(await server.rejected()).reduce((a, b) => a + b, 0);
    expect(refusedAfter - refusedBefore).toBe(CASES);
    // Still serving: an honest peer gets through.
    const honest = connect(server, alice);
    expect((await honest.status('after the storm')).status.phase).toBe('Training');
    honest.close();
    expect(unhandled).toEqual([]);
  });
});
