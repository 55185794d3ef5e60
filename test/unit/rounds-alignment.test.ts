import { describe, expect, it } from '@jest/globals';
import { alignmentOf, canJoin, isAhead, medianDeadline, type PeerState } from '../../operator/src/rounds/alignment.js';

const hash = (n: number) => Buffer.alloc(32, n);
const status = (peer: string, round: number, h: number, extra: Partial<PeerState> = {}): PeerState => ({
  peer, round: BigInt(round), modelHash: hash(h), phase: 'Syncing', trainDeadlineUnixMs: 0, ...extra,
});
const own = (round: number, h: number) => ({ round: BigInt(round), hash: hash(h) });
const NOW = 1_000_000;

describe('alignment: where the run is', () => {
  it('is in step when a strict majority of the members, this coordinator included, holds its state', () => {
    const result = alignmentOf([status('b', 3, 1), status('c', 3, 1), status('d', 3, 9)], own(3, 1), 4, NOW, false);
    expect(result.verdict).toBe('in-step');
    if (result.verdict !== 'undecided') expect(result.group.peers).toEqual(['b', 'c']);
  });

  it('is behind when the majority is at a later round, or at the same round with another model', () => {
    const later = alignmentOf([status('b', 5, 2), status('c', 5, 2), status('d', 5, 2)], own(2, 1), 4, NOW, false);
    expect(later.verdict).toBe('behind');
    if (later.verdict === 'behind') {
      expect(later.group.round).toBe(5n);
      expect(isAhead(later.group, own(2, 1))).toBe(true);
    }
    const other = alignmentOf([status('b', 3, 2), status('c', 3, 2), status('d', 3, 2)], own(3, 1), 4, NOW, false);
    expect(other.verdict === 'behind' && isAhead(other.group, own(3, 1))).toBe(true);
  });

  it('never lets a single peer decide, and counts a dishonest status as one vote', () => {
    // 4 members: this one done with round 3, two honest peers still finishing it, a liar "ahead".
    // The largest group is the honest pair, which is not ahead: the driver waits for it.
    const finishing = alignmentOf([status('b', 3, 1), status('c', 3, 1), status('m', 9, 7)], own(4, 2), 4, NOW, true);
    expect(finishing.verdict).toBe('behind');
    if (finishing.verdict === 'behind') expect(isAhead(finishing.group, own(4, 2))).toBe(false);
    const result = alignmentOf([status('m', 9, 7)], own(4, 2), 4, NOW, true);
    expect(result.verdict).toBe('undecided');
  });

  it('breaks a two-way split of two and two the same way on both sides once time is up', () => {
    // alpha+mallory hold hash 1, beta+gamma hash 2: each side sees the same two groups.
    const fromAlpha = alignmentOf([status('mallory', 3, 1), status('beta', 3, 2), status('gamma', 3, 2)], own(3, 1), 4, NOW, true);
    const fromBeta = alignmentOf([status('alpha', 3, 1), status('mallory', 3, 1), status('gamma', 3, 2)], own(3, 2), 4, NOW, true);
    expect(fromAlpha.verdict).toBe('in-step');
    expect(fromBeta.verdict).toBe('behind');
    if (fromBeta.verdict === 'behind') expect(fromBeta.group.hash).toEqual(hash(1));
    // Before time is up nobody moves.
    expect(alignmentOf([status('alpha', 3, 1), status('mallory', 3, 1), status('gamma', 3, 2)], own(3, 2), 4, NOW, false).verdict).toBe('undecided');
  });

  it('ignores statuses without a model hash', () => {
    expect(alignmentOf([{ ...status('b', 3, 1), modelHash: new Uint8Array(0) }, status('c', 3, 1)], own(3, 1), 3, NOW, false).verdict).toBe('in-step');
  });
});

describe('alignment: joining a round', () => {
  it('joins while most of the group is training and enough of the window is left; takes the median deadline', () => {
    const result = alignmentOf([
      status('b', 3, 1, { phase: 'Training', trainDeadlineUnixMs: NOW + 5000 }),
      status('c', 3, 1, { phase: 'Gathering', trainDeadlineUnixMs: NOW + 5200 }),
      status('d', 3, 1, { phase: 'Training', trainDeadlineUnixMs: NOW + 4800 }),
    ], own(3, 1), 4, NOW, false);
    if (result.verdict !== 'in-step') throw new Error(result.verdict);
    expect(canJoin(result.group, NOW, 1000)).toBe(true);
    expect(medianDeadline(result.group)).toBe(NOW + 5000);
    // Too little of the window left.
    expect(canJoin(result.group, NOW + 4500, 1000)).toBe(false);
  });

  it('waits for the next round when most of the group is past its window', () => {
    const result = alignmentOf([
      status('b', 3, 1, { phase: 'Validating', trainDeadlineUnixMs: 0 }),
      status('c', 3, 1, { phase: 'Gathering', trainDeadlineUnixMs: NOW - 10 }),
      status('d', 3, 1, { phase: 'Training', trainDeadlineUnixMs: NOW + 3000 }),
    ], own(3, 1), 4, NOW, false);
    if (result.verdict !== 'in-step') throw new Error(result.verdict);
    expect(result.group.pastTraining).toBe(2);
    expect(canJoin(result.group, NOW, 0)).toBe(false);
    // At a round boundary nobody trains yet: join with a window of one's own.
    const boundary = alignmentOf([status('b', 4, 2), status('c', 4, 2)], own(4, 2), 3, NOW, false);
    if (boundary.verdict !== 'in-step') throw new Error(boundary.verdict);
    expect(canJoin(boundary.group, NOW, 1000)).toBe(true);
    expect(medianDeadline(boundary.group)).toBeUndefined();
  });
});
