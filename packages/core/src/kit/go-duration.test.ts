import { describe, expect, it } from 'vitest';
import { formatGoDuration, parseGoDuration } from './go-duration.js';

describe('parseGoDuration (Go time.ParseDuration)', () => {
  it.each([
    ['0', 0],
    ['+0', 0],
    ['-0', 0],
    ['0s', 0],
    ['10s', 10_000],
    ['1m30s', 90_000],
    ['1h30m', 5_400_000],
    ['1.5h', 5_400_000],
    ['500ms', 500],
    ['.5s', 500],
    ['5.s', 5_000],
    ['1.s5ms', 1_005],
    ['2h45m0.5s', 9_900_500],
    ['-1.5s', -1_500],
    ['+3m', 180_000],
    ['1500us', 1.5],
    ['1500µs', 1.5],
    ['1500μs', 1.5],
    ['250ns', 0.00025],
    ['1s1s', 2_000],
    ['0.000000001s', 0.000001],
    ['2562047h47m16.854775807s', 9_223_372_036_854.775],
  ])('%s → %d ms', (text, ms) => {
    expect(parseGoDuration(text)).toBeCloseTo(ms, 6);
  });

  it.each([
    ['', 'time: invalid duration ""'],
    ['-', 'time: invalid duration "-"'],
    ['abc', 'time: invalid duration "abc"'],
    ['.s', 'time: invalid duration ".s"'],
    ['+-1s', 'time: invalid duration "+-1s"'],
    ['10', 'time: missing unit in duration "10"'],
    ['00', 'time: missing unit in duration "00"'],
    ['1.5.5s', 'time: missing unit in duration "1.5.5s"'],
    ['1s2', 'time: missing unit in duration "1s2"'],
    ['1d', 'time: unknown unit "d" in duration "1d"'],
    ['1 s', 'time: unknown unit " s" in duration "1 s"'],
    ['1S', 'time: unknown unit "S" in duration "1S"'],
    ['3000000h', 'time: invalid duration "3000000h"'],
    ['2562047h47m16.854775808s', 'time: invalid duration "2562047h47m16.854775808s"'],
  ])('%j is refused with Go’s words', (text, message) => {
    expect(() => parseGoDuration(text)).toThrow(message);
  });

  it('allows exactly -2^63 ns, as Go does', () => {
    expect(parseGoDuration('-2562047h47m16.854775808s')).toBeCloseTo(-9_223_372_036_854.775, 2);
  });
});

describe('formatGoDuration (Go Duration.String)', () => {
  it.each([
    [0, '0s'],
    [90_000, '1m30s'],
    [500, '500ms'],
    [1_500, '1.5s'],
    [3_600_000, '1h0m0s'],
    [9_900_500, '2h45m0.5s'],
    [0.25, '250µs'],
    [0.0015, '1.5µs'],
    [0.000_001, '1ns'],
    [-61_000, '-1m1s'],
    [30 * 24 * 3_600_000, '720h0m0s'],
  ])('%d ms → %s', (ms, text) => {
    expect(formatGoDuration(ms)).toBe(text);
  });

  it('round-trips through parseGoDuration', () => {
    for (const ms of [1, 999, 1_001, 59_999, 86_400_000, 0.123]) {
      expect(parseGoDuration(formatGoDuration(ms))).toBeCloseTo(ms, 9);
    }
  });
});
