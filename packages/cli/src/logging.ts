import { pino, type Logger as Pino } from 'pino';
import pretty from 'pino-pretty';
import type { LogFormat } from './options.js';

/** Logs go to stderr (stdout carries `--dry-run` output); pretty on a terminal, JSON for collectors. */
export function createLogger(level: string, format: LogFormat): Pino {
  const options = {
    level,
    // Never let a credential reach a log line even if some object carries one.
    redact: { paths: ['password', '*.password', 'token', '*.token', 'auth', '*.auth'], censor: '[redacted]' },
  };
  const destination =
    format === 'pretty'
      ? pretty({ destination: 2, sync: true, colorize: process.stderr.isTTY })
      : pino.destination({ dest: 2, sync: true });
  return pino(options, destination);
}
