import type { Logger } from '../logger.js';

/** One line a `capturingLogger` recorded. */
export interface CapturedLine {
  readonly level: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  readonly msg: string;
  /** The fields object, with the child loggers' bindings merged in. */
  readonly fields: Readonly<Record<string, unknown>>;
}

export interface CapturingLoggerOptions {
  /** Called with each line as it is recorded (to keep a view of the lines up to date as they arrive). */
  readonly onLine?: (line: CapturedLine) => void;
}

/** A logger that records every line (children included) for tests to read; prints nothing. */
export function capturingLogger(options: CapturingLoggerOptions = {}): {
  logger: Logger;
  lines: CapturedLine[];
} {
  const lines: CapturedLine[] = [];
  const make = (bindings: Record<string, unknown>): Logger => {
    const at =
      (level: CapturedLine['level']) =>
      (first: object | string, msg?: string): void => {
        const fields = typeof first === 'string' ? {} : (first as Record<string, unknown>);
        const line: CapturedLine = {
          level,
          msg: typeof first === 'string' ? first : (msg ?? ''),
          fields: { ...bindings, ...fields },
        };
        lines.push(line);
        options.onLine?.(line);
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
  return { logger: make({}), lines };
}
