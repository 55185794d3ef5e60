/**
 * A live status line: rewritten in place on a terminal, printed as a plain line at most every
 * `everyMs` otherwise (logs and CI get a readable history instead of carriage returns).
 */
export class ProgressLine {
  private lastPlain = -Infinity;
  private shown = false;

  constructor(private readonly stream: NodeJS.WriteStream = process.stderr, private readonly everyMs = 10_000) {}

  update(text: string): void {
    if (this.stream.isTTY) {
      this.stream.write(`\r${text}\x1b[K`);
      this.shown = true;
    } else if (Date.now() - this.lastPlain >= this.everyMs) {
      this.stream.write(`${text}\n`);
      this.lastPlain = Date.now();
    }
  }

  /** Ends the live line so normal output continues below it. */
  done(): void {
    if (this.shown) this.stream.write('\n');
    this.shown = false;
  }
}

/** 75 → "1m15s", 3725 → "1h02m". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
