import type { Logger } from '../logger.js';

/** One line a `capturingLogger` recorded. */
export interface CapturedLine {
  readonly level: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  readonly msg: string;
  /** The fields object, with the child loggers' bindings merged in. */
  readonly fields: Readonly<Record<string, unknown>>;
}

/** A logger that records every line (children included) for tests to read; prints nothing. */
export function capturingLogger(): { logger: Logger; lines: CapturedLine[] } {
  const lines: CapturedLine[] = [];
  const make = (bindings: Record<string, unknown>): Logger => {
    const at =
      (level: CapturedLine['level']) =>
      (first: object | string, msg?: string): void => {
        const fields = typeof first === 'string' ? {} : (first as Record<string, unknown>);
        lines.push({
          level,
          msg: typeof first === 'string' ? first : (msg ?? ''),
          fields: { ...bindings, ...fields },
        });
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
