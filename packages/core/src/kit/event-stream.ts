import type { Readable } from 'node:stream';
import { backoffDelay, type BackoffOptions } from '../backoff.js';
import type { Logger } from '../logger.js';
import { jsonLines } from './json-lines.js';
import { limitedWarning } from './log-limit.js';

/** A response that did not begin within its bound. */
export class StreamStartTimeout extends Error {
  constructor(readonly ms: number) {
    super(`docker /events response did not begin within ${ms} ms`);
  }
}

/** dockerode hands out the HTTP response, a Readable, typed as the narrower ReadableStream. */
export const destroyStream = (stream: NodeJS.ReadableStream) => (stream as Readable).destroy();

/**
 * `open(signal)`, failing with `StreamStartTimeout` when the response has not begun within `ms`; `abort`
 * (optional) cancels it at any time, the body included.
 */
export async function openWithin(
  open: (signal: AbortSignal) => Promise<NodeJS.ReadableStream>,
  ms: number,
  abort = new AbortController(),
): Promise<NodeJS.ReadableStream> {
  const timeout = setTimeout(() => abort.abort(new StreamStartTimeout(ms)), ms);
  try {
    return await open(abort.signal);
  } catch (error) {
    throw abort.signal.reason instanceof StreamStartTimeout ? abort.signal.reason : error;
  } finally {
    clearTimeout(timeout);
  }
}

export interface EventStreamOptions {
  /** Names the stream in logs: `docker event stream`. */
  readonly name: string;
  /** The `/events` request (asked again on every reconnect). */
  readonly open: (signal: AbortSignal) => Promise<NodeJS.ReadableStream>;
  /** How long the response may take to begin. */
  readonly startMs: number;
  readonly backoff: BackoffOptions;
  readonly logger: Logger;
  /** Longest line accepted (bytes). */
  readonly maxLineBytes?: number;
  /** Appended to `did not start within N ms` when the response is late: why, and what is done meanwhile. */
  readonly lateNote?: string;
}

/** The controls of one open stream, for its handlers. */
export interface StreamSession {
  /** Whether this is still the stream in use (not dropped since). */
  readonly current: boolean;
  /** Drop it and reconnect with backoff, saying why (logged once per outage). */
  reconnect(why: string, error?: unknown): void;
  /** The stream is fully up again: the backoff restarts, and the end of an outage is said once. */
  recovered(): void;
}

export interface EventStreamHandlers {
  /** One parsed line (untrusted JSON). */
  value(value: unknown): void;
  /** The response began: the stream is open. */
  open(session: StreamSession): void;
  /** The open stream went away (ended, failed, or dropped for a reconnect). */
  lost(): void;
  /** A reconnect was scheduled; `late` when the response did not begin within the bound. */
  retrying?(late: boolean): void;
}

/**
 * Keep one event stream open until the returned function is called: ask, bound the response's start, split
 * its body into capped JSON lines (unparseable ones warned about at a limited rate), and when it ends, fails,
 * is late or is dropped, reconnect with backoff, logging the outage once and its end once. Used by the
 * container and the Swarm sources alike.
 */
export function keepStreamOpen(options: EventStreamOptions, handlers: EventStreamHandlers): () => void {
  const { logger, name } = options;
  const warnBadLine = limitedWarning(logger, 'docker event line skipped');
  let closed = false;
  let attempt = 0;
  let stream: NodeJS.ReadableStream | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  let outageLogged = false;

  const drop = () => {
    const s = stream;
    stream = undefined;
    s?.removeAllListeners();
    s?.on('error', () => undefined);
    if (s) {
      destroyStream(s);
      handlers.lost();
    }
  };

  const reconnect = (why: string, error?: unknown, late = false) => {
    if (closed || retryTimer !== undefined) return;
    drop();
    attempt += 1;
    const delay = backoffDelay(attempt, options.backoff);
    const fields = { err: error, retryInMs: delay };
    if (!outageLogged) {
      logger.warn(fields, `${name} ${why}; reconnecting`);
      outageLogged = true;
    } else logger.debug(fields, `${name} ${why}; reconnecting`);
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      void connect();
    }, delay);
    handlers.retrying?.(late);
  };

  const connect = async () => {
    if (closed) return;
    let s: NodeJS.ReadableStream;
    try {
      s = await openWithin(options.open, options.startMs);
    } catch (error) {
      if (error instanceof StreamStartTimeout) {
        reconnect(`did not start within ${options.startMs} ms${options.lateNote ?? ''}`, undefined, true);
      } else reconnect('unavailable', error);
      return;
    }
    if (closed) {
      destroyStream(s);
      return;
    }
    stream = s;
    s.on(
      'data',
      jsonLines(
        (value) => handlers.value(value),
        (why, line) => warnBadLine({ why, line }),
        options.maxLineBytes,
      ),
    );
    s.on('end', () => reconnect('ended'));
    s.on('close', () => reconnect('closed'));
    s.on('error', (error) => reconnect('failed', error));
    handlers.open({
      get current() {
        return stream === s && !closed;
      },
      reconnect: (why, error) => {
        if (stream === s) reconnect(why, error);
      },
      recovered: () => {
        if (stream !== s) return;
        if (outageLogged) logger.info(`${name} connected again`);
        outageLogged = false;
        attempt = 0;
      },
    });
  };

  void connect();
  return () => {
    closed = true;
    clearTimeout(retryTimer);
    drop();
  };
}
