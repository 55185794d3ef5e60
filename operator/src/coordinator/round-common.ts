// What the round's phases share (round-driver.ts, round-gather.ts, round-validation.ts): how
// often a waiting phase looks again, and how an error is written into a log field. One place, so
// that the phases poll at the same pace and log errors alike.

/** How often a phase that waits for peers (gather, agree, align) checks again, milliseconds. */
export const POLL_MS = 100;

/** An error as a log field: its message, or the value as a string. */
export function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
