import { describe, expect, it } from 'vitest';
import { SIGINT, SIGTERM, signalName, signalNumber } from './signals.js';

describe('signals', () => {
  it.each([
    ['SIGTERM', 15],
    ['TERM', 15],
    ['sigquit', 3],
    ['15', 15],
    [' SIGUSR1 ', 10],
  ])('StopSignal %j is signal %i', (text, n) => expect(signalNumber(text)).toBe(n));

  it.each([[undefined], [''], ['SIGNOPE'], ['RTMIN+3x']])('%j names no signal', (text) =>
    expect(signalNumber(text)).toBeUndefined(),
  );

  it('names numbers back', () => {
    expect(signalName(SIGTERM)).toBe('SIGTERM');
    expect(signalName(SIGINT)).toBe('SIGINT');
    expect(signalName(250)).toBe('250');
  });
});
