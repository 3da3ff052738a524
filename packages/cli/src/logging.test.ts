import { describe, expect, it } from 'vitest';
import { errorSerializer } from './logging.js';

function failure(): Error {
  const error = new Error('connect ECONNREFUSED 127.0.0.1:2379', { cause: new Error('socket closed') });
  return Object.assign(error, { code: 'ECONNREFUSED' });
}

/** What a log line holds: the serialized value as JSON. */
const logged = (level: string, value: unknown): unknown =>
  JSON.parse(JSON.stringify(errorSerializer(level)(value)));

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
