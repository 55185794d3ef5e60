import { describe, expect, it } from '@jest/globals';
import { Reputation } from '../../operator/src/rounds/reputation.js';

describe('peer reputation', () => {
  it('starts at the initial value and moves as an exponential moving average of the scores', () => {
    const reputation = new Reputation({ alpha: 0.2, initial: 0.5, floor: 0.3 });
    expect(reputation.value('p1')).toBe(0.5);
    expect(reputation.update('p1', 1)).toBeCloseTo(0.6, 12);
    expect(reputation.update('p1', 1)).toBeCloseTo(0.68, 12);
    expect(reputation.update('p1', 0)).toBeCloseTo(0.544, 12);
    expect(reputation.value('p1')).toBeCloseTo(0.544, 12);
    expect(reputation.value('p2')).toBe(0.5);
  });

  it('excludes a peer whose scores keep it below the floor, and lets it climb back', () => {
    const reputation = new Reputation();
    // Defaults alpha 0.2, initial 0.5, floor 0.3: three zero scores take it to 0.256.
    reputation.update('copier', 0);
    reputation.update('copier', 0);
    expect(reputation.excluded('copier')).toBeUndefined();
    reputation.update('copier', 0);
    expect(reputation.value('copier')).toBeCloseTo(0.256, 12);
    expect(reputation.excluded('copier')).toBe('LowReputation');
    reputation.update('copier', 1);
    expect(reputation.excluded('copier')).toBeUndefined();
    // An honest peer with a bad round now and then stays well above the floor.
    for (const score of [1, 0.6, 0.2, 0.45, 0.5, 1, 1, 0.75, 1]) reputation.update('honest', score);
    expect(reputation.value('honest')).toBeGreaterThan(0.6);
  });

  it('is deterministic: the same scores in the same order give the same bits', () => {
    const scores = [0.31, 0.77, 0, 1, 0.123456789, 0.5];
    const a = new Reputation({ alpha: 0.3 });
    const b = new Reputation({ alpha: 0.3 });
    for (const s of scores) a.update('p', s);
    for (const s of scores) b.update('p', s);
    expect(Object.is(a.value('p'), b.value('p'))).toBe(true);
  });

  it('bans for good, keeping the first reason and evidence', () => {
    const reputation = new Reputation();
    reputation.update('mallory', 1);
    reputation.ban('mallory', { reason: 'Equivocation', detail: 'two headers for round 3', round: 3, evidence: ['AAAA', 'BBBB'] });
    reputation.ban('mallory', { reason: 'Equivocation', detail: 'again', round: 4, evidence: [] });
    for (let i = 0; i < 20; i++) reputation.update('mallory', 1);
    expect(reputation.excluded('mallory')).toBe('Banned');
    expect(reputation.banOf('mallory')).toEqual({ reason: 'Equivocation', detail: 'two headers for round 3', round: 3, evidence: ['AAAA', 'BBBB'] });
  });

  it('snapshots every peer in peer-id order, as plain JSON, and resumes from it', () => {
    const reputation = new Reputation();
    reputation.update('p-b', 1);
    reputation.update('p-a', 0);
    reputation.update('p-a', 0);
    reputation.update('p-a', 0);
    reputation.ban('p-c', { reason: 'Equivocation', detail: 'proof kept', round: 2, evidence: ['AAAA'] });
    const snapshot = reputation.snapshot();
    expect(snapshot.map((p) => [p.peerId, p.excluded])).toEqual([['p-a', 'LowReputation'], ['p-b', undefined], ['p-c', 'Banned']]);
    expect(snapshot[1]).toEqual({ peerId: 'p-b', reputation: expect.closeTo(0.6, 12), scored: 1 });
    const restored = Reputation.fromSnapshot(JSON.parse(JSON.stringify(snapshot)));
    expect(restored.snapshot()).toEqual(snapshot);
    expect(restored.update('p-b', 1)).toBe(reputation.update('p-b', 1));
  });

  it('refuses scores and options outside [0, 1]', () => {
    expect(() => new Reputation().update('p', 1.5)).toThrow(/score/);
    expect(() => new Reputation().update('p', Number.NaN)).toThrow(/score/);
    expect(() => new Reputation({ alpha: 0 })).toThrow(/alpha/);
    expect(() => new Reputation({ floor: 2 })).toThrow(/floor/);
  });
});
