import type { ContainerInfo, ContainerInspectInfo, GetEventsOptions } from 'dockerode';
import type { Readable } from 'node:stream';
import { Observable } from 'rxjs';
import { backoffDelay, defaultBackoff, type BackoffOptions } from './backoff.js';
import { normaliseEvent, type EngineEvent } from './engine-events.js';
import { silentLogger, type Logger } from './logger.js';

/** The part of dockerode the bridge uses; a test can hand in anything shaped like it. */
export interface DockerApi {
  /** dockerode passes `abortSignal` to the HTTP request (its types do not list it). */
  getEvents(options?: GetEventsOptions & { abortSignal?: AbortSignal }): Promise<NodeJS.ReadableStream>;
  listContainers(options?: { all?: boolean }): Promise<ContainerInfo[]>;
  getContainer(id: string): { inspect(): Promise<ContainerInspectInfo> };
}

/** What the Docker side tells the bridge. Events are only hints: the bridge inspects to learn the state. */
export type DockerHint =
  /** Something about this container may have changed. */
  | {
      readonly kind: 'event';
      readonly id: string;
      readonly action: string;
      readonly timeNano: number;
      /** For `die`: the exit code the engine reported. */
      readonly exitCode?: number;
      /** For `kill`: the signal number the engine sent. */
      readonly signal?: number;
      /** For `health_status`: the status, where the engine names it (Podman does not). */
      readonly health?: string;
    }
  /** The complete list of running containers, sent after every (re)connect of the event stream. */
  | { readonly kind: 'inventory'; readonly ids: readonly string[] }
  /** The event stream is open (true) or lost (false). */
  | { readonly kind: 'connection'; readonly connected: boolean };

// Re-exported: the action names are the engine-event module's, where Docker's and Podman's are normalised.
export { CONTAINER_ACTIONS } from './engine-events.js';

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
}

interface RawEvent {
  Type?: string;
  Action?: string;
  id?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
  time?: number;
  timeNano?: number;
}

/** Container id an event concerns, or undefined for events we do not care about. */
export function eventContainerId(event: RawEvent): string | undefined {
  return normaliseEvent(event)?.id;
}

/** Split a byte stream of concatenated JSON lines into objects; bad lines are reported, not thrown. */
function jsonLines(onObject: (value: RawEvent) => void, onBadLine: (line: string) => void) {
  let buffer = '';
  return (chunk: Buffer | string) => {
    buffer += chunk.toString();
    let newline: number;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, newline).trim();
      buffer = buffer.slice(newline + 1);
      if (line === '') continue;
      try {
        onObject(JSON.parse(line) as RawEvent);
      } catch {
        onBadLine(line.slice(0, 200));
      }
    }
  };
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
 * reconnects with backoff and replays from the last event seen. It never completes or errors.
 */
export function dockerHints(options: DockerSourceOptions): Observable<DockerHint> {
  const { docker } = options;
  const logger = options.logger ?? silentLogger;
  const backoff = options.backoff ?? defaultBackoff;
  const stallCheckMs = options.stallCheckMs ?? 15_000;
  const streamStartMs = options.streamStartMs ?? (stallCheckMs > 0 ? Math.min(stallCheckMs, 5_000) : 5_000);

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

    const drop = () => {
      clearInterval(stallTimer);
      stallTimer = undefined;
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

    const onEvent = (raw: RawEvent) => {
      // Every engine's line, filtered and normalised here: server-side filters are not portable (Podman).
      const event = normaliseEvent(raw);
      if (event === undefined) return;
      const { id, action, timeNano } = event;
      since = Math.floor(timeNano / 1e9);
      // Remembered only for the stall check, which also prunes them.
      if (stallCheckMs > 0) delivered.set(eventKey(event), Date.now());
      subscriber.next({
        kind: 'event',
        id,
        action,
        timeNano,
        ...(event.exitCode !== undefined && { exitCode: event.exitCode }),
        ...(event.signal !== undefined && { signal: event.signal }),
        ...(event.health !== undefined && { health: event.health }),
      });
    };

    /** `getEvents`, but failing with StreamStartTimeout when the response has not begun within the bound. */
    const openEvents = async (query: GetEventsOptions) => {
      const abort = new AbortController();
      const timeout = setTimeout(() => abort.abort(new StreamStartTimeout(streamStartMs)), streamStartMs);
      try {
        return await docker.getEvents({ ...query, abortSignal: abort.signal });
      } catch (error) {
        throw abort.signal.aborted ? (abort.signal.reason as StreamStartTimeout) : error;
      } finally {
        clearTimeout(timeout);
      }
    };

    const checkStall = async (from: number, until: number) => {
      const s = stream;
      if (s === undefined) return;
      const missed: EngineEvent[] = [];
      try {
        const past = await openEvents({ since: from, until });
        await new Promise<void>((resolve, reject) => {
          past.on(
            'data',
            jsonLines(
              (raw) => {
                const e = normaliseEvent(raw);
                if (e !== undefined && !delivered.has(eventKey(e))) missed.push(e);
              },
              () => undefined,
            ),
          );
          past.on('end', resolve);
          past.on('close', resolve);
          past.on('error', reject);
        });
      } catch (error) {
        logger.debug({ err: error }, 'docker stall check failed');
        return;
      }
      const horizon = Date.now() - 3 * stallCheckMs;
      for (const [key, at] of delivered) if (at < horizon) delivered.delete(key);
      if (missed.length > 0 && stream === s) {
        logger.warn({ missed: missed.length }, 'docker event stream stalled: events were not delivered');
        reconnectLater('stalled');
      }
    };

    const listContainers = async (): Promise<ContainerInfo[] | undefined> => {
      try {
        return await docker.listContainers();
      } catch (error) {
        reconnectLater('inventory failed', error);
        return undefined;
      }
    };

    /** An inventory without a live stream (it is late): running containers are served meanwhile. */
    const listInventory = async () => {
      const containers = await listContainers();
      if (containers !== undefined && !closed) {
        subscriber.next({ kind: 'inventory', ids: containers.map((c) => c.Id) });
      }
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
      s.on(
        'data',
        jsonLines(onEvent, (line) => logger.warn({ line }, 'unparseable docker event skipped')),
      );
      s.on('end', () => reconnectLater('ended'));
      s.on('close', () => reconnectLater('closed'));
      s.on('error', (error) => reconnectLater('failed', error));
      subscriber.next({ kind: 'connection', connected: true });

      const containers = await listContainers();
      if (containers === undefined || stream !== s) return;
      if (outageLogged) logger.info('docker event stream connected again');
      outageLogged = false;
      attempt = 0;
      subscriber.next({ kind: 'inventory', ids: containers.map((c) => c.Id) });

      if (stallCheckMs > 0) {
        // Query windows end a few seconds in the past: anything older must have reached the live stream.
        let checkedUntil = Math.max(connectedAt, since ?? connectedAt);
        stallTimer = setInterval(() => {
          const until = Math.floor(Date.now() / 1000) - 2;
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
