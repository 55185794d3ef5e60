/** A configuration problem; the message starts with the path of the field at fault. */
export class ConfigError extends Error {
  constructor(readonly field: string, readonly problem: string) {
    super(`${field}: ${problem}`);
    this.name = 'ConfigError';
  }
}

/**
 * `value` as a mapping whose keys are all `known`; otherwise a ConfigError naming the field
 * (`field` is the mapping's path, '(file)' for the root).
 */
export function configFields(value: unknown, field: string, known: readonly string[]): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ConfigError(field, 'must be a mapping');
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!known.includes(key)) throw new ConfigError(field === '(file)' ? key : `${field}.${key}`, `unknown field (known: ${known.join(', ')})`);
  }
  return record;
}
