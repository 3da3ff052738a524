import { Observable, Subscription, type OperatorFunction } from 'rxjs';

/**
 * Run `work` for the first value at once; values arriving while it runs collapse into one more run with the
 * latest value when it finishes. A burst of Docker events for one container (create, connect, start...)
 * thus costs at most two inspects and adds no delay to the first, unlike a debounce.
 */
export function coalesceWhileBusy<T, R>(work: (value: T) => Observable<R>): OperatorFunction<T, R> {
  return (source) =>
    new Observable<R>((subscriber) => {
      let busy = false;
      let pending: { value: T } | undefined;
      let sourceDone = false;
      const inner = new Subscription();
      const run = (value: T) => {
        busy = true;
        inner.add(
          work(value).subscribe({
            next: (result) => subscriber.next(result),
            error: (error: unknown) => subscriber.error(error),
            complete: () => {
              busy = false;
              const next = pending;
              pending = undefined;
              if (next) run(next.value);
              else if (sourceDone) subscriber.complete();
            },
          }),
        );
      };
      const subscription = source.subscribe({
        next: (value) => {
          if (busy) pending = { value };
          else run(value);
        },
        error: (error: unknown) => subscriber.error(error),
        complete: () => {
          sourceDone = true;
          if (!busy) subscriber.complete();
        },
      });
      return () => {
        subscription.unsubscribe();
        inner.unsubscribe();
      };
    });
}
