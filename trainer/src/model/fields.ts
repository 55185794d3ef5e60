// Reading a model config's fields (a plain object, as parsed from YAML) with errors that name the
// field: the shared part of parseGptConfig and parseLlamaConfig.
import { ConfigError } from '../config-error.js';

/** How a value looks in an error message: `string "x"`, `number 1.5`, `a list`. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `string ${JSON.stringify(value)}`;
  return `${typeof value} ${String(value)}`;
}

/** The fields of one mapping, each read once with its path in every error. */
export class Fields {
  private readonly obj: Record<string, unknown>;

  constructor(raw: unknown, readonly field: string, allowed: readonly string[]) {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      throw new ConfigError(field, `must be a mapping, got ${describeValue(raw)}`);
    }
    this.obj = raw as Record<string, unknown>;
    for (const key of Object.keys(this.obj)) {
      if (!allowed.includes(key)) throw new ConfigError(`${field}.${key}`, `unknown field (allowed: ${allowed.join(', ')})`);
    }
  }

  path(key: string): string {
    return `${this.field}.${key}`;
  }

  has(key: string): boolean {
    return this.obj[key] !== undefined && this.obj[key] !== null;
  }

  get(key: string): unknown {
    return this.obj[key];
  }

  /** An integer in [1, max]; `fallback` when absent (required when there is none). */
  integer(key: string, max: number, fallback?: number): number {
    const value = this.obj[key];
    const path = this.path(key);
    if (value === undefined || value === null) {
      if (fallback === undefined) throw new ConfigError(path, 'is required');
      return fallback;
    }
    if (typeof value !== 'number' || !Number.isInteger(value)) throw new ConfigError(path, `must be an integer, got ${describeValue(value)}`);
    if (value < 1) throw new ConfigError(path, `must be at least 1, got ${value}`);
    if (value > max) throw new ConfigError(path, `must be at most ${max}, got ${value}`);
    return value;
  }

  /** A finite number > 0; `fallback` when absent. */
  positive(key: string, fallback: number): number {
    const value = this.obj[key];
    if (value === undefined || value === null) return fallback;
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw new ConfigError(this.path(key), `must be a positive number, got ${describeValue(value)}`);
    return value;
  }

  boolean(key: string, fallback: boolean): boolean {
    const value = this.obj[key];
    if (value === undefined || value === null) return fallback;
    if (typeof value !== 'boolean') throw new ConfigError(this.path(key), `must be true or false, got ${describeValue(value)}`);
    return value;
  }

  oneOf<T extends string>(key: string, choices: readonly T[], fallback: T): T {
    const value = this.obj[key];
    if (value === undefined || value === null) return fallback;
    if (typeof value !== 'string' || !(choices as readonly string[]).includes(value)) {
      throw new ConfigError(this.path(key), `must be one of ${choices.join(', ')}, got ${describeValue(value)}`);
    }
    return value as T;
  }
}

/** Upper bounds that catch typos (an extra zero) before they become an allocation failure.
 * Token ids travel as int32; the parameter vector is one Float32Array. */
export const LIMITS = { vocabSize: 2 ** 31 - 1, seqLen: 1 << 20, layers: 1024, dModel: 1 << 16, heads: 1 << 12, ffnWidth: 1 << 20 } as const;
export const MAX_PARAMS = 2 ** 32 - 1;
