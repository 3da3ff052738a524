import type { ContainerInspectInfo } from 'dockerode';
import { Observable } from 'rxjs';
import type { DockerApi } from '../../docker-calls.js';

/** A request to look at one container. */
export interface Look {
  readonly id: string;
  /** Set when a `die` event already told us the container stopped, with its exit code. */
  readonly exitCode: number | undefined;
  /** Set when a `destroy` event already told us the container is gone. */
  readonly gone?: boolean;
  /** A look again after a failed inspect: it runs in the retry lane, so failing containers never crowd out others. */
  readonly retry?: boolean;
}

/** What one look found. */
export type Inspection = { readonly id: string } & (
  | {
      readonly state: 'found';
      readonly info: ContainerInspectInfo;
      /** Read from a container list entry (`--labels-only`), not an inspect. */
      readonly listed?: true;
    }
  /** Known stopped from a `die` event, without an inspect. */
  | { readonly state: 'stopped'; readonly exitCode: number }
  | { readonly state: 'gone' }
  | { readonly state: 'error'; readonly error: unknown }
);

export interface InspectOptions {
  /**
   * Inspects in flight at once for fresh looks. An inventory of 1,000 containers would otherwise hold 1,000
   * inspect documents at the same moment, and the heap V8 grows for that peak it keeps.
   */
  readonly concurrency?: number;
  /** Inspects in flight at once for retries of failed ones, beside `concurrency`. */
  readonly retryConcurrency?: number;
  /**
   * Whether the bridge tracks this container. With more than `listAbove` looks waiting and an inspect answered
   * "no such container" since the last list, one container list answers those of untracked containers that do
   * not run (a burst of events for containers already gone, say) instead of one inspect each; tracked ones are
   * always inspected. Absent: every look is inspected.
   */
  readonly tracked?: (id: string) => boolean;
  /** Default 64. */
  readonly listAbove?: number;
  /**
   * `--labels-only`: the inspect document a container list entry stands for, when it can (`listedAsInspect`).
   * Then a crowd of more than `listAbove` looks is answered by one list, ghosts or not: every container it
   * shows running and this reads is answered from its entry; the rest are inspected.
   */
  readonly fromList?: (entry: unknown) => ContainerInspectInfo | undefined;
  /**
   * With `fromList`, how long inspects wait for a list in flight to answer (default 1 s): a list that hangs
   * (until its own bound ends it) never holds back the looks behind it for longer.
   */
  readonly listHoldMs?: number;
}

const isNotFound = (error: unknown) => (error as { statusCode?: number } | undefined)?.statusCode === 404;
const isDocument = (value: unknown): value is ContainerInspectInfo =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** One lane of the scheduler: the looks waiting for a slot (in arrival order) and the slots' limit. */
interface Lane {
  /** By container id: the look and the sequence number it was queued with. */
  readonly waiting: Map<string, { readonly look: Look; readonly seq: number }>;
  readonly limit: number;
  running: number;
}

/**
 * The inspect stage. Per container: inspect at once, and coalesce the looks that arrive meanwhile into one
 * more. A `die` or `destroy` needs no inspect: the event says what happened, so it is answered at once and an
 * inspect still running for that container is aborted (its answer would be older than the event). Two lanes
 * of bounded concurrency, fresh looks and retries, so containers whose inspects keep failing or hanging never
 * hold the slots a new container needs. The state is three maps keyed by container id, nothing per container
 * outlives its work. Never errors; completes when `looks$` does and the work in flight is done.
 */
export function inspectContainers(
  looks$: Observable<Look>,
  docker: DockerApi,
  options: InspectOptions = {},
): Observable<Inspection> {
  return new Observable<Inspection>((subscriber) => {
    const fresh: Lane = { waiting: new Map(), limit: options.concurrency ?? 16, running: 0 };
    const retries: Lane = { waiting: new Map(), limit: options.retryConcurrency ?? 4, running: 0 };
    /** Inspects in flight, by container id. */
    const running = new Map<string, { readonly abort: AbortController; readonly lane: Lane }>();
    /** Looks that arrived while their container's inspect ran: one more inspect follows it. */
    const again = new Map<string, Look>();
    let sourceDone = false;
    let queued = 0;
    /** The container list in flight, if any. */
    let listing: AbortController | undefined;
    /** Labels only: inspects wait while this is set (a list in flight, for at most `listHoldMs`). */
    let holding: NodeJS.Timeout | undefined;
    const release = () => {
      clearTimeout(holding);
      holding = undefined;
    };
    /**
     * Looks queued for containers not tracked (the only ones a list can answer), and that count when the last
     * list started: a list answers for the looks queued before it.
     */
    let untracked = 0;
    let untrackedListed = 0;
    /** Inspects answered "no such container" since the last list: the crowd has ghosts a list can answer. */
    let goneSinceList = 0;
    /** `queued` when the last list started: looks queued since are those no list has answered yet. */
    let listedSeq = 0;
    const { fromList } = options;
    const listAbove = options.listAbove ?? 64;

    const finishIfDone = () => {
      if (
        sourceDone &&
        running.size === 0 &&
        listing === undefined &&
        fresh.waiting.size === 0 &&
        retries.waiting.size === 0
      ) {
        subscriber.complete();
      }
    };

    const stopRunning = (id: string) => {
      const inFlight = running.get(id);
      if (inFlight === undefined) return;
      running.delete(id);
      inFlight.lane.running -= 1;
      inFlight.abort.abort();
    };

    const enqueue = (look: Look) => {
      const { id } = look;
      if (running.has(id)) {
        again.set(id, look);
        return;
      }
      if (fresh.waiting.has(id)) return;
      queued += 1;
      if (options.tracked?.(id) === false) untracked += 1;
      if (look.retry === true) {
        if (!retries.waiting.has(id)) retries.waiting.set(id, { look, seq: queued });
        return;
      }
      retries.waiting.delete(id);
      fresh.waiting.set(id, { look, seq: queued });
    };

    /**
     * Many looks waiting: list the running containers once, and answer the looks queued before the list of
     * untracked containers it does not show (they run no services) without inspecting them.
     */
    const listWhenCrowded = () => {
      const { tracked } = options;
      if (tracked === undefined || listing !== undefined) return;
      if (fresh.waiting.size + retries.waiting.size <= listAbove) return;
      if (fromList !== undefined) {
        // Labels only: the list answers running containers too. Only for looks no list has answered yet.
        if (queued - listedSeq <= listAbove) return;
      } else {
        // Only for looks of untracked containers that no list has answered yet: looks at tracked containers
        // (a list of 10,000 answers none of them) cost none.
        if (untracked - untrackedListed <= listAbove) return;
        // Nor while every inspect finds its container: a burst of starts would pay a list of everything (60
        // ms of CPU at 10,000 containers) for nothing. Ghosts show as inspects answered 404.
        if (goneSinceList === 0) return;
      }
      const abort = new AbortController();
      listing = abort;
      if (fromList !== undefined) {
        holding = setTimeout(() => {
          holding = undefined;
          pump();
        }, options.listHoldMs ?? 1_000);
      }
      const before = queued;
      listedSeq = queued;
      untrackedListed = untracked;
      goneSinceList = 0;
      void docker
        .listContainers({ abortSignal: abort.signal })
        .then(
          (list: unknown) =>
            new Map<unknown, unknown>(
              (Array.isArray(list) ? (list as unknown[]) : []).map((entry) => [
                (entry as { Id?: unknown } | null)?.Id,
                entry,
              ]),
            ),
          () => undefined,
        )
        .then((running) => {
          if (listing !== abort) return;
          listing = undefined;
          release();
          // The list failed: every look is inspected as usual.
          if (running !== undefined) {
            for (const lane of [fresh, retries]) {
              for (const [id, { seq }] of lane.waiting) {
                if (seq > before) continue;
                const entry = running.get(id);
                const info = entry !== undefined ? fromList?.(entry) : undefined;
                if (info !== undefined) {
                  lane.waiting.delete(id);
                  subscriber.next({ id, state: 'found', info, listed: true });
                } else if (entry === undefined && !tracked(id)) {
                  lane.waiting.delete(id);
                  subscriber.next({ id, state: 'gone' });
                }
              }
            }
          }
          pump();
          finishIfDone();
        });
    };

    const inspect = async (id: string, signal: AbortSignal): Promise<Inspection> => {
      try {
        const info: unknown = await docker.getContainer(id).inspect({ abortSignal: signal });
        if (!isDocument(info)) throw new Error('docker inspect answered with no JSON object');
        return { id, state: 'found', info };
      } catch (error) {
        return isNotFound(error) ? { id, state: 'gone' } : { id, state: 'error', error };
      }
    };

    const start = (look: Look, lane: Lane) => {
      const abort = new AbortController();
      running.set(look.id, { abort, lane });
      lane.running += 1;
      void inspect(look.id, abort.signal).then((inspection) => {
        // Aborted: a die/destroy answered for this container meanwhile, or the subscriber went.
        if (running.get(look.id)?.abort !== abort) return;
        running.delete(look.id);
        lane.running -= 1;
        if (inspection.state === 'gone') goneSinceList += 1;
        subscriber.next(inspection);
        const next = again.get(look.id);
        if (next !== undefined) {
          again.delete(look.id);
          enqueue(next);
        }
        pump();
        finishIfDone();
      });
    };

    const pump = () => {
      listWhenCrowded();
      // Labels only: the list in flight answers what waits (an inspect meanwhile would be work thrown away);
      // what it cannot answer, or what came after it, is inspected once it is in, or once it is late.
      if (holding !== undefined) return;
      for (const lane of [fresh, retries]) {
        for (const [id, { look }] of lane.waiting) {
          if (lane.running >= lane.limit) break;
          lane.waiting.delete(id);
          start(look, lane);
        }
      }
    };

    const subscription = looks$.subscribe({
      next: (look) => {
        const { id } = look;
        if (look.exitCode !== undefined || look.gone === true) {
          // Known without an inspect: anything waiting or running for this container is older than this.
          fresh.waiting.delete(id);
          retries.waiting.delete(id);
          again.delete(id);
          stopRunning(id);
          subscriber.next(
            look.gone === true ? { id, state: 'gone' } : { id, state: 'stopped', exitCode: look.exitCode! },
          );
        } else enqueue(look);
        pump();
      },
      error: (error: unknown) => subscriber.error(error),
      complete: () => {
        sourceDone = true;
        finishIfDone();
      },
    });
    return () => {
      subscription.unsubscribe();
      for (const id of [...running.keys()]) stopRunning(id);
      listing?.abort();
      listing = undefined;
      release();
      fresh.waiting.clear();
      retries.waiting.clear();
      again.clear();
    };
  });
}
