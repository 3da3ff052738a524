import { pino, type Logger as Pino } from 'pino';
import type { LogFormat } from './options.js';

/**
 * `err` fields are Error objects everywhere in the code. They are logged as `{type, message, code}`, with the
 * stack (and causes) only at debug and trace, where it helps; at info it would turn one line into twenty.
 * Anything thrown that is not an Error is logged as its type and text.
 */
export function errorSerializer(level: string): (value: unknown) => unknown {
  const withStack = (pino.levels.values[level] ?? Infinity) <= pino.levels.values.debug;
  return (value) => {
    if (!(value instanceof Error)) return { type: typeof value, message: String(value) };
    const full = pino.stdSerializers.err(value);
    if (withStack) return full;
    const { stack: _stack, ...rest } = full;
    return rest;
  };
}

/**
 * Logs go to stderr (stdout carries `--dry-run` output); pretty on a terminal, JSON for collectors. pino-pretty
 * (and its colour and date libraries) is loaded only for pretty output: daemons log JSON and never need it.
 */
export async function createLogger(level: string, format: LogFormat): Promise<Pino> {
  const options = {
    level,
    serializers: { err: errorSerializer(level) },
    // Never let a credential reach a log line even if some object carries one.
    redact: { paths: ['password', '*.password', 'token', '*.token', 'auth', '*.auth'], censor: '[redacted]' },
  };
  const destination =
    format === 'pretty'
      ? (await import('pino-pretty')).default({ destination: 2, sync: true, colorize: process.stderr.isTTY })
      : pino.destination({ dest: 2, sync: true });
  return pino(options, destination);
}
