import { describe, expect, it } from 'vitest';
import { capturingLogger } from '../testing/logger.js';
import { limitedWarning } from './log-limit.js';

describe('limitedWarning', () => {
  it('logs the first time, then at most once per interval with the count suppressed meanwhile', () => {
    const { logger, lines } = capturingLogger();
    let now = 0;
    const warn = limitedWarning(logger, 'bad line', 1_000, () => now);
    for (let i = 0; i < 250_000; i++) {
      warn({ i });
      now += 0.01;
    }
    // 2,500 ms of virtual time: the first line, then one per second.
    expect(lines.map((l) => l.level)).toEqual(['warn', 'warn', 'warn']);
    expect(lines[0]!.fields).toEqual({ i: 0 });
    expect(lines[1]!.fields.suppressed).toBeGreaterThan(99_000);
  });
});
