import { describe, expect, it } from '@jest/globals';
import { RoundBook } from '../../operator/src/coordinator/round-book.js';

describe('what a coordinator knows of a round', () => {
  it('a statement of an earlier round is reported but does not settle the signer for this round', () => {
    const book = new RoundBook(5n, Buffer.alloc(32, 1));
    expect(book.noteStale('slow-peer', 'WrongRound', 'header is for round 4, this is round 5')).toBe(true);
    expect(book.noteStale('slow-peer', 'WrongRound', 'again')).toBe(false);
    expect(book.stale).toHaveLength(1);
    expect(book.rejected('slow-peer')).toBe(false);
    expect(book.settled().has('slow-peer')).toBe(false);
    // A rejection of this round's contribution does settle it, once per reason.
    expect(book.reject('slow-peer', 'Malformed', 'payload does not decode')).toBe(true);
    expect(book.reject('slow-peer', 'Malformed', 'twice')).toBe(false);
    expect(book.settled().has('slow-peer')).toBe(true);
  });
});
