import type { ContainerInfo, ContainerInspectInfo, GetEventsOptions } from 'dockerode';
import { silentLogger, type Logger } from './logger.js';
import { oneLine } from './text.js';

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

/** The Docker calls the bridge makes besides `/events` (which bounds its own start). */
export type DockerCall = 'list' | 'inspect' | 'swarm';
export type DockerCallOutcome = 'ok' | 'error' | 'timeout';

/** A Docker call that did not answer within its bound. */
export class DockerTimeoutError extends Error {
  constructor(
    readonly call: DockerCall,
    readonly ms: number,
    what: string,
  ) {
    super(`docker ${what} did not answer within ${ms} ms`);
    this.name = 'DockerTimeoutError';
  }
}

/** Where Docker's calls stand: the current streak of failures, if any (for readiness and `explain`). */
export interface DockerCallHealth {
  /** Calls that failed or timed out in a row; 0 once one succeeds. */
  readonly failing: number;
  /** The last failure of the streak. */
  readonly lastError?: string;
  /** When the streak began (ms since the epoch). */
  readonly since?: number;
  /** Calls past their bound so far in this process. */
  readonly timeouts: number;
}

export interface DockerCallsOptions {
  /** How long one call may take, headers and body. */
  readonly timeoutMs: number;
  readonly logger?: Logger;
  onCall?(call: DockerCall, outcome: DockerCallOutcome, seconds: number): void;
}

/** What a source's options say of its Docker calls. */
export interface SourceCallOptions {
  readonly logger?: Logger;
  /** Default 10 s. */
  readonly dockerTimeoutMs?: number;
  readonly observer?: { onDockerCall?(call: DockerCall, outcome: DockerCallOutcome, seconds: number): void };
}

/** A source's logger and bounded Docker calls, from its options (both sources build them the same way). */
export function sourceCalls(options: SourceCallOptions): { logger: Logger; calls: DockerCalls } {
  const logger = options.logger ?? silentLogger;
  const { observer } = options;
  const calls = dockerCalls({
    timeoutMs: options.dockerTimeoutMs ?? 10_000,
    logger,
    ...(observer?.onDockerCall && { onCall: observer.onDockerCall.bind(observer) }),
  });
  return { logger, calls };
}

/** Runs Docker calls, each bounded, and keeps the streak of failures. */
export interface DockerCalls {
  /**
   * Run one call with an abort signal that fires after `timeoutMs`; it fails with a `DockerTimeoutError` then,
   * even if `run` ignores the signal. `what` names it in logs (`inspect of 0123abcd`). `cancel` aborts it
   * too; a cancelled call is not a failure of the engine.
   */
  run<T>(
    call: DockerCall,
    what: string,
    run: (signal: AbortSignal) => Promise<T>,
    cancel?: AbortSignal,
  ): Promise<T>;
  health(): DockerCallHealth;
}

const isNotFound = (error: unknown) => (error as { statusCode?: number } | undefined)?.statusCode === 404;

/**
 * Bounded Docker calls: each request is aborted when it has not completed within `timeoutMs` (dockerode
 * passes `abortSignal` to the HTTP request, body included). Failures are logged once per streak, with the
 * engine's own message, and the recovery once; `health()` says where the streak stands. The caller retries.
 */
export function dockerCalls(options: DockerCallsOptions): DockerCalls {
  const logger = options.logger ?? silentLogger;
  let failing = 0;
  let since: number | undefined;
  let lastError: string | undefined;
  let timeouts = 0;

  const run = async <T>(
    call: DockerCall,
    what: string,
    work: (signal: AbortSignal) => Promise<T>,
    cancel?: AbortSignal,
  ) => {
    const started = performance.now();
    const seconds = () => (performance.now() - started) / 1000;
    const abort = new AbortController();
    const cancelled = () => abort.abort(cancel?.reason);
    if (cancel?.aborted) cancelled();
    cancel?.addEventListener('abort', cancelled, { once: true });
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const error = new DockerTimeoutError(call, options.timeoutMs, what);
        abort.abort(error);
        reject(error);
      }, options.timeoutMs);
    });
    try {
      const result = await Promise.race([work(abort.signal), deadline]);
      options.onCall?.(call, 'ok', seconds());
      if (failing > 0) logger.info({ failedCalls: failing }, 'docker answers again');
      failing = 0;
      since = undefined;
      lastError = undefined;
      return result;
    } catch (error) {
      if (cancel?.aborted) throw error;
      const timedOut = abort.signal.reason instanceof DockerTimeoutError;
      // A 404 is an answer (the container is gone), not a failing engine.
      if (isNotFound(error) && !timedOut) {
        options.onCall?.(call, 'ok', seconds());
        throw error;
      }
      const failure: unknown = timedOut ? abort.signal.reason : error;
      if (timedOut) timeouts += 1;
      options.onCall?.(call, timedOut ? 'timeout' : 'error', seconds());
      failing += 1;
      since ??= Date.now();
      lastError = oneLine(failure instanceof Error ? failure.message : String(failure), 300);
      if (failing === 1) logger.warn({ err: failure }, `docker ${what} failed; retrying with backoff`);
      throw failure;
    } finally {
      clearTimeout(timer);
      cancel?.removeEventListener('abort', cancelled);
    }
  };

  return {
    run,
    health: () => ({
      failing,
      timeouts,
      ...(lastError !== undefined && { lastError }),
      ...(since !== undefined && { since }),
    }),
  };
}

/** Docker's list and inspect calls through `calls` (the event stream bounds its own start). */
export function boundedDocker(docker: DockerApi, calls: DockerCalls): DockerApi {
  return {
    getEvents: (query) => docker.getEvents(query),
    listContainers: (query) =>
      calls.run<ContainerInfo[]>(
        'list',
        'container list',
        (abortSignal) => docker.listContainers({ ...query, abortSignal }),
        query?.abortSignal,
      ),
    getContainer(id) {
      const container = docker.getContainer(id);
      return {
        inspect: (query) =>
          calls.run<ContainerInspectInfo>(
            'inspect',
            `inspect of ${id.slice(0, 12)}`,
            (abortSignal) => container.inspect({ ...query, abortSignal }),
            query?.abortSignal,
          ),
      };
    },
  };
}
