// What the suites need from the machine, found, never installed: scripts/setup-machine.sh (which
// `npm test` runs before jest) installs it, and a test that finds a tool missing says so.
import { execFileSync } from 'node:child_process';

/** The absolute path of `tool` on PATH, or an error that names it and how to get it. */
export function requireTool(tool: string): string {
  try {
    return execFileSync('bash', ['-c', 'command -v "$1"', 'bash', tool], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(`'${tool}' not found on PATH: run scripts/setup-machine.sh (npm test runs it first)`);
  }
}
