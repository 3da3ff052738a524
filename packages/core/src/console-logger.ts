import type { LogFn, Logger } from './logger.js';
import { oneLine } from './text.js';

/** Levels in increasing severity; `silent` prints nothing. */
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent';

export interface ConsoleLoggerOptions {
  /** The least severe level printed; default `info`. */
  readonly level?: LogLevel;
  /** Where lines go; default standard error (a library never writes to standard output). */
  readonly write?: (line: string) => void;
}

const RANK: Record<LogLevel, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, silent: 100 };

function show(value: unknown): string {
  if (value instanceof Error) return JSON.stringify(oneLine(value.message, 300));
  if (typeof value === 'string')
    return /^[\w.:/@-]*$/.test(value) && value !== '' ? value : JSON.stringify(oneLine(value, 300));
  if (typeof value === 'number' || typeof value === 'boolean' || value === null || value === undefined)
    return String(value);
  try {
    return oneLine(JSON.stringify(value), 300);
  } catch {
    return '[unprintable]';
  }
}

/**
 * A logger that prints one line per event to standard error: time, level, the message, then `key=value`
 * fields (bindings from `child()` first). Every adapter and `registerService` use it when given no logger.
 * Pass your own (pino's fits as is) for structured output, or `silentLogger` for none.
 */
export function createConsoleLogger(options: ConsoleLoggerOptions = {}): Logger {
  const threshold = RANK[options.level ?? 'info'];
  const write = options.write ?? ((line: string) => void process.stderr.write(`${line}\n`));
  const make = (bindings: Record<string, unknown>): Logger => {
    const at =
      (level: Exclude<LogLevel, 'silent'>): LogFn =>
      (first: object | string, msg?: string) => {
        if (RANK[level] < threshold) return;
        const fields = typeof first === 'string' ? bindings : { ...bindings, ...first };
        const text = typeof first === 'string' ? first : (msg ?? '');
        const pairs = Object.entries(fields)
          .filter(([, value]) => value !== undefined)
          .map(([key, value]) => `${key}=${show(value)}`);
        write([new Date().toISOString(), level.toUpperCase(), oneLine(text, 400), ...pairs].join(' '));
      };
    return {
      trace: at('trace'),
      debug: at('debug'),
      info: at('info'),
      warn: at('warn'),
      error: at('error'),
      child: (more) => make({ ...bindings, ...more }),
    };
  };
  return make({});
}

/** The default logger of every adapter and of `registerService`: `createConsoleLogger()`, level `info`. */
export const consoleLogger: Logger = createConsoleLogger();
