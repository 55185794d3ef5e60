import { describe, expect, it } from '@jest/globals';
import { armClusters, fairBarOf, summarise, type ArmResult } from '../../scripts/federation/study.js';
import { measureRounds, type ClusterState, type RoundLine } from '../../scripts/federation/report.js';

function round(r: number, hash: string, accepted: string[], rejected: Array<[string, string]>, reputation: Record<string, number>): RoundLine {
  return {
    wallSeconds: 1, round: r, tokens: '100', modelHash: hash, agreed: true, resynced: false, loss: 5 - r,
    accepted: accepted.map((peerId) => ({ peerId, weight: peerId === 'm' ? 0.2 : 0.3, scorePpm: 1 })), rejected: rejected.map(([peerId, reason]) => ({ peerId, reason, detail: '' })),
    payloadsReceived: 2, payloadBytes: 1000, denseBytes: 100_000, phaseSeconds: {}, reputation,
  };
}

function cluster(name: string, honest: boolean, rounds: RoundLine[]): ClusterState {
  return { name, honest, peerId: name[0]!, round: rounds.length, phase: 'Done', loss: 0, rounds, finished: true, stopping: undefined };
}

function result(arm: ArmResult['arm'], seed: number, finalLoss: number, honest: Partial<ArmResult['honest']> = {}): ArmResult {
  return {
    arm, seed, initialLoss: 7, finalLoss, curve: [], honestTokens: 1,
    honest: { applied: arm === 'centralised' ? 0 : 10, contributions: arm === 'centralised' ? 0 : 10, rejected: {}, emptyRounds: 0, minReputation: 0.6, agreeEveryRound: true, ...honest },
    attackers: { applied: 0, contributions: 0, maxWeight: 0, rejected: {} }, bytesPerPeer: arm === 'centralised' ? 1e9 : 1e5, crashed: [], seconds: 1,
  };
}

describe('the federation study: what an arm measured', () => {
  it('counts each contribution once a round — applied by the agreed update or not, with the reason most honest coordinators gave — and empty rounds, reputation and agreement', () => {
    const measured = measureRounds([
      cluster('a', true, [
        round(0, 'h0', ['a', 'b', 'm'], [], { b: 0.6, m: 0.6 }),
        round(1, 'h1', ['a'], [['b', 'NoImprovement'], ['m', 'NormOutlier']], { b: 0.4, m: 0.2 }),
        round(2, 'h2', [], [], { b: 0.45 }),
      ]),
      cluster('b', true, [
        round(0, 'h0', ['a', 'b', 'm'], [], { a: 0.6, m: 0.6 }),
        round(1, 'x1', ['a'], [['b', 'NoImprovement'], ['a', 'Unavailable']], { a: 0.5 }),
        round(2, 'h2', [], [], { a: 0.5 }),
      ]),
      // The attacker's own view counts for nothing but the bytes it received.
      cluster('m', false, [round(0, 'h0', ['m'], [], { a: 0.1 }), round(1, 'h1', ['m'], [], { a: 0.1 }), round(2, 'h2', ['m'], [], { a: 0.1 })]),
    ]);
    expect(measured.honest).toEqual({ applied: 3, contributions: 6, rejected: { NoImprovement: 1, NotAgreed: 2 }, emptyRounds: 1, minReputation: 0.4, agreeEveryRound: false });
    expect(measured.attackers).toEqual({ applied: 1, contributions: 3, maxWeight: 0.2, rejected: { NormOutlier: 1, NotAgreed: 1 } });
    expect(measured.curve).toEqual([[0, 5], [1, 4], [2, 3]]);
    expect(measured.honestTokens).toBe(600);
    expect(measured.bytesPerPeer).toBe(3000);
  });

  it('compares each arm with the all-honest federation and with its own honest clusters alone, seed by seed', () => {
    const summary = summarise([
      result('centralised', 1, 5.0), result('centralised', 2, 5.2),
      result('honest', 1, 5.2), result('honest', 2, 5.2),
      result('honest-3', 1, 5.3), result('honest-3', 2, 5.4),
      result('sign-flip', 1, 5.3), result('sign-flip', 2, 5.67, { applied: 8 }),
      result('coalition', 1, 5.2 * 1.04), result('coalition', 2, 5.2, { emptyRounds: 1, minReputation: 0.25 }),
    ]);
    const arm = (name: string) => summary.arms.find((a) => a.arm === name)!;
    expect(summary.arms.map((a) => a.arm)).toEqual(['centralised', 'honest', 'honest-3', 'sign-flip', 'coalition']);
    expect(arm('sign-flip').vsHonest!.worst).toBeCloseTo(5.67 / 5.2 - 1, 9);
    expect(arm('sign-flip').vsFairBar).toEqual({ arm: 'honest-3', mean: expect.closeTo((0 + 5.67 / 5.4 - 1) / 2, 9), worst: expect.closeTo(5.67 / 5.4 - 1, 9) });
    expect(arm('coalition').vsFairBar).toEqual({ arm: 'honest', mean: expect.closeTo(0.02, 9), worst: expect.closeTo(0.04, 9) });
    expect(arm('coalition')).toMatchObject({ emptyRounds: 1, minReputation: 0.25 });
    expect(arm('honest').vsHonest).toBeUndefined();
    expect(summary.honestVsCentralised).toEqual({ mean: expect.closeTo((0.04 + 0) / 2, 9), worst: expect.closeTo(0.04, 9), bytesRatio: 1e4 });
    // Honest work over every federation arm (the centralised arm decides nothing).
    expect([summary.honestApplied, summary.honestContributions]).toEqual([78, 80]);
  });

  it('gives every one-attacker arm three honest clusters and the colluders four, with their fair bars', () => {
    expect(armClusters('noise').map((c) => [c.name, c.attack ?? '-'])).toEqual([['alpha', '-'], ['beta', '-'], ['gamma', '-'], ['mallory', 'noise']]);
    expect(armClusters('coalition').filter((c) => c.coalition !== undefined).map((c) => c.name)).toEqual(['mallory', 'trudy']);
    expect(armClusters('coalition')).toHaveLength(6);
    expect([fairBarOf('noise'), fairBarOf('coalition'), fairBarOf('honest')]).toEqual(['honest-3', 'honest', undefined]);
  });
});
