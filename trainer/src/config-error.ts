/** A configuration problem; the message starts with the path of the field at fault. */
export class ConfigError extends Error {
  constructor(readonly field: string, readonly problem: string) {
    super(`${field}: ${problem}`);
    this.name = 'ConfigError';
  }
}
