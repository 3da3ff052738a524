import { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import { settle } from './settle.js';

const scheduler = () => new TestScheduler((actual, expected) => expect(actual).toEqual(expected));

describe('settle (--wait min:max)', () => {
  it('passes the latest value once `min` went by without another', () => {
    scheduler().run(({ hot, expectObservable }) => {
      const source = hot('a-b-------c------|');
      //                  b is followed by 5 quiet frames at 7; c alone waits its 5 frames → 15
      expectObservable(source.pipe(settle({ minMs: 5, maxMs: 100 }))).toBe('-------b-------c-|');
    });
  });

  it('never waits longer than `max` after the first value still waiting', () => {
    scheduler().run(({ hot, expectObservable }) => {
      const source = hot('abcdefghij|');
      //                  a change every frame: min 3 is never quiet; max 4 after a → e at 4, then from f: j at 9
      expectObservable(source.pipe(settle({ minMs: 3, maxMs: 4 }))).toBe('----e----j|');
    });
  });

  it('min 0 passes every value at once; completion passes a waiting value first', () => {
    scheduler().run(({ hot, expectObservable }) => {
      expectObservable(hot('ab-c|').pipe(settle({ minMs: 0, maxMs: 0 }))).toBe('ab-c|');
      expectObservable(hot('a-|').pipe(settle({ minMs: 5, maxMs: 10 }))).toBe('--(a|)');
    });
  });
});
