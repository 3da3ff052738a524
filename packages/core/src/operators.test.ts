import { Observable } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import { coalesceWhileBusy } from './operators.js';

const scheduler = () => new TestScheduler((actual, expected) => expect(actual).toEqual(expected));

describe('coalesceWhileBusy', () => {
  it('runs the first value at once and folds a burst into one trailing run with the latest value', () => {
    scheduler().run(({ cold, hot, expectObservable }) => {
      // Work takes 3 frames and echoes its input in upper case.
      const work = (v: string) => cold('---(x|)', { x: v.toUpperCase() });
      const source = hot('a-bc-------d--|');
      //                  a runs 0..3; b,c arrive while busy → one run with c at 3..6; d alone at 11..14
      expectObservable(source.pipe(coalesceWhileBusy(work))).toBe('---A--C-------(D|)', {
        A: 'A',
        C: 'C',
        D: 'D',
      });
    });
  });

  it('adds no delay to an isolated value (unlike a debounce)', () => {
    scheduler().run(({ cold, hot, expectObservable }) => {
      const work = (v: string) => cold('(x|)', { x: v });
      expectObservable(hot('a---b---|').pipe(coalesceWhileBusy(work))).toBe('a---b---|');
    });
  });

  it('completes only after the work in flight finishes', () => {
    scheduler().run(({ cold, hot, expectObservable }) => {
      const work = (v: string) => cold('-----(x|)', { x: v });
      expectObservable(hot('a|').pipe(coalesceWhileBusy(work))).toBe('-----(a|)');
    });
  });

  it('stops the work in flight when unsubscribed', () => {
    let torn = false;
    const work = () =>
      new Observable<never>(() => () => {
        torn = true;
      });
    const sub = new Observable<string>((s) => s.next('a')).pipe(coalesceWhileBusy(work)).subscribe();
    sub.unsubscribe();
    expect(torn).toBe(true);
  });
});
