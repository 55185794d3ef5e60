/**
 * Structured logs: one JSON object per line on stdout, as a pod's log collector expects. The
 * `event` field names what happened; the local federation launcher reads these lines too.
 */
export type LogFields = Record<string, unknown>;

export interface Logger {
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
}

export function jsonLogger(base: LogFields = {}, write: (line: string) => void = (line) => process.stdout.write(line)): Logger {
  const emit = (level: string, event: string, fields: LogFields = {}) =>
    write(`${JSON.stringify({ time: new Date().toISOString(), level, event, ...base, ...fields }, jsonValue)}\n`);
  return {
    info: (event, fields) => emit('info', event, fields),
    warn: (event, fields) => emit('warn', event, fields),
    error: (event, fields) => emit('error', event, fields),
  };
}

/** bigint as a decimal string, bytes as hex: both appear in protocol fields. */
function jsonValue(this: Record<string, unknown>, key: string, value: unknown): unknown {
  // `value` has been through toJSON already (a Buffer arrives as {type, data}): use the original.
  const original = this[key];
  if (typeof original === 'bigint') return original.toString();
  if (original instanceof Uint8Array) return Buffer.from(original).toString('hex');
  if (value instanceof Error) return value.message;
  return value;
}
