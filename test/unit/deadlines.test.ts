import { describe, expect, it } from '@jest/globals';
import { timeScale, within, JEST_MARGIN_MS } from '../support/deadlines.js';

describe('test deadlines (test/support/deadlines.ts)', () => {
  it('reads CONCORD_TEST_TIME_SCALE as a positive factor, 1 when unset', () => {
    expect([undefined, '', ' ', '1', '2.5', '0.5'].map(timeScale)).toEqual([1, 1, 1, 1, 2.5, 0.5]);
  });

  it('refuses anything but a positive number, naming the variable', () => {
    for (const raw of ['0', '-1', 'abc', 'Infinity', 'NaN', '2x']) expect(() => timeScale(raw)).toThrow(/^CONCORD_TEST_TIME_SCALE must be a positive number/);
  });

  it('sizes a jest timeout above the sum of the waits inside', () => {
    expect(within(1000, 2000)).toBe(3000 + JEST_MARGIN_MS);
    expect(within()).toBe(JEST_MARGIN_MS);
  });
});
