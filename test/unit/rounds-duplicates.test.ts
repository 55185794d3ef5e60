import { describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { findCopies, indexOverlap, type CopyCandidate } from '../../operator/src/rounds/duplicates.js';
import { decodePayload, densify, SparseLoCoEncoder, type SparseUpdate } from '../../trainer/src/codec/index.js';
import { seededRandom } from '../../trainer/src/random.js';

const LENGTH = 1 << 16;
const codec = { chunk: 4096, k: 64, bits: 2 };

function gaussians(seed: number): () => number {
  const random = seededRandom(seed);
  return () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

/** Encodes a dense delta as a peer would (fresh error feedback) and decodes what it sent. */
function send(delta: Float32Array): { bytes: Buffer; update: SparseUpdate } {
  const bytes = Buffer.from(new SparseLoCoEncoder(LENGTH, codec).encode(delta));
  return { bytes, update: decodePayload(bytes, LENGTH) };
}

/**
 * Honest-like pseudo-gradients of peers that train one model from one base on disjoint data:
 * a shared direction plus a peer's own, with shared per-coordinate scales (some parameters move
 * more than others for everyone). Cosine between two peers ≈ `shared`². This is a pessimistic
 * model: real honest updates, with dense cosine 0.62–0.68, overlapped only 0.04–0.16 (see
 * CopyOptions.threshold), because their largest entries are peer-specific.
 */
function honestPeers(count: number, shared: number, seed: number): Float32Array[] {
  const gauss = gaussians(seed);
  const scale = Float32Array.from({ length: LENGTH }, () => Math.exp(0.5 * gauss()));
  const common = Float32Array.from({ length: LENGTH }, () => gauss());
  const own = Math.sqrt(1 - shared * shared);
  return Array.from({ length: count }, () => Float32Array.from({ length: LENGTH }, (_, i) => scale[i]! * (shared * common[i]! + own * gauss())));
}

/** A copier's payload: the victim's decoded update plus Gaussian noise of `relative` × the RMS of its kept values on every position. */
function noisyCopy(victim: SparseUpdate, relative: number, seed: number): { update: SparseUpdate; noiseToSignal: number } {
  const gauss = gaussians(seed);
  let squares = 0;
  for (const v of victim.values) squares += v * v;
  const rms = Math.sqrt(squares / victim.values.length);
  const dense = densify(victim);
  let noise = 0;
  for (let i = 0; i < LENGTH; i++) {
    const n = relative * rms * gauss();
    noise += n * n;
    dense[i]! += n;
  }
  return { update: send(dense).update, noiseToSignal: Math.sqrt(noise / squares) };
}

function cosine(a: Float32Array, b: Float32Array): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i]! * b[i]!;
    aa += a[i]! * a[i]!;
    bb += b[i]! * b[i]!;
  }
  return ab / Math.sqrt(aa * bb);
}

const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest();

describe('index overlap', () => {
  it('is the overlap coefficient of two ascending index sets', () => {
    expect(indexOverlap(Uint32Array.of(1, 2, 3, 4), Uint32Array.of(3, 4, 5, 6))).toBe(0.5);
    expect(indexOverlap(Uint32Array.of(1, 2, 3, 4), Uint32Array.of(1, 2, 3, 4))).toBe(1);
    expect(indexOverlap(Uint32Array.of(1, 2), Uint32Array.of(0, 1, 2, 9))).toBe(1);
    expect(indexOverlap(Uint32Array.of(1, 2), Uint32Array.of(5, 6))).toBe(0);
    expect(indexOverlap(new Uint32Array(0), Uint32Array.of(5, 6))).toBe(0);
  });
});

describe('the near-copy threshold (0.5), measured', () => {
  it('separates honest-like updates from copies with noise, and noise that hides a copy drowns it', () => {
    const [a, b, c] = honestPeers(3, 0.7, 11);
    expect(cosine(a!, b!)).toBeGreaterThan(0.45);
    const [ua, ub, uc] = [send(a!).update, send(b!).update, send(c!).update];
    const honest = [indexOverlap(ua.indices, ub.indices), indexOverlap(ua.indices, uc.indices), indexOverlap(ub.indices, uc.indices)];
    // Chance would be k / chunk = 0.016; correlated honest updates share more, but far below 0.5.
    for (const o of honest) {
      expect(o).toBeGreaterThan(0.1);
      expect(o).toBeLessThan(0.35);
    }
    // A copy with noise of 10% of the kept values' RMS on every position: still above 0.9.
    const light = noisyCopy(ua, 0.1, 12);
    expect(indexOverlap(ua.indices, light.update.indices)).toBeGreaterThan(0.9);
    // Sign-flipped or scaled: the same positions.
    expect(indexOverlap(ua.indices, send(Float32Array.from(a!, (x) => -x)).update.indices)).toBe(1);
    expect(indexOverlap(ua.indices, send(Float32Array.from(a!, (x) => 100 * x)).update.indices)).toBe(1);
    // Below the threshold only with noise of half the RMS everywhere, and that noise is several
    // times the copied update's own norm: what is sent is then mostly noise.
    const heavy = noisyCopy(ua, 0.5, 13);
    expect(indexOverlap(ua.indices, heavy.update.indices)).toBeLessThan(0.5);
    expect(heavy.noiseToSignal).toBeGreaterThan(3);
  });
});

describe('copies among the contributions of a round', () => {
  const [a, b] = honestPeers(2, 0.7, 21);
  const victim = send(a!);
  const other = send(b!);
  const copy = noisyCopy(victim.update, 0.1, 22).update;

  const candidate = (peerId: string, committed: number, payloadHash: Uint8Array, update: SparseUpdate): CopyCandidate => ({ peerId, committed, payloadHash, indices: update.indices });

  it('rejects a re-signed payload as Duplicate and a perturbed copy as NearCopy, naming the original', () => {
    const verdict = findCopies([
      candidate('p-copier', 3, sha(Buffer.from('other bytes')), copy),
      candidate('p-victim', 1, sha(victim.bytes), victim.update),
      candidate('p-resigner', 2, sha(victim.bytes), victim.update),
      candidate('p-honest', 2, sha(other.bytes), other.update),
    ]);
    expect(verdict.kept.map((c) => c.peerId)).toEqual(['p-victim', 'p-honest']);
    expect(verdict.rejected.map(({ peerId, reason, of }) => ({ peerId, reason, of }))).toEqual([
      { peerId: 'p-resigner', reason: 'Duplicate', of: 'p-victim' },
      { peerId: 'p-copier', reason: 'NearCopy', of: 'p-victim' },
    ]);
    expect(verdict.rejected[1]!.overlap).toBeGreaterThan(0.9);
  });

  it('lets the later committer lose, and of two committed together the larger peer id', () => {
    const hash = sha(victim.bytes);
    const early = findCopies([candidate('p-b', 1, hash, victim.update), candidate('p-a', 2, hash, victim.update)]);
    expect(early.kept.map((c) => c.peerId)).toEqual(['p-b']);
    const together = findCopies([candidate('p-b', 1, hash, victim.update), candidate('p-a', 1, hash, victim.update)]);
    expect(together.kept.map((c) => c.peerId)).toEqual(['p-a']);
    expect(together.rejected[0]).toMatchObject({ peerId: 'p-b', reason: 'Duplicate', of: 'p-a' });
  });

  it('gives the same verdict whatever order the candidates are listed in', () => {
    const list = [
      candidate('p1', 2, sha(victim.bytes), victim.update), candidate('p2', 2, sha(victim.bytes), victim.update),
      candidate('p3', 1, sha(Buffer.from('c')), copy), candidate('p4', 5, sha(other.bytes), other.update),
    ];
    const expected = findCopies(list);
    const random = seededRandom(5);
    for (let trial = 0; trial < 20; trial++) {
      const shuffled = [...list].sort(() => random() - 0.5);
      expect(findCopies(shuffled)).toEqual(expected);
    }
    expect(expected.kept.map((c) => c.peerId)).toEqual(['p3', 'p4']);
  });

  it('compares only against kept contributions, and needs more than the threshold', () => {
    const update = (indices: number[]): SparseUpdate => ({ length: 64, indices: Uint32Array.from(indices), values: new Float32Array(indices.length) });
    const a = update([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const b = update([0, 1, 2, 3, 4, 5, 20, 21, 22, 23]); // 0.6 with a
    const c = update([4, 5, 20, 21, 22, 23, 40, 41, 42, 43]); // 0.6 with b, 0.2 with a
    const d = update([0, 1, 2, 3, 4, 30, 31, 32, 33, 34]); // exactly 0.5 with a
    const verdict = findCopies([
      candidate('a', 1, sha(Buffer.from('a')), a), candidate('b', 2, sha(Buffer.from('b')), b),
      candidate('c', 3, sha(Buffer.from('c')), c), candidate('d', 4, sha(Buffer.from('d')), d),
    ]);
    expect(verdict.kept.map((x) => x.peerId)).toEqual(['a', 'c', 'd']);
    expect(verdict.rejected).toEqual([expect.objectContaining({ peerId: 'b', reason: 'NearCopy', of: 'a', overlap: 0.6 })]);
    expect(findCopies([candidate('a', 1, sha(Buffer.from('a')), a), candidate('d', 2, sha(Buffer.from('d')), d)], { threshold: 0.4 }).rejected).toHaveLength(1);
  });

  it('refuses two candidates of one peer and a bad threshold', () => {
    const hash = sha(victim.bytes);
    expect(() => findCopies([candidate('p', 1, hash, victim.update), candidate('p', 2, hash, victim.update)])).toThrow(/two candidates/);
    expect(() => findCopies([], { threshold: 0 })).toThrow(/threshold/);
  });
});
