import { describe, expect, it } from '@jest/globals';
import { ReplayWindow } from '../../operator/src/federation/replay-window.js';

describe('ReplayWindow', () => {
  it('accepts each sequence number once, in any order inside the window', () => {
    const window = new ReplayWindow(64);
    for (const s of [1n, 3n, 2n, 10n, 5n]) {
      expect(window.check(s)).toBeUndefined();
      window.accept(s);
    }
    for (const s of [1n, 2n, 3n, 5n, 10n]) expect(window.check(s)).toMatch(/already used/);
    expect(window.check(4n)).toBeUndefined();
  });

  it('refuses numbers that fell out of the window and zero', () => {
    const window = new ReplayWindow(64);
    window.accept(100n);
    expect(window.check(36n)).toMatch(/older than the replay window/);
    expect(window.check(37n)).toBeUndefined();
    expect(window.check(0n)).toMatch(/start at 1/);
  });

  it('forgets old bits when the window slides, so a reused slot is not mistaken for a replay', () => {
    const window = new ReplayWindow(8);
    window.accept(1n);
    window.accept(9n); // same slot as 1
    expect(window.check(9n)).toMatch(/already used/);
    window.accept(20n); // jumps past the whole window
    for (let s = 13n; s < 20n; s++) expect(window.check(s)).toBeUndefined();
    expect(window.check(12n)).toMatch(/older/);
  });

  it('matches a set-based model on a long random sequence', () => {
    const size = 32;
    const window = new ReplayWindow(size);
    const seen = new Set<bigint>();
    let highest = 0n;
    let seed = 12345;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let i = 0; i < 5000; i++) {
      const s = BigInt(Math.max(1, Number(highest) + Math.floor(random() * 12) - 8));
      const expected = !seen.has(s) && (s > highest || highest - s < BigInt(size));
      expect(window.check(s) === undefined).toBe(expected);
      if (expected) {
        window.accept(s);
        seen.add(s);
        if (s > highest) highest = s;
      }
    }
  });
});
