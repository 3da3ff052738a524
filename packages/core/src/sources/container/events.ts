import type { ContainerInfo, ContainerInspectInfo, GetEventsOptions } from 'dockerode';
import type { Readable } from 'node:stream';
import { Observable } from 'rxjs';
import { backoffDelay, defaultBackoff, type BackoffOptions } from './backoff.js';
import { CONTAINER_ID, normaliseEvent, type EventAction } from './engine-events.js';
import { jsonLines } from './kit/json-lines.js';
import { limitedWarning } from './kit/log-limit.js';
import { silentLogger, type Logger } from './logger.js';

/**
 * The part of dockerode the bridge uses; a test can hand in anything shaped like it. dockerode passes
 * `abortSignal` to the HTTP request of each call.
 */
export interface DockerApi {
  getEvents(options?: GetEventsOptions & { abortSignal?: AbortSignal }): Promise<NodeJS.ReadableStream>;
  listContainers(options?: { all?: boolean; abortSignal?: AbortSignal }): Promise<ContainerInfo[]>;
  getContainer(id: string): {
    inspect(options?: { abortSignal?: AbortSignal }): Promise<ContainerInspectInfo>;
  };
}

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
export { CONTAINER_ACTIONS, type EventAction } from './engine-events.js';

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

/** The `/events` response did not begin within the bound. */
class StreamStartTimeout extends Error {
  constructor(readonly ms: number) {
    super(`docker /events response did not begin within ${ms} ms`);
  }
}

/** dockerode hands out the HTTP response, a Readable, typed as the narrower ReadableStream. */
const destroy = (stream: NodeJS.ReadableStream) => (stream as Readable).destroy();

const eventKey = (e: EngineEvent) => `${e.timeNano}|${e.id}|${e.action}`;

/**
 * Docker's event stream as hints, kept open forever: subscribes to events first, then lists the running
 * containers (so nothing that happens in between is lost); when the stream ends, errors or stalls it
 * reconnects with backoff and replays from the last event seen. It never completes or errors. Everything the
 * engine sends is validated; lines are capped (`maxLineBytes`) and unparseable ones are warned about at a
 * limited rate.
 */
export function dockerHints(options: DockerSourceOptions): Observable<DockerHint> {
  const { docker } = options;
  const logger = options.logger ?? silentLogger;
  const backoff = options.backoff ?? defaultBackoff;
  const stallCheckMs = options.stallCheckMs ?? 15_000;
  const streamStartMs = options.streamStartMs ?? (stallCheckMs > 0 ? Math.min(stallCheckMs, 5_000) : 5_000);
  const warnBadLine = limitedWarning(logger, 'docker event line skipped');

  return new Observable<DockerHint>((subscriber) => {
    let closed = false;
    let attempt = 0;
    let stream: NodeJS.ReadableStream | undefined;
    let retryTimer: NodeJS.Timeout | undefined;
    let stallTimer: NodeJS.Timeout | undefined;
    // Unix seconds to replay from; Docker's `since` is inclusive, so a replayed event is simply seen twice.
    let since: number | undefined;
    let outageLogged = false;
    // Events delivered by the live stream recently, to compare against the stall check's bounded query.
    const delivered = new Map<string, number>();
    // The last second in which more events arrived than are remembered: its windows are not checked (a
    // stream that delivers that much is not stalled), and a flood costs no memory beyond the cap.
    let floodedSecond: number | undefined;
    // The stall check's query in flight, aborted when the source goes or the next check is due.
    let stallQuery: AbortController | undefined;
    let stallCheckFailures = 0;

    const drop = () => {
      clearInterval(stallTimer);
      stallTimer = undefined;
      stallQuery?.abort();
      stallQuery = undefined;
      const s = stream;
      stream = undefined;
      s?.removeAllListeners();
      s?.on('error', () => undefined);
      if (s) destroy(s);
    };

    const reconnectLater = (why: string, error?: unknown) => {
      if (closed || retryTimer !== undefined) return;
      const wasConnected = stream !== undefined;
      drop();
      if (wasConnected) subscriber.next({ kind: 'connection', connected: false });
      attempt += 1;
      const delay = backoffDelay(attempt, backoff);
      const fields = { err: error, retryInMs: delay };
      if (!outageLogged) {
        logger.warn(fields, `docker event stream ${why}; reconnecting`);
        outageLogged = true;
      } else logger.debug(fields, `docker event stream ${why}; reconnecting`);
      retryTimer = setTimeout(() => {
        retryTimer = undefined;
        void connect();
      }, delay);
    };

    const onEvent = (raw: unknown) => {
      const event = readEvent(raw);
      if (event === undefined) return;
      since = Math.floor(event.timeNano / 1e9);
      // Remembered only for the stall check, which also prunes them.
      if (stallCheckMs > 0) {
        if (delivered.size < MAX_REMEMBERED_EVENTS) delivered.set(eventKey(event), Date.now());
        else floodedSecond = Math.floor(Date.now() / 1000);
      }
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
    };

    const lines = (onValue: (value: unknown) => void) =>
      jsonLines(onValue, (why, sample) => warnBadLine({ why, line: sample }), options.maxLineBytes);

    /**
     * `getEvents`, failing with StreamStartTimeout when the response has not begun within the bound; `abort`
     * (optional) cancels it at any time, the body included.
     */
    const openEvents = async (query: GetEventsOptions, abort = new AbortController()) => {
      const timeout = setTimeout(() => abort.abort(new StreamStartTimeout(streamStartMs)), streamStartMs);
      try {
        return await docker.getEvents({ ...query, abortSignal: abort.signal });
      } catch (error) {
        throw abort.signal.reason instanceof StreamStartTimeout ? abort.signal.reason : error;
      } finally {
        clearTimeout(timeout);
      }
    };

    /**
     * Compare what the engine says happened in [from, until] with what the live stream delivered. The whole
     * query, body included, is bounded by the check interval: an engine that never ends the body costs no
     * connection beyond it.
     */
    const checkStall = async (from: number, until: number) => {
      const s = stream;
      if (s === undefined) return;
      // The stream delivered more than can be remembered in this window: it is flowing, not stalled.
      if (floodedSecond !== undefined && floodedSecond >= from - 1) return;
      const abort = new AbortController();
      stallQuery = abort;
      const deadline = setTimeout(() => abort.abort(new Error('stall check query timed out')), stallCheckMs);
      const missed: EngineEvent[] = [];
      try {
        // No server-side filters, here or below: Podman's drop events (engine-events.ts); readEvent filters.
        const past = await openEvents({ since: from, until }, abort);
        await new Promise<void>((resolve, reject) => {
          const onAbort = () => {
            destroy(past);
            reject(abort.signal.reason instanceof Error ? abort.signal.reason : new Error('aborted'));
          };
          if (abort.signal.aborted) return onAbort();
          abort.signal.addEventListener('abort', onAbort, { once: true });
          past.on(
            'data',
            lines((raw) => {
              const event = readEvent(raw);
              if (event !== undefined && !delivered.has(eventKey(event))) missed.push(event);
            }),
          );
          past.on('end', resolve);
          past.on('close', resolve);
          past.on('error', reject);
        });
      } catch (error) {
        if (closed || stream !== s) return;
        stallCheckFailures += 1;
        if (stallCheckFailures === 1) {
          logger.warn(
            { err: error },
            'docker stall check failed; the event stream is not verified meanwhile',
          );
        }
        return;
      } finally {
        clearTimeout(deadline);
        if (stallQuery === abort) stallQuery = undefined;
      }
      if (stallCheckFailures > 0)
        logger.info({ failedChecks: stallCheckFailures }, 'docker stall check works again');
      stallCheckFailures = 0;
      if (missed.length > 0 && stream === s) {
        logger.warn({ missed: missed.length }, 'docker event stream stalled: events were not delivered');
        reconnectLater('stalled');
      }
    };

    const listContainers = async (): Promise<ContainerInfo[] | undefined> => {
      try {
        const list = (await docker.listContainers()) as unknown;
        if (!Array.isArray(list)) throw new Error('docker container list is not a JSON array');
        return list as ContainerInfo[];
      } catch (error) {
        reconnectLater('inventory failed', error);
        return undefined;
      }
    };

    /** An inventory without a live stream (it is late): running containers are served meanwhile. */
    const listInventory = async () => {
      const containers = await listContainers();
      if (containers !== undefined && !closed) subscriber.next(inventoryHint(containers));
    };

    const connect = async () => {
      if (closed) return;
      const connectedAt = Math.floor(Date.now() / 1000);
      let s: NodeJS.ReadableStream;
      try {
        s = await openEvents({ ...(since !== undefined && { since }) });
      } catch (error) {
        if (error instanceof StreamStartTimeout && !closed) {
          // Degrade to polling until the stream starts: list now so running containers get registered, and
          // replay from here once a stream opens.
          since = connectedAt;
          reconnectLater(
            `did not start within ${streamStartMs} ms (the engine or a proxy between holds the /events response); listing containers without it`,
          );
          await listInventory();
        } else reconnectLater('unavailable', error);
        return;
      }
      if (closed) {
        destroy(s);
        return;
      }
      stream = s;
      since ??= connectedAt;
      s.on('data', lines(onEvent));
      s.on('end', () => reconnectLater('ended'));
      s.on('close', () => reconnectLater('closed'));
      s.on('error', (error) => reconnectLater('failed', error));
      subscriber.next({ kind: 'connection', connected: true });

      const containers = await listContainers();
      if (containers === undefined || stream !== s) return;
      if (outageLogged) logger.info('docker event stream connected again');
      outageLogged = false;
      attempt = 0;
      subscriber.next(inventoryHint(containers));

      if (stallCheckMs > 0) {
        // Query windows end a few seconds in the past: anything older must have reached the live stream.
        let checkedUntil = Math.max(connectedAt, since ?? connectedAt);
        stallTimer = setInterval(() => {
          // Pruned on every tick, whatever the queries do: memory stays bounded by the event rate.
          const horizon = Date.now() - 3 * stallCheckMs;
          for (const [key, at] of delivered) {
            if (at >= horizon) break;
            delivered.delete(key);
          }
          const until = Math.floor(Date.now() / 1000) - 2;
          // One query at a time: one still running (bounded by the interval) is given up for the next.
          stallQuery?.abort(new Error('stall check query outlived its interval'));
          if (until <= checkedUntil) return;
          const from = checkedUntil;
          checkedUntil = until;
          void checkStall(from, until);
        }, stallCheckMs);
      }
    };

    void connect();
    return () => {
      closed = true;
      clearTimeout(retryTimer);
      drop();
    };
  });
}
