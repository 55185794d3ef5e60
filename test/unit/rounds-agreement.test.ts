import { describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { create } from '@bufbuild/protobuf';
import { ContributionHeaderSchema, ManifestSchema, type Manifest } from '../../proto/gen/concord/v1/federation_pb.js';
import { sealEnvelope } from '../../operator/src/federation/envelope.js';
import { generateIdentity, type Identity } from '../../operator/src/federation/identity.js';
import { PeerDirectory } from '../../operator/src/federation/peers.js';
import { agree, buildManifest, checkManifest, medianPpm, type AcceptedContribution, type SignedManifest } from '../../operator/src/rounds/agreement.js';
import { verifyEquivocationEvidence } from '../../operator/src/rounds/equivocation.js';
import { seededRandom } from '../../trainer/src/random.js';

const RUN = 'ns/run';
const ROUND = 9n;
const peers = Array.from({ length: 5 }, () => generateIdentity());
const outsider = generateIdentity();
const directory = new PeerDirectory(peers.map((p, i) => ({ name: `p${i}`, publicKey: p.publicKey })));
// Receivers in these tests know the outsider's key too, so that `agree` sees its manifest.
const everyone = new PeerDirectory([...peers, outsider].map((p, i) => ({ name: `k${i}`, publicKey: p.publicKey })));
const ids = (count: number) => peers.slice(0, count).map((p) => p.peerId);
const payload = (name: string) => createHash('sha256').update(`payload ${name}`).digest();

/** Peer `by`'s signed header committing to payload `name` (what a manifest entry carries). */
const header = (name: string, by: number, tokens = 1000n) => sealEnvelope(peers[by]!, {
  runId: RUN, round: ROUND, schema: ContributionHeaderSchema,
  body: { runId: RUN, round: ROUND, baseHash: Buffer.alloc(32, 1), tokens, payloadHash: payload(name), payloadBytes: 100n },
});
/** Contribution `name` by peer `by`, scored `ppm`. */
const entry = (name: string, by: number, ppm = 1_000_000, tokens = 1000n): AcceptedContribution => ({ payloadHash: payload(name), contributor: peers[by]!.publicKey, scorePpm: ppm, header: header(name, by, tokens) });

/** A manifest signed by `signer`, opened and checked as a receiver would. */
function signed(signer: Identity, entries: AcceptedContribution[] | Manifest, options: { runId?: string; round?: bigint } = {}): SignedManifest {
  const runId = options.runId ?? RUN;
  const round = options.round ?? ROUND;
  const manifest = Array.isArray(entries) ? buildManifest(runId, round, entries) : entries;
  const envelope = sealEnvelope(signer, { runId, round, schema: ManifestSchema, body: manifest });
  const check = checkManifest(envelope, { runId, round, keyFor: everyone.keyFor });
  if (!check.ok) throw new Error(`${check.reason}: ${check.detail}`);
  return check;
}

const options = { runId: RUN, round: ROUND, keyFor: everyone.keyFor };
const names = (result: ReturnType<typeof agree>) => result.accepted.map((c) => c.payloadHash.toString('hex')).map((hex) => ['a', 'b', 'c', 'd', 'e', 'x', 'y'].find((n) => payload(n).toString('hex') === hex));

describe('building a manifest', () => {
  it('sorts the entries by payload hash', () => {
    const manifest = buildManifest(RUN, ROUND, [entry('a', 0), entry('b', 1), entry('c', 2), entry('d', 3)]);
    const hashes = manifest.entries.map((e) => Buffer.from(e.payloadHash));
    expect(hashes).toEqual([...hashes].sort(Buffer.compare));
    expect(manifest.runId).toBe(RUN);
    expect(manifest.round).toBe(ROUND);
  });

  it('refuses what a coordinator must never sign', () => {
    expect(() => buildManifest(RUN, ROUND, [entry('a', 0, 0)])).toThrow(/1 to 1000000/);
    expect(() => buildManifest(RUN, ROUND, [entry('a', 0, 1_000_001)])).toThrow(/1 to 1000000/);
    expect(() => buildManifest(RUN, ROUND, [entry('a', 0, 0.5)])).toThrow(/integer/);
    expect(() => buildManifest(RUN, ROUND, [entry('a', 0), entry('a', 1)])).toThrow(/twice/);
    expect(() => buildManifest(RUN, ROUND, [{ ...entry('a', 0), payloadHash: Buffer.alloc(16) }])).toThrow(/32 bytes/);
    expect(() => buildManifest(RUN, ROUND, [{ ...entry('a', 0), contributor: Buffer.alloc(33) }])).toThrow(/32-byte key/);
    expect(() => buildManifest(RUN, ROUND, Array.from({ length: 1025 }, (_, i) => entry(`n${i}`, 0)))).toThrow(/1024/);
  });
});

describe('checking a received manifest', () => {
  const expected = { runId: RUN, round: ROUND, keyFor: directory.keyFor };
  const seal = (signer: Identity, body: Manifest, runId = RUN, round = ROUND) => sealEnvelope(signer, { runId, round, schema: ManifestSchema, body });
  const reasonOf = (envelope: ReturnType<typeof seal>) => {
    const check = checkManifest(envelope, expected);
    return check.ok ? 'accepted' : check.reason;
  };
  const good = buildManifest(RUN, ROUND, [entry('a', 0), entry('b', 1)]);

  it('names the reason for each bad manifest', () => {
    expect(reasonOf(seal(peers[0]!, good))).toBe('accepted');
    expect(reasonOf(seal(outsider, good))).toBe('UnknownPeer');
    const envelope = seal(peers[0]!, good);
    expect(reasonOf({ ...envelope, signature: Buffer.alloc(64, 3) })).toBe('BadSignature');
    expect(reasonOf(seal(peers[0]!, buildManifest('ns/other', ROUND, []), 'ns/other'))).toBe('WrongRun');
    expect(reasonOf(seal(peers[0]!, buildManifest(RUN, ROUND - 1n, []), RUN, ROUND - 1n))).toBe('WrongRound');
    expect(reasonOf(seal(peers[0]!, buildManifest(RUN, ROUND - 1n, []), RUN, ROUND))).toBe('Malformed');
    const unsorted = create(ManifestSchema, { runId: RUN, round: ROUND, entries: [...good.entries].reverse() });
    expect(reasonOf(seal(peers[0]!, unsorted))).toBe('Malformed');
    const twice = create(ManifestSchema, { runId: RUN, round: ROUND, entries: [good.entries[0]!, good.entries[0]!] });
    expect(reasonOf(seal(peers[0]!, twice))).toBe('Malformed');
    const overScore = create(ManifestSchema, { runId: RUN, round: ROUND, entries: [{ ...good.entries[0]!, scorePpm: 1_000_001 }] });
    expect(reasonOf(seal(peers[0]!, overScore))).toBe('Malformed');
    const shortKey = create(ManifestSchema, { runId: RUN, round: ROUND, entries: [{ ...good.entries[0]!, contributor: new Uint8Array(31) }] });
    expect(reasonOf(seal(peers[0]!, shortKey))).toBe('Malformed');
    const tooMany = create(ManifestSchema, { runId: RUN, round: ROUND, entries: Array.from({ length: 1025 }, (_, i) => ({ payloadHash: payload(`n${String(i).padStart(5, '0')}`), contributor: peers[0]!.publicKey, scorePpm: 1 })) });
    expect(reasonOf(seal(peers[0]!, tooMany))).toBe('TooLarge');
  });
});

describe('agreeing on the round', () => {
  it('takes a contribution iff more than half of the active peers include it: exactly half is not enough', () => {
    // 4 active peers: 2 manifests of 4 are exactly half.
    const four = agree([
      signed(peers[0]!, [entry('a', 0), entry('b', 1), entry('c', 2)]),
      signed(peers[1]!, [entry('a', 0), entry('b', 1), entry('c', 2)]),
      signed(peers[2]!, [entry('a', 0), entry('b', 1)]),
      signed(peers[3]!, [entry('a', 0)]),
    ], ids(4), options);
    expect(four.needed).toBe(3);
    expect(names(four)).toEqual(expect.arrayContaining(['a', 'b']));
    expect(names(four)).toHaveLength(2);
    expect(four.accepted.find((c) => c.contributor.equals(peers[0]!.publicKey))?.votes).toBe(4);
    // 3 active peers: 2 of 3 is a majority.
    const three = agree([signed(peers[0]!, [entry('a', 0)]), signed(peers[1]!, [entry('a', 0), entry('b', 1)]), signed(peers[2]!, [entry('b', 1)])], ids(3), options);
    expect(names(three).sort()).toEqual(['a', 'b']);
    // 2 active peers: 1 of 2 is not.
    expect(agree([signed(peers[0]!, [entry('a', 0)])], ids(2), options).accepted).toEqual([]);
    expect(agree([signed(peers[0]!, [entry('a', 0)]), signed(peers[1]!, [entry('a', 0)])], ids(2), options).accepted).toHaveLength(1);
    // Silence counts as not including: 2 manifests of 4 active peers, both including, are not enough.
    expect(agree([signed(peers[0]!, [entry('a', 0)]), signed(peers[1]!, [entry('a', 0)])], ids(4), options).accepted).toEqual([]);
    // Nobody active: nothing.
    expect(agree([signed(peers[0]!, [entry('a', 0)])], [], options)).toMatchObject({ accepted: [], active: 0, needed: 1 });
  });

  it('combines scores as the median over all active peers, 0 for those not including it, in integer ppm', () => {
    const result = agree([
      signed(peers[0]!, [entry('a', 0, 900_000), entry('b', 1, 1_000_000)]),
      signed(peers[1]!, [entry('a', 0, 800_000), entry('b', 1, 500_001)]),
      signed(peers[2]!, [entry('a', 0, 100_000)]),
      signed(peers[3]!, [entry('a', 0, 1_000_000), entry('b', 1, 700_000)]),
      signed(peers[4]!, [entry('b', 1, 300_000)]),
    ], ids(5), options);
    const a = result.accepted.find((c) => c.payloadHash.equals(payload('a')))!;
    const b = result.accepted.find((c) => c.payloadHash.equals(payload('b')))!;
    expect(a.scorePpm).toBe(800_000); // the middle of [0, 100000, 800000, 900000, 1000000]
    expect(b.scorePpm).toBe(500_001); // the middle of [0, 300000, 500001, 700000, 1000000]
    expect(b.score).toBe(0.500001);
    expect(medianPpm([3, 1, 2])).toBe(2);
    expect(medianPpm([1, 2])).toBe(1);
  });

  it('does not let colluders who vote 1.0 for each other lift a score past the honest votes (score stuffing)', () => {
    // Five active peers: 3 and 4 collude and vote 1.0 for 3's contribution; of the honest ones,
    // only 0 includes it (score 0.32), 1 and 2 do not. Median over the five: 0.32, not 0.66.
    const result = agree([
      signed(peers[0]!, [entry('x', 3, 320_000)]),
      signed(peers[1]!, []),
      signed(peers[2]!, []),
      signed(peers[3]!, [entry('x', 3, 1_000_000)]),
      signed(peers[4]!, [entry('x', 3, 1_000_000)]),
    ], ids(5), options);
    expect(result.accepted).toHaveLength(1);
    expect(result.accepted[0]!.scorePpm).toBe(320_000);
    // With 0 silent instead, the colluders' two votes are not a majority of five.
    expect(agree([signed(peers[3]!, [entry('x', 3, 1_000_000)]), signed(peers[4]!, [entry('x', 3, 1_000_000)])], ids(5), options).accepted).toEqual([]);
  });

  it('gives the same result for the same manifests in any order, copies included', () => {
    const manifests = [
      signed(peers[0]!, [entry('a', 0, 910_000), entry('b', 1, 820_000), entry('c', 2, 730_000)]),
      signed(peers[1]!, [entry('a', 0, 640_000), entry('b', 1, 550_000), entry('d', 3, 460_000)]),
      signed(peers[2]!, [entry('a', 0, 370_000), entry('c', 2, 280_000), entry('d', 3, 190_000)]),
      signed(peers[3]!, [entry('b', 1, 100_000), entry('c', 2, 1_000_000), entry('d', 3, 1)]),
      signed(peers[4]!, [entry('x', 4, 1), entry('a', 0, 123_456)]),
      signed(outsider, [entry('x', 4, 1)]),
      signed(peers[2]!, [entry('a', 0, 1)], { round: ROUND - 1n }),
    ];
    const expected = agree(manifests, ids(5), options);
    expect(expected.accepted.length).toBe(4);
    expect(expected.accepted.map((c) => c.peerId)).toEqual([...expected.accepted.map((c) => c.peerId)].sort());
    const random = seededRandom(99);
    for (let trial = 0; trial < 25; trial++) {
      const shuffled = [...manifests, manifests[trial % manifests.length]!].sort(() => random() - 0.5);
      const active = [...ids(5)].sort(() => random() - 0.5);
      expect(agree(shuffled, active, options)).toEqual(expected);
    }
  });

  it('refuses manifests for another run or round, from inactive signers, or malformed, and says why', () => {
    const unsorted = create(ManifestSchema, { runId: RUN, round: ROUND, entries: [...buildManifest(RUN, ROUND, [entry('a', 0), entry('b', 1)]).entries].reverse() });
    const result = agree([
      signed(peers[0]!, [entry('a', 0)], { runId: 'ns/other' }),
      signed(peers[1]!, [entry('a', 0)], { round: ROUND + 1n }),
      signed(peers[4]!, [entry('a', 0)]),
      { signer: peers[2]!.publicKey, manifest: unsorted },
      signed(peers[3]!, [entry('a', 0)]),
    ], ids(4), options);
    expect(result.refused.map(({ peerId, reason }) => ({ peerId, reason }))).toEqual([
      { peerId: peers[0]!.peerId, reason: 'WrongRun' },
      { peerId: peers[1]!.peerId, reason: 'WrongRound' },
      { peerId: peers[2]!.peerId, reason: 'Malformed' },
      { peerId: peers[4]!.peerId, reason: 'NotActive' },
    ].sort((x, y) => (x.peerId < y.peerId ? -1 : 1)));
    // Only peer 3's manifest counts: 1 of 4.
    expect(result.accepted).toEqual([]);
  });

  it('discards both manifests of a signer that signed two, and returns the proof', () => {
    const honest = [signed(peers[0]!, [entry('a', 0)]), signed(peers[1]!, [entry('a', 0)])];
    const first = signed(peers[3]!, [entry('a', 0)]);
    const second = signed(peers[3]!, [entry('a', 0), entry('y', 3)]);
    const result = agree([...honest, first, second, first], ids(4), options);
    // Without peer 3, 'a' has 2 of 4 votes.
    expect(result.accepted).toEqual([]);
    expect(result.refused).toHaveLength(1);
    const [refusal] = result.refused;
    expect(refusal).toMatchObject({ peerId: peers[3]!.peerId, reason: 'Equivocation' });
    expect(verifyEquivocationEvidence(refusal!.evidence!, peers[3]!.publicKey).ok).toBe(true);
    // The same manifest received twice is one manifest.
    expect(agree([...honest, first, first], ids(4), options).accepted).toHaveLength(1);
  });

  it('applies nothing of a contributor whose two signed headers meet in the manifests', () => {
    // 5 peers; peer 4 sent payload x to peer 0 and payload y to peer 1. Neither honest peer saw
    // both, but their manifests carry the signed headers: together they prove the equivocation.
    const result = agree([
      signed(peers[0]!, [entry('a', 0), entry('x', 4)]),
      signed(peers[1]!, [entry('a', 0), entry('y', 4)]),
      signed(peers[2]!, [entry('a', 0), entry('y', 4)]),
      signed(peers[3]!, [entry('a', 0), entry('y', 4)]),
    ], ids(5), options);
    expect(names(result)).toEqual(['a']);
    expect(result.conflicts.map((c) => c.peerId)).toEqual([peers[4]!.peerId]);
    expect(verifyEquivocationEvidence(result.conflicts[0]!.evidence, peers[4]!.publicKey).ok).toBe(true);
  });

  it('applies nothing of a contributor proven to equivocate by one manifest, and refuses a false proof', () => {
    // Peer 0 saw both of peer 4's headers and left it out, attaching the proof; the others saw y.
    const proof = [header('x', 4), header('y', 4)] as const;
    const withProof = (by: number, proofs: ReadonlyArray<readonly [ReturnType<typeof header>, ReturnType<typeof header>]>) => {
      const manifest = buildManifest(RUN, ROUND, [entry('a', 0)], proofs);
      const envelope = sealEnvelope(peers[by]!, { runId: RUN, round: ROUND, schema: ManifestSchema, body: manifest });
      const check = checkManifest(envelope, { runId: RUN, round: ROUND, keyFor: everyone.keyFor });
      if (!check.ok) throw new Error(check.detail);
      return check;
    };
    const others = [1, 2, 3].map((i) => signed(peers[i]!, [entry('a', 0), entry('y', 4)]));
    const result = agree([withProof(0, [proof]), ...others], ids(5), options);
    expect(names(result)).toEqual(['a']);
    expect(result.conflicts.map((c) => c.peerId)).toEqual([peers[4]!.peerId]);
    // A "proof" that two identical headers differ accuses nobody: that manifest is refused.
    const forged = agree([withProof(0, [[header('y', 4), header('y', 4)]]), ...others], ids(5), options);
    expect(forged.conflicts).toEqual([]);
    expect(forged.refused).toEqual([expect.objectContaining({ peerId: peers[0]!.peerId, reason: 'Malformed', detail: expect.stringMatching(/equivocation proof 0: statements say the same thing/) })]);
    expect(names(forged).sort()).toEqual(['a', 'y']);
  });

  it('refuses a manifest whose entry carries a header that is not the contributor\'s for that payload', () => {
    const wrongSigner = { ...entry('b', 1), header: header('b', 2) };
    const wrongPayload = { ...entry('c', 1), header: header('d', 1) };
    for (const bad of [wrongSigner, wrongPayload]) {
      const result = agree([signed(peers[0]!, [entry('a', 0), bad]), signed(peers[1]!, [entry('a', 0)])], ids(3), options);
      expect(result.refused).toEqual([expect.objectContaining({ peerId: peers[0]!.peerId, reason: 'Malformed' })]);
    }
    // Tokens come from the signed header.
    expect(agree([signed(peers[0]!, [entry('a', 0, 1_000_000, 777n)]), signed(peers[1]!, [entry('a', 0, 1_000_000, 777n)])], ids(3), options).accepted[0]!.tokens).toBe(777n);
  });

  it('leaves out a contribution whose combined score is 0', () => {
    const zero = create(ManifestSchema, { runId: RUN, round: ROUND, entries: [{ payloadHash: payload('a'), contributor: peers[0]!.publicKey, scorePpm: 0, header: header('a', 0) }] });
    const result = agree([
      { signer: peers[0]!.publicKey, manifest: zero }, { signer: peers[1]!.publicKey, manifest: zero },
      signed(peers[2]!, [entry('a', 0, 5)]),
    ], ids(3), options);
    expect(result.accepted).toEqual([]);
  });
});
