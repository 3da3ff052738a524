import type { ContainerInspectInfo } from 'dockerode';
import {
  defer,
  finalize,
  groupBy,
  mergeMap,
  of,
  Subject,
  switchMap,
  takeUntil,
  timer,
  type Observable,
} from 'rxjs';
import type { DockerApi } from './docker-source.js';
import { concurrencyLimit } from './kit/pool.js';
import { coalesceWhileBusy } from './operators.js';

/** A request to look at one container. */
export interface Look {
  readonly id: string;
  /** Set when a `die` event already told us the container stopped, with its exit code. */
  readonly exitCode: number | undefined;
}

/** What one look found. */
export type Inspection = { readonly id: string } & (
  | { readonly state: 'found'; readonly info: ContainerInspectInfo }
  /** Known stopped from a `die` event, without an inspect. */
  | { readonly state: 'stopped'; readonly exitCode: number }
  | { readonly state: 'gone' }
  | { readonly state: 'error'; readonly error: unknown }
);

const isNotFound = (error: unknown) => (error as { statusCode?: number } | undefined)?.statusCode === 404;

/**
 * The inspect stage. Per container: inspect at once, and coalesce the looks that arrive meanwhile into one
 * more. A `die` needs no inspect: the event says the process exited (and with which code), and an inspect
 * at that moment blocks for a few hundred ms while the engine tears the container down. Never errors.
 */
export function inspectContainers(
  looks$: Observable<Look>,
  docker: DockerApi,
  /**
   * Inspects in flight at once, across containers. An inventory of 1,000 containers would otherwise hold
   * 1,000 inspect documents at the same moment, and the heap V8 grows for that peak it keeps.
   */
  concurrency = 16,
): Observable<Inspection> {
  const limited = concurrencyLimit(concurrency);
  const inspect = async (id: string): Promise<Inspection> => {
    try {
      return { id, state: 'found', info: await limited(() => docker.getContainer(id).inspect()) };
    } catch (error) {
      return isNotFound(error) ? { id, state: 'gone' } : { id, state: 'error', error };
    }
  };
  return defer(() => {
    // groupBy keeps its source subscribed while a group's duration runs (up to 5 s after the last look), even
    // once nobody listens: cut the source off explicitly when the subscriber goes.
    const unsubscribed$ = new Subject<void>();
    return looks$.pipe(
      takeUntil(unsubscribed$),
      // A container's group lives while it is busy and 5 s beyond, so churn leaves no state behind.
      groupBy((look) => look.id, { duration: (group$) => group$.pipe(switchMap(() => timer(5_000))) }),
      mergeMap((group$) =>
        group$.pipe(
          coalesceWhileBusy(({ id, exitCode }) =>
            exitCode === undefined
              ? defer(() => inspect(id))
              : of<Inspection>({ id, state: 'stopped', exitCode }),
          ),
        ),
      ),
      finalize(() => unsubscribed$.next()),
    );
  });
}
