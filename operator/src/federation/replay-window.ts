/**
 * Anti-replay window for sequence numbers (as in IPsec and WireGuard): accepts each number at
 * most once, in any order within the last `size` numbers, so concurrent calls that overtake each
 * other on one HTTP/2 connection are not refused. Numbers older than the window are refused too:
 * the receiver cannot tell whether it saw them.
 */
export class ReplayWindow {
  private highest = 0n;
  private readonly seen: Uint8Array;

  constructor(readonly size = 1024) {
    if (!Number.isInteger(size) || size < 8 || size % 8 !== 0) throw new Error('window size must be a positive multiple of 8');
    this.seen = new Uint8Array(size / 8);
  }

  /** Why `sequence` cannot be accepted, or undefined if it can. Does not record it. */
  check(sequence: bigint): string | undefined {
    if (sequence <= 0n) return 'sequence numbers start at 1';
    if (sequence > this.highest) return undefined;
    if (this.highest - sequence >= BigInt(this.size)) return `sequence ${sequence} is older than the replay window (highest ${this.highest})`;
    return this.has(sequence) ? `sequence ${sequence} was already used` : undefined;
  }

  /** Records `sequence`; call only after `check` returned undefined and the message was accepted. */
  accept(sequence: bigint): void {
    if (this.check(sequence) !== undefined) throw new Error(`sequence ${sequence} cannot be accepted`);
    if (sequence > this.highest) {
      const shift = sequence - this.highest;
      if (shift >= BigInt(this.size)) this.seen.fill(0);
      else for (let s = this.highest + 1n; s < sequence; s++) this.clear(s);
      this.highest = sequence;
    }
    this.set(sequence);
  }

  private bit(sequence: bigint): [number, number] {
    const index = Number(sequence % BigInt(this.size));
    return [index >> 3, 1 << (index & 7)];
  }
  private has(sequence: bigint): boolean {
    const [byte, mask] = this.bit(sequence);
    return (this.seen[byte]! & mask) !== 0;
  }
  private set(sequence: bigint): void {
    const [byte, mask] = this.bit(sequence);
    this.seen[byte]! |= mask;
  }
  private clear(sequence: bigint): void {
    const [byte, mask] = this.bit(sequence);
    this.seen[byte]! &= ~mask;
  }
}
