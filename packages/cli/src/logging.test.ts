import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { errorSerializer, rateLimitWarnings, thousands } from './logging.js';

function failure(): Error {
  const error = new Error('connect ECONNREFUSED 127.0.0.1:2379', { cause: new Error('socket closed') });
  return Object.assign(error, { code: 'ECONNREFUSED' });
}

/** What a log line holds: the serialized value as JSON. */
const logged = (level: string, value: unknown): unknown =>
  JSON.parse(JSON.stringify(errorSerializer(level)(value)));

describe('thousands', () => {
  it('groups digits by three with commas, as en-US does', () => {
    for (const n of [0, 7, 999, 1000, 12_345, 999_999, 1_000_000, 1_234_567_890]) {
      expect(thousands(n)).toBe(n.toLocaleString('en-US'));
    }
  });
});

describe('errorSerializer', () => {
  it('logs type, message (with its causes) and code without the stack at info and above', () => {
    for (const level of ['info', 'warn', 'error']) {
      expect(logged(level, failure())).toEqual({
        type: 'Error',
        message: 'connect ECONNREFUSED 127.0.0.1:2379: socket closed',
        code: 'ECONNREFUSED',
      });
    }
  });

  it('adds the stack, causes included, at debug and trace', () => {
    for (const level of ['debug', 'trace']) {
      const line = logged(level, failure()) as { stack: string };
      expect(line).toMatchObject({ type: 'Error', code: 'ECONNREFUSED' });
      expect(line.stack).toMatch(/^Error: connect ECONNREFUSED[^\n]*\n\s+at failure /);
      expect(line.stack).toContain('caused by: Error: socket closed');
    }
  });

  it('logs a thrown value that is not an Error as its type and text', () => {
    expect(logged('debug', 'plain text')).toEqual({ type: 'string', message: 'plain text' });
    expect(logged('info', 42)).toEqual({ type: 'number', message: '42' });
  });
});

describe('rateLimitWarnings', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  /** A pino logger writing JSON lines into an array, warnings limited as the CLI's are. */
  function logger(options: Parameters<typeof rateLimitWarnings>[0]) {
    const lines: { level: number; msg: string; repeated?: number; line?: string }[] = [];
    const log = pino(
      { hooks: { logMethod: rateLimitWarnings(options) } },
      { write: (text: string) => void lines.push(JSON.parse(text) as (typeof lines)[number]) },
    );
    return { log, lines };
  }

  it('lets a repeated warning through a few times per window, then says once how many were dropped', () => {
    const { log, lines } = logger({ perWindow: 2, windowMs: 60_000 });
    for (let i = 0; i < 10_000; i++)
      log.child({ x: 1 }).warn({ line: `garbage ${i}` }, 'unparseable docker event skipped');
    log.warn('another warning');
    for (let i = 0; i < 50; i++) log.info({ i }, 'registered');
    expect(lines.filter((l) => l.msg === 'unparseable docker event skipped').map((l) => l.line)).toEqual([
      'garbage 0',
      'garbage 1',
    ]);
    expect(lines.filter((l) => l.msg === 'another warning')).toHaveLength(1);
    expect(lines.filter((l) => l.msg === 'registered')).toHaveLength(50);
    vi.advanceTimersByTime(60_000);
    expect(lines.at(-1)).toMatchObject({
      level: 40,
      repeated: 9_998,
      msg: 'unparseable docker event skipped (repeated 9,998 more times in 60 s; not logged)',
    });
    // A new window lets it through again.
    log.warn('unparseable docker event skipped');
    expect(lines.at(-1)?.msg).toBe('unparseable docker event skipped');
  });
});
