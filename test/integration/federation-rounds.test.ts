import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { create, fromBinary } from '@bufbuild/protobuf';
import { status } from '@grpc/grpc-js';
import type { Envelope } from '../../proto/gen/concord/v1/envelope_pb.js';
import { ContributionHeaderSchema, ManifestSchema, RelayedManifestSchema, type RelayedManifest } from '../../proto/gen/concord/v1/federation_pb.js';
import { RpcError } from '../../proto/grpc/index.js';
import { sha256 } from '../../operator/src/federation/blob-store.js';
import { sealEnvelope } from '../../operator/src/federation/envelope.js';
import { generateIdentity, type Identity } from '../../operator/src/federation/identity.js';
import { PeerDirectory } from '../../operator/src/federation/peers.js';
import type { RoundMessageSource } from '../../operator/src/federation/server.js';
import { signRelay, validRelays } from '../../operator/src/rounds/acceptance.js';
import { buildManifest, checkManifest } from '../../operator/src/rounds/agreement.js';
import { statementHash } from '../../operator/src/rounds/contribution.js';
import { connect, RUN_ID, startServer, type TestServer } from '../support/federation.js';

function contribution(author: Identity, payload: string): Envelope {
  const bytes = Buffer.from(payload);
  return sealEnvelope(author, {
    runId: RUN_ID, round: 4n, schema: ContributionHeaderSchema,
    body: { runId: RUN_ID, round: 4n, baseHash: Buffer.alloc(32, 1), tokens: 100n, payloadHash: sha256(bytes), payloadBytes: BigInt(bytes.length) },
  });
}

// Announce and ExchangeManifest over real gRPC: the server authenticates them and hands them to
// the round driver (here a small one that records what it got).
describe('round messages between coordinators', () => {
  const alice = generateIdentity();
  const bob = generateIdentity();
  const received: Array<{ statements: number; from: RoundMessageSource }> = [];
  let manifests: RelayedManifest[] = [];
  let server: TestServer;
  let ourManifest: Envelope | undefined;

  beforeAll(async () => {
    server = await startServer([alice, bob], {
      rounds: {
        // Wants every payload it has not stored yet.
        announced: (statements, from) => {
          received.push({ statements: statements.length, from });
          return statements.map((s) => fromBinary(ContributionHeaderSchema, s.body).payloadHash).filter((h) => !server.contributions.get(h));
        },
        manifestReceived: (manifest) => {
          manifests.push(manifest);
          return ourManifest === undefined ? [] : [create(RelayedManifestSchema, { manifest: ourManifest, relays: [] }), manifest];
        },
      },
    });
  });
  afterAll(async () => server.close());

  it('takes announcements of own and relayed contributions and answers with the payloads it wants', async () => {
    const client = connect(server, alice);
    const held = contribution(bob, 'held by the server');
    server.contributions.put(Buffer.from('held by the server'));
    const fresh = contribution(alice, 'new to the server');
    const wanted = await client.announce([fresh, held]);
    client.close();
    expect(wanted.map((h) => Buffer.from(h).toString('hex'))).toEqual([sha256(Buffer.from('new to the server')).toString('hex')]);
    expect(received.at(-1)).toMatchObject({ statements: 2, from: { peerName: 'peer-0', round: 4n } });
  });

  it('exchanges manifests: ours goes over, the ones the server holds come back verifiable by their signers and relayers', async () => {
    const statement = sealEnvelope(alice, { runId: RUN_ID, round: 4n, schema: ManifestSchema, body: buildManifest(RUN_ID, 4n, []) });
    const relay = signRelay(bob, RUN_ID, 4n, statementHash(statement));
    const mine = create(RelayedManifestSchema, { manifest: statement, relays: [relay] });
    const client = connect(server, alice);
    ourManifest = undefined;
    manifests = [];
    expect(await client.exchangeManifest(mine)).toEqual([]);
    expect(manifests).toHaveLength(1);
    ourManifest = sealEnvelope(server.identity, {
      runId: RUN_ID, round: 4n, schema: ManifestSchema,
      body: buildManifest(RUN_ID, 4n, [{ payloadHash: Buffer.alloc(32, 7), contributor: alice.publicKey, scorePpm: 900_000, header: contribution(alice, 'seven') }]),
    });
    const [theirs, relayed] = await client.exchangeManifest(mine);
    client.close();
    // The server passes on the manifests it holds: ours came back as sent, relay signature and all.
    expect(relayed).toEqual(mine);
    const keyFor = new PeerDirectory([{ name: 'server', publicKey: server.identity.publicKey }, { name: 'bob', publicKey: bob.publicKey }]).keyFor;
    expect(checkManifest(theirs!.manifest, { runId: RUN_ID, round: 4n, keyFor }).ok).toBe(true);
    expect(validRelays(relayed!.relays, { runId: RUN_ID, round: 4n, statementHash: statementHash(statement), signer: alice.publicKey, keyFor })).toHaveLength(1);
  });

  it('refuses a manifest with more relay signatures than the protocol allows', async () => {
    const statement = sealEnvelope(alice, { runId: RUN_ID, round: 4n, schema: ManifestSchema, body: buildManifest(RUN_ID, 4n, []) });
    const relay = signRelay(bob, RUN_ID, 4n, statementHash(statement));
    const client = connect(server, alice);
    const error = await client.exchangeManifest(create(RelayedManifestSchema, { manifest: statement, relays: Array.from({ length: 65 }, () => relay) })).catch((e: unknown) => e);
    client.close();
    expect((error as RpcError).reason).toBe('TooLarge');
  });

  it('refuses an announcement of too many statements', async () => {
    const client = connect(server, bob);
    const many = Array.from({ length: 257 }, (_, i) => contribution(bob, `payload ${i}`));
    const error = await client.announce(many).catch((e: unknown) => e);
    client.close();
    expect((error as RpcError).reason).toBe('TooLarge');
  });

  it('declines round messages where no round driver runs', async () => {
    const plain = await startServer([alice]);
    const client = connect(plain, alice);
    try {
      const error = (await client.announce([]).catch((e: unknown) => e)) as RpcError;
      expect(error.code).toBe(status.UNIMPLEMENTED);
    } finally {
      client.close();
      await plain.close();
    }
  });
});
