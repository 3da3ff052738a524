import type { GetEventsOptions } from 'dockerode';
import { defer, groupBy, mergeMap, Observable, switchMap, timer } from 'rxjs';
import { defaultBackoff, type BackoffOptions } from '../../backoff.js';
import type { DockerCalls } from '../../docker-calls.js';
import { keepStreamOpen } from '../../kit/event-stream.js';
import { silentLogger, type Logger } from '../../logger.js';
import { coalesceWhileBusy } from '../../operators.js';
import type { SwarmSnapshot } from './derive.js';

interface ListOptions {
  readonly filters?: Record<string, string[]>;
  readonly abortSignal?: AbortSignal;
}

/** The part of dockerode Swarm mode uses, on a manager; a test can hand in anything shaped like it. */
export interface SwarmDockerApi {
  getEvents(options?: GetEventsOptions & { abortSignal?: AbortSignal }): Promise<NodeJS.ReadableStream>;
  listServices(options?: ListOptions): Promise<unknown[]>;
  listTasks(options?: ListOptions): Promise<unknown[]>;
  listNodes(options?: { abortSignal?: AbortSignal }): Promise<unknown[]>;
}

/** A manager's lists through bounded `calls` (the event stream bounds its own start). */
export function boundedSwarmDocker(docker: SwarmDockerApi, calls: DockerCalls): SwarmDockerApi {
  const list =
    (what: string, run: (options: ListOptions) => Promise<unknown[]>) =>
    (options: ListOptions = {}) =>
      calls.run('swarm', what, (abortSignal) => run({ ...options, abortSignal }), options.abortSignal);
  return {
    getEvents: (options) => docker.getEvents(options),
    listServices: list('swarm service list', (options) => docker.listServices(options)),
    listTasks: list('swarm task list', (options) => docker.listTasks(options)),
    listNodes: list('swarm node list', ({ abortSignal }) =>
      docker.listNodes(abortSignal === undefined ? {} : { abortSignal }),
    ),
  };
}

/** What to look at again. Events are hints only: what is registered always follows from a fresh list. */
export type SwarmLook =
  /** Every service, task and node: after (re)connecting, and on the poll timer. */
  | { readonly kind: 'inventory' }
  /** One service and its tasks: a service event, or an event of one of its task containers on this node. */
  | { readonly kind: 'service'; readonly id: string }
  /** The nodes (a node joined, left, went down or changed address). */
  | { readonly kind: 'nodes' };

export type SwarmHint = SwarmLook | { readonly kind: 'connection'; readonly connected: boolean };

export interface SwarmSourceOptions {
  readonly docker: SwarmDockerApi;
  readonly logger?: Logger;
  readonly backoff?: BackoffOptions;
  /**
   * How often to list the whole cluster (0: never). Swarm has no task events, and a manager's engine only
   * reports the containers of its own node: a task that fails or starts on another node, without a service
   * event, is seen at the next poll. The poll also stands in for a stall check of the event stream.
   */
  readonly pollMs?: number;
  /** How long the `/events` response may take to begin (see `DockerSourceOptions.streamStartMs`). */
  readonly streamStartMs?: number;
}

const record = (value: unknown): Record<string, unknown> | undefined =>
  typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
/** A Swarm object id as managers write them; anything else an engine sends is not looked up. */
const SWARM_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** The label Swarm puts on every task container. */
const SERVICE_ID_LABEL = 'com.docker.swarm.service.id';

const eventFilters: GetEventsOptions['filters'] = {
  type: ['service', 'node', 'container'],
  event: ['create', 'update', 'remove', 'start', 'die', 'health_status', 'destroy'],
};

/** The look an event (untrusted JSON) asks for, if any. */
export function swarmEventLook(raw: unknown): SwarmLook | undefined {
  const event = record(raw);
  const actor = record(event?.Actor);
  const id = actor?.ID;
  if (event?.Type === 'service' && typeof id === 'string' && SWARM_ID.test(id))
    return { kind: 'service', id };
  if (event?.Type === 'node') return { kind: 'nodes' };
  const serviceId = record(actor?.Attributes)?.[SERVICE_ID_LABEL];
  if (event?.Type === 'container' && typeof serviceId === 'string' && SWARM_ID.test(serviceId))
    return { kind: 'service', id: serviceId };
  return undefined;
}

/**
 * A manager's Swarm events as looks, kept open forever (`keepStreamOpen`): subscribes first, then asks for an
 * inventory; reconnects with backoff (each reconnect asks for an inventory again, so nothing missed in between
 * is lost); asks for one every `pollMs`. Never completes or errors.
 */
export function swarmHints(options: SwarmSourceOptions): Observable<SwarmHint> {
  const { docker } = options;
  const pollMs = options.pollMs ?? 15_000;
  return new Observable<SwarmHint>((subscriber) => {
    const inventory = () => subscriber.next({ kind: 'inventory' });
    const pollTimer = pollMs > 0 ? setInterval(inventory, pollMs) : undefined;
    const stop = keepStreamOpen(
      {
        name: 'docker swarm event stream',
        open: (signal) => docker.getEvents({ filters: eventFilters, abortSignal: signal }),
        startMs: options.streamStartMs ?? 5_000,
        backoff: options.backoff ?? defaultBackoff,
        logger: options.logger ?? silentLogger,
      },
      {
        value: (event) => {
          const look = swarmEventLook(event);
          if (look !== undefined) subscriber.next(look);
        },
        open: (session) => {
          session.recovered();
          subscriber.next({ kind: 'connection', connected: true });
          inventory();
        },
        lost: () => subscriber.next({ kind: 'connection', connected: false }),
        // Listing does not need the stream: whatever runs keeps being served meanwhile.
        retrying: inventory,
      },
    );
    return () => {
      clearInterval(pollTimer);
      stop();
    };
  });
}

/** What one look found. `seq` orders fetches by when they began, so older data never overwrites newer. */
export type SwarmFetch = { readonly seq: number } & (
  | { readonly kind: 'inventory'; readonly snapshot: SwarmSnapshot }
  /** `service` undefined: the service is gone, and so are its tasks. */
  | { readonly kind: 'service'; readonly id: string; readonly service?: unknown; readonly tasks: unknown[] }
  | { readonly kind: 'nodes'; readonly nodes: unknown[] }
  | { readonly kind: 'error'; readonly look: SwarmLook; readonly error: unknown }
);

/** Only tasks Swarm wants running can be served; the rest (its task history) is left on the manager. */
const WANTED = { 'desired-state': ['running'] };

const lookKey = (look: SwarmLook) => (look.kind === 'service' ? `service:${look.id}` : look.kind);

/**
 * The list stage: per look key (the inventory, the nodes, each service) one list at once, and the looks that
 * arrive meanwhile fold into one more (`coalesceWhileBusy`), so a burst of task events re-lists a service
 * once or twice, not once per event. Never errors: a failed list is a `kind: 'error'` fetch.
 */
export function fetchSwarm(looks$: Observable<SwarmLook>, docker: SwarmDockerApi): Observable<SwarmFetch> {
  let sequence = 0;
  const fetch = async (look: SwarmLook): Promise<SwarmFetch> => {
    const seq = ++sequence;
    try {
      switch (look.kind) {
        case 'inventory': {
          const [services, tasks, nodes] = await Promise.all([
            docker.listServices(),
            docker.listTasks({ filters: WANTED }),
            docker.listNodes(),
          ]);
          return { seq, kind: 'inventory', snapshot: { services, tasks, nodes } };
        }
        case 'nodes':
          return { seq, kind: 'nodes', nodes: await docker.listNodes() };
        case 'service': {
          // `id` filters match prefixes: keep the exact one.
          const found = (await docker.listServices({ filters: { id: [look.id] } })).find(
            (s) => (s as { ID?: unknown } | null)?.ID === look.id,
          );
          if (found === undefined) return { seq, kind: 'service', id: look.id, tasks: [] };
          const tasks = await docker.listTasks({ filters: { ...WANTED, service: [look.id] } });
          return { seq, kind: 'service', id: look.id, service: found, tasks };
        }
      }
    } catch (error) {
      // The service went between the two lists.
      if (look.kind === 'service' && (error as { statusCode?: number } | null)?.statusCode === 404)
        return { seq, kind: 'service', id: look.id, tasks: [] };
      return { seq, kind: 'error', look, error };
    }
  };
  return looks$.pipe(
    // A key's group lives while it is busy and 5 s beyond, so churn of services leaves no state behind.
    groupBy(lookKey, { duration: (group$) => group$.pipe(switchMap(() => timer(5_000))) }),
    mergeMap((group$) => group$.pipe(coalesceWhileBusy((look) => defer(() => fetch(look))))),
  );
}
