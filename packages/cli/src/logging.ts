import { pino, type LogFn, type Logger as Pino } from 'pino';
import type { LogFormat } from './options.js';

/**
 * 1234567 → "1,234,567". Not `toLocaleString`: its first call loads ICU's locale data, ~9 ms of CPU in the
 * middle of a cold start's first log line.
 */
export const thousands = (n: number): string => String(Math.trunc(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');

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

export interface RateLimitOptions {
  /** Lines with the same level and message let through per window. Default 5. */
  readonly perWindow?: number;
  /** Default 60 s. */
  readonly windowMs?: number;
  /** Distinct messages tracked at once; beyond it, the oldest window is dropped. Default 1,000. */
  readonly maxKeys?: number;
}

interface Window {
  readonly started: number;
  passed: number;
  dropped: number;
  /** Logs the summary of what was dropped, with the logger (bindings) that dropped the last line. */
  summarise?: () => void;
  timer?: NodeJS.Timeout;
}

const WARN = 40;

/**
 * pino's `logMethod` hook: warnings and errors that repeat (the same level and message, whatever the fields)
 * pass `perWindow` times per window; the rest are counted and summarised in one line when the window ends:
 * `<message> (repeated 1,234 more times in 60 s; not logged)`. A flood of unparseable events or a failing
 * probe cannot fill the disk, and the first lines still say what happened. Info and below are not limited:
 * their volume is bounded where they are logged (registrations are summarised per burst).
 */
export function rateLimitWarnings(options: RateLimitOptions = {}) {
  const perWindow = options.perWindow ?? 5;
  const windowMs = options.windowMs ?? 60_000;
  const maxKeys = options.maxKeys ?? 1_000;
  const windows = new Map<string, Window>();
  return function logMethod(this: Pino, args: Parameters<LogFn>, method: LogFn, level: number): void {
    if (level < WARN) return method.apply(this, args);
    const message = typeof args[0] === 'string' ? args[0] : typeof args[1] === 'string' ? args[1] : '';
    const key = `${level}\u0000${message}`;
    const now = Date.now();
    let window = windows.get(key);
    if (window === undefined) {
      if (windows.size >= maxKeys) {
        const [oldest] = windows.keys();
        if (oldest !== undefined) close(oldest);
      }
      window = { started: now, passed: 0, dropped: 0 };
      windows.set(key, window);
      const own = window;
      own.timer = setTimeout(() => close(key, own), windowMs);
      own.timer.unref();
    }
    if (window.passed < perWindow) {
      window.passed += 1;
      return method.apply(this, args);
    }
    window.dropped += 1;
    const seconds = Math.round(windowMs / 1000);
    // An arrow function: the summary goes out through the logger (and bindings) that dropped the last line.
    window.summarise = () =>
      method.apply(this, [
        { repeated: window.dropped, windowS: seconds },
        `${message} (repeated ${thousands(window.dropped)} more times in ${seconds} s; not logged)`,
      ] as unknown as Parameters<LogFn>);
  };

  function close(key: string, window = windows.get(key)) {
    if (window === undefined || windows.get(key) !== window) return;
    clearTimeout(window.timer);
    windows.delete(key);
    if (window.dropped > 0) window.summarise?.();
  }
}

/**
 * Logs go to stderr (stdout carries `--dry-run` output); pretty on a terminal, JSON for collectors. pino-pretty
 * (and its colour and date libraries) is loaded only for pretty output: daemons log JSON and never need it.
 */
export async function createLogger(level: string, format: LogFormat): Promise<Pino> {
  const options = {
    level,
    serializers: { err: errorSerializer(level) },
    hooks: { logMethod: rateLimitWarnings() },
    // Never let a credential reach a log line even if some object carries one.
    redact: { paths: ['password', '*.password', 'token', '*.token', 'auth', '*.auth'], censor: '[redacted]' },
  };
  const destination =
    format === 'pretty'
      ? (await import('pino-pretty')).default({
          destination: 2,
          sync: true,
          colorize: process.stderr.isTTY,
          // One line per event, as a terminal reader follows it: the message, then its fields (those of a
          // registration are in its message already).
          singleLine: true,
          ignore: 'hostname,change',
          translateTime: 'SYS:HH:MM:ss.l',
        })
      : pino.destination({ dest: 2, sync: true });
  return pino(options, destination);
}
