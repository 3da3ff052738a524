import { asyncScheduler, Observable, type MonoTypeOperatorFunction, type SchedulerLike } from 'rxjs';

/** `--wait min:max` in milliseconds: how long changes may fold into one render. */
export interface WaitWindow {
  readonly minMs: number;
  readonly maxMs: number;
}

/**
 * Let changes settle (consul-template's `wait`): a value is passed on once `minMs` passed without another, but
 * never later than `maxMs` after the first value that is still waiting; only the latest is passed on. With
 * `minMs` 0 every value passes at once. Completion passes on a waiting value first.
 */
export function settle<T>(
  window: WaitWindow,
  scheduler: SchedulerLike = asyncScheduler,
): MonoTypeOperatorFunction<T> {
  if (window.minMs <= 0) return (source) => source;
  return (source) =>
    new Observable<T>((subscriber) => {
      let pending: { value: T } | undefined;
      let quiet: { unsubscribe(): void } | undefined;
      let deadline: { unsubscribe(): void } | undefined;
      const flush = () => {
        quiet?.unsubscribe();
        deadline?.unsubscribe();
        quiet = deadline = undefined;
        const waiting = pending;
        pending = undefined;
        if (waiting) subscriber.next(waiting.value);
      };
      const subscription = source.subscribe({
        next: (value) => {
          pending = { value };
          quiet?.unsubscribe();
          quiet = scheduler.schedule(flush, window.minMs);
          deadline ??= scheduler.schedule(flush, Math.max(window.minMs, window.maxMs));
        },
        error: (error: unknown) => subscriber.error(error),
        complete: () => {
          flush();
          subscriber.complete();
        },
      });
      return () => {
        subscription.unsubscribe();
        quiet?.unsubscribe();
        deadline?.unsubscribe();
      };
    });
}
