import type { DockerApi } from '../../docker-calls.js';
import { Observable } from 'rxjs';
import { defaultBackoff, type BackoffOptions } from '../../backoff.js';
import { CONTAINER_ID, normaliseEvent, type EventAction } from '../../engine-events.js';
import { destroyStream, keepStreamOpen, openWithin, type StreamSession } from '../../kit/event-stream.js';
import { jsonLines } from '../../kit/json-lines.js';
import { silentLogger, type Logger } from '../../logger.js';

/** What the Docker side tells the bridge. Events are only hints: the bridge inspects to learn the state. */
export type DockerHint =
  /** Something about this container may have changed. */
  | {
      readonly kind: 'event';
      readonly id: string;
      /** The action without detail (`health_status: healthy` → `health_status`). */
      readonly action: EventAction;
      readonly timeNano: number;
      /** For `die`: the exit code the engine reported. */
      readonly exitCode?: number;
      /** For `kill`: the signal number the engine sent. */
      readonly signal?: number;
      /** For `health_status`: the status, where the engine names it (Podman does not). */
      readonly health?: string;
    }
  /**
   * The complete list of running containers, sent after every (re)connect of the event stream, with the id
   * segments each one's services may use (see `idSegmentsOf`).
   */
  | {
      readonly kind: 'inventory';
      readonly ids: readonly string[];
      readonly segments?: ReadonlyMap<string, readonly string[]>;
    }
  /** The event stream is open (true) or lost (false). */
  | { readonly kind: 'connection'; readonly connected: boolean };

// The action names and the Docker/Podman differences live in engine-events.ts.
export { CONTAINER_ACTIONS, type EventAction } from '../../engine-events.js';

export interface DockerSourceOptions {
  readonly docker: DockerApi;
  readonly logger?: Logger;
  readonly backoff?: BackoffOptions;
  /**
   * How often to check that the open event stream is still delivering: a bounded query for the events of the
   * last interval is compared with what the stream delivered. 0 disables the check.
   */
  readonly stallCheckMs?: number;
  /**
   * How long the `/events` response may take to begin. An engine or socket proxy that holds the response
   * headers would otherwise leave the bridge waiting forever, registering nothing. Default: the stall check
   * interval, at most 5 s (5 s when the check is off).
   */
  readonly streamStartMs?: number;
  /** Longest event line accepted (bytes); longer ones are skipped as they arrive. */
  readonly maxLineBytes?: number;
}

/** One event as the source reads it, every field checked: the engine is not trusted. */
interface EngineEvent {
  readonly type: string;
  readonly action: EventAction;
  readonly id: string;
  readonly timeNano: number;
  readonly attributes: Readonly<Record<string, unknown>>;
  readonly health?: string;
}

/**
 * How many delivered events the stall check remembers; a window with more is not checked (see `dockerHints`).
 * A host's normal churn stays far below it.
 */
const MAX_REMEMBERED_EVENTS = 4_096;
/** Events stamped further ahead than this are stamped now: a hostile clock must not move replays. */
const MAX_CLOCK_SKEW_NS = 60e9;

const record = (value: unknown): Record<string, unknown> | undefined =>
  typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
const text = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);
const finite = (value: unknown): number | undefined =>
  typeof value === 'number' && Number.isFinite(value) ? value : undefined;

/**
 * The event, if it concerns a container the bridge cares about, with each field validated; undefined for
 * anything else, malformed or not. `timeNano` falls back to `time`, then to now, and is never in the future.
 */
export function readEvent(raw: unknown, now = Date.now()): EngineEvent | undefined {
  // Docker's and Podman's names and shapes, as one (engine-events.ts).
  const normal = normaliseEvent(raw);
  if (normal === undefined) return undefined;
  const event = record(raw)!;
  const nowNano = now * 1e6;
  const stamped = finite(event.timeNano) ?? (finite(event.time) ?? NaN) * 1e9;
  const timeNano =
    Number.isFinite(stamped) && stamped >= 0 && stamped <= nowNano + MAX_CLOCK_SKEW_NS ? stamped : nowNano;
  return { ...normal, timeNano };
}

/** An integer attribute (`exitCode`, `signal`), or undefined. */
function integerAttribute(attributes: Readonly<Record<string, unknown>>, key: string): number | undefined {
  const value = attributes[key];
  const parsed = typeof value === 'string' && /^-?\d{1,10}$/.test(value.trim()) ? Number(value) : NaN;
  return Number.isSafeInteger(parsed) ? parsed : undefined;
}

/** `SERVICE_ID`, `SERVICE_<port>_ID`, `SERVICE_<port>_<proto>_ID`: each replaces the name in service ids. */
const ID_LABEL = /^SERVICE_(?:\d+_(?:(?:TCP|UDP)_)?)?ID$/i;

/**
 * The middle parts (`<node>:<segment>:<port>`) the ids of a listed container's services may have, read from
 * the list alone: its name and its `SERVICE_*ID` labels. (An id set through the environment shows only in
 * an inspect.)
 */
export function idSegmentsOf(container: unknown): string[] {
  const summary = record(container);
  const names = Array.isArray(summary?.Names) ? summary.Names : [];
  const labels = record(summary?.Labels) ?? {};
  return [
    ...names.flatMap((name) => (typeof name === 'string' ? [name.replace(/^\//, '')] : [])),
    ...Object.entries(labels).flatMap(([key, value]) =>
      ID_LABEL.test(key) && typeof value === 'string' ? [value.trim()] : [],
    ),
  ].filter((segment) => segment !== '');
}

/** An inventory hint from a container list, untrusted: entries without a valid id are left out. */
export function inventoryHint(list: unknown): DockerHint {
  if (!Array.isArray(list)) throw new Error('docker container list is not a JSON array');
  const segments = new Map<string, readonly string[]>();
  for (const container of list) {
    const id = text(record(container)?.Id);
    if (id !== undefined && CONTAINER_ID.test(id)) segments.set(id, idSegmentsOf(container));
  }
  return { kind: 'inventory', ids: [...segments.keys()], segments };
}

const eventKey = (e: EngineEvent) => `${e.timeNano}|${e.id}|${e.action}`;

/**
 * Docker's event stream as hints, kept open forever (`keepStreamOpen`): subscribes to events first, then lists
 * the running containers (so nothing that happens in between is lost); when the stream ends, errors or stalls
 * it reconnects with backoff and replays from the last event seen. It never completes or errors. Everything
 * the engine sends is validated; lines are capped (`maxLineBytes`).
 */
export function dockerHints(options: DockerSourceOptions): Observable<DockerHint> {
  const { docker } = options;
  const logger = options.logger ?? silentLogger;
  const stallCheckMs = options.stallCheckMs ?? 15_000;
  const streamStartMs = options.streamStartMs ?? (stallCheckMs > 0 ? Math.min(stallCheckMs, 5_000) : 5_000);

  return new Observable<DockerHint>((subscriber) => {
    // Unix seconds to replay from; Docker's `since` is inclusive, so a replayed event is simply seen twice.
    let since: number | undefined;
    // When the stream was last asked for (unix seconds).
    let askedAt = 0;
    let closed = false;
    const checker =
      stallCheckMs > 0
        ? stallChecker({
            docker,
            logger,
            intervalMs: stallCheckMs,
            startMs: streamStartMs,
            maxLineBytes: options.maxLineBytes,
          })
        : undefined;
    let stopChecking: (() => void) | undefined;

    /** The running containers as an inventory hint; a failure reconnects the session given. */
    const listInventory = async (session?: StreamSession): Promise<boolean> => {
      try {
        const hint = inventoryHint(await docker.listContainers());
        if (closed || (session !== undefined && !session.current)) return false;
        subscriber.next(hint);
        return true;
      } catch (error) {
        session?.reconnect('inventory failed', error);
        return false;
      }
    };

    const stop = keepStreamOpen(
      {
        name: 'docker event stream',
        open: (signal) => {
          askedAt = Math.floor(Date.now() / 1000);
          // No server-side filters: Podman's drop events (engine-events.ts); readEvent filters.
          return docker.getEvents({ ...(since !== undefined && { since }), abortSignal: signal });
        },
        startMs: streamStartMs,
        backoff: options.backoff ?? defaultBackoff,
        logger,
        ...(options.maxLineBytes !== undefined && { maxLineBytes: options.maxLineBytes }),
        lateNote:
          ' (the engine or a proxy between holds the /events response); listing containers without it',
      },
      {
        value: (raw) => {
          const event = readEvent(raw);
          if (event === undefined) return;
          since = Math.floor(event.timeNano / 1e9);
          checker?.delivered(event);
          const exitCode = integerAttribute(event.attributes, 'exitCode');
          const signal = integerAttribute(event.attributes, 'signal');
          subscriber.next({
            kind: 'event',
            id: event.id,
            action: event.action,
            timeNano: event.timeNano,
            ...(exitCode !== undefined && { exitCode }),
            ...(signal !== undefined && { signal }),
            ...(event.health !== undefined && { health: event.health }),
          });
        },
        open: (session) => {
          const from = Math.max(askedAt, since ?? askedAt);
          since ??= askedAt;
          subscriber.next({ kind: 'connection', connected: true });
          void listInventory(session).then((listed) => {
            if (!listed) return;
            session.recovered();
            stopChecking = checker?.start(session, from);
          });
        },
        lost: () => {
          stopChecking?.();
          stopChecking = undefined;
          subscriber.next({ kind: 'connection', connected: false });
        },
        retrying: (late) => {
          // Degrade to polling until the stream starts: list now so running containers get registered, and
          // replay from here once a stream opens.
          if (!late) return;
          since = askedAt;
          void listInventory();
        },
      },
    );
    return () => {
      closed = true;
      stopChecking?.();
      stop();
    };
  });
}

/**
 * The stall check: remembers what the live stream delivered and, every `intervalMs`, compares it with a
 * bounded query for the events of a window that ended a few seconds ago. A stream that stays open but stops
 * delivering is reconnected (and replays). Memory stays bounded: remembered events are pruned on every tick,
 * whatever the queries do, and at most `MAX_REMEMBERED_EVENTS` are kept (a window that delivered more is not
 * checked: a stream delivering that much is not stalled). The whole query, body included, is bounded by the
 * interval, so an engine that never ends its body costs no connection beyond it.
 */
function stallChecker(options: {
  readonly docker: DockerApi;
  readonly logger: Logger;
  readonly intervalMs: number;
  readonly startMs: number;
  readonly maxLineBytes: number | undefined;
}) {
  const { docker, logger, intervalMs } = options;
  const delivered = new Map<string, number>();
  let floodedSecond: number | undefined;
  let failures = 0;

  const check = async (session: StreamSession, from: number, until: number, abort: AbortController) => {
    if (floodedSecond !== undefined && floodedSecond >= from - 1) return;
    const deadline = setTimeout(() => abort.abort(new Error('stall check query timed out')), intervalMs);
    const missed: EngineEvent[] = [];
    try {
      const past = await openWithin(
        (signal) => docker.getEvents({ since: from, until, abortSignal: signal }),
        options.startMs,
        abort,
      );
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => {
          destroyStream(past);
          reject(abort.signal.reason instanceof Error ? abort.signal.reason : new Error('aborted'));
        };
        if (abort.signal.aborted) return onAbort();
        abort.signal.addEventListener('abort', onAbort, { once: true });
        past.on(
          'data',
          jsonLines(
            (raw) => {
              const event = readEvent(raw);
              if (event !== undefined && !delivered.has(eventKey(event))) missed.push(event);
            },
            () => undefined,
            options.maxLineBytes,
          ),
        );
        past.on('end', resolve);
        past.on('close', resolve);
        past.on('error', reject);
      });
    } catch (error) {
      if (!session.current) return;
      failures += 1;
      if (failures === 1) {
        logger.warn({ err: error }, 'docker stall check failed; the event stream is not verified meanwhile');
      }
      return;
    } finally {
      clearTimeout(deadline);
    }
    if (failures > 0) logger.info({ failedChecks: failures }, 'docker stall check works again');
    failures = 0;
    if (missed.length > 0 && session.current) {
      logger.warn({ missed: missed.length }, 'docker event stream stalled: events were not delivered');
      session.reconnect('stalled');
    }
  };

  return {
    delivered(event: EngineEvent) {
      if (delivered.size < MAX_REMEMBERED_EVENTS) delivered.set(eventKey(event), Date.now());
      else floodedSecond = Math.floor(Date.now() / 1000);
    },
    /** Check `session`'s stream from `from` (unix seconds) on; returns the function that stops it. */
    start(session: StreamSession, from: number): () => void {
      let checkedUntil = from;
      let query: AbortController | undefined;
      const timer = setInterval(() => {
        const horizon = Date.now() - 3 * intervalMs;
        for (const [key, at] of delivered) {
          if (at >= horizon) break;
          delivered.delete(key);
        }
        // One query at a time: one still running (bounded by the interval) is given up for the next.
        query?.abort(new Error('stall check query outlived its interval'));
        // Query windows end a few seconds in the past: anything older must have reached the live stream.
        const until = Math.floor(Date.now() / 1000) - 2;
        if (until <= checkedUntil) return;
        const windowFrom = checkedUntil;
        checkedUntil = until;
        query = new AbortController();
        void check(session, windowFrom, until, query);
      }, intervalMs);
      return () => {
        clearInterval(timer);
        query?.abort();
      };
    },
  };
}
