import { describe, expect, it } from '@jest/globals';
import { generateIdentity } from '../../operator/src/federation/identity.js';
import { PeerDirectory } from '../../operator/src/federation/peers.js';
import { acceptedUntil, decisionTime, faultsTolerated, signRelay, validRelays } from '../../operator/src/rounds/acceptance.js';

const RUN = 'run-a';
const [signer, relayer1, relayer2, outsider] = [generateIdentity(), generateIdentity(), generateIdentity(), generateIdentity()];
const members = new PeerDirectory([signer, relayer1, relayer2].map((identity, i) => ({ name: `m${i}`, publicKey: identity.publicKey })));
const hash = Buffer.alloc(32, 9);
const context = { runId: RUN, round: 5n, statementHash: hash, signer: signer.publicKey, keyFor: members.keyFor };

describe('relay signatures', () => {
  it('count once per member other than the signer, when they verify for this run, round and manifest', () => {
    const good = [signRelay(relayer1, RUN, 5n, hash), signRelay(relayer2, RUN, 5n, hash)];
    expect(validRelays(good, context)).toHaveLength(2);
    // The same relayer twice counts once; the signer vouching for itself does not count.
    expect(validRelays([good[0]!, good[0]!, signRelay(signer, RUN, 5n, hash)], context)).toHaveLength(1);
  });

  it('drop what does not verify, without refusing the rest', () => {
    const good = signRelay(relayer1, RUN, 5n, hash);
    const otherRound = signRelay(relayer2, RUN, 6n, hash);
    const otherRun = signRelay(relayer2, 'run-b', 5n, hash);
    const otherManifest = signRelay(relayer2, RUN, 5n, Buffer.alloc(32, 1));
    const notMember = signRelay(outsider, RUN, 5n, hash);
    const truncated = { relayer: relayer2.publicKey.subarray(0, 31), signature: good.signature };
    const forged = { relayer: relayer2.publicKey, signature: good.signature };
    const kept = validRelays([otherRound, otherRun, otherManifest, notMember, truncated, forged, good], context);
    expect(kept.map((r) => Buffer.from(r.relayer).toString('hex'))).toEqual([relayer1.publicKey.toString('hex')]);
  });
});

describe('acceptance windows', () => {
  const windows = { manifestDeadlineMs: 10_000, deliveryBoundMs: 500, voters: 5 };

  it('give a manifest one delivery bound past the deadline, and one more per relay signature', () => {
    expect(acceptedUntil(windows, 0)).toBe(10_500);
    expect(acceptedUntil(windows, 1)).toBe(11_000);
    expect(acceptedUntil(windows, 3)).toBe(12_000);
  });

  it('end, for a round still missing manifests, when a chain of f + 1 signers has had its window', () => {
    expect([1, 2, 3, 4, 5, 6, 7].map(faultsTolerated)).toEqual([0, 0, 1, 1, 2, 2, 3]);
    // Five voters tolerate two dishonest: signer + two relayers, until the deadline + 3 Δ.
    expect(decisionTime(windows)).toBe(11_500);
    expect(decisionTime({ ...windows, voters: 2 })).toBe(10_500);
  });
});
