import type { BackoffOptions, FollowUpdate, Instance, ServiceFollower } from '@registrar/core';
import { ConfigError, consoleLogger, RegistryConnectionError } from '@registrar/core';
import {
  backoffDelay,
  defaultBackoff,
  followGate,
  followLifetimes,
  formatGoDuration,
  instanceLabels,
  isPort,
  quote,
  renamedOption,
} from '@registrar/core/kit';
import { Observable } from 'rxjs';
import { agentOf, ConsulClient } from './client.js';
import type { ConsulRegistryOptions } from './registry.js';

const BACKEND = 'consul';

export type ConsulFollowerOptions = Pick<
  ConsulRegistryOptions,
  | 'hosts'
  | 'url'
  | 'token'
  | 'tls'
  | 'namespace'
  | 'partition'
  | 'timeoutMs'
  | 'requestTimeoutMs'
  | 'logger'
  | 'fetch'
> & {
  /**
   * Longest a blocking query is held, in milliseconds; default 60000 (Consul allows 10 minutes). Also bounds
   * how long an agent that stopped answering without closing the connection goes unnoticed.
   */
  readonly waitMs?: number;
  /** Least time between two queries of one service, in milliseconds; default 100 (Consul's advice). */
  readonly minIntervalMs?: number;
  /** Retries after a failed query; default core's (250 ms doubling to 5 s, jittered). */
  readonly backoff?: BackoffOptions;
};

interface HealthEntry {
  Node?: { Address?: unknown } | null;
  Service?: { ID?: unknown; Address?: unknown; Port?: unknown; Tags?: unknown; Meta?: unknown } | null;
}

/** The adapter's own Meta keys (owner node, engine, container...), not the service's metadata. */
const isBookkeeping = (key: string) => key.startsWith('registrar-');

/** One entry of `/v1/health/service/:name` as an instance, or why it is not one. */
export function instanceOf(entry: HealthEntry): Instance | string {
  const id = entry.Service?.ID;
  if (typeof id !== 'string' || id === '') return 'no Service.ID';
  const own = entry.Service?.Address;
  const address = typeof own === 'string' && own !== '' ? own : entry.Node?.Address;
  if (typeof address !== 'string' || address === '') return 'neither Service.Address nor Node.Address';
  if (!isPort(entry.Service?.Port)) return 'no Service.Port from 1 to 65535';
  const labels = instanceLabels(entry.Service.Tags, entry.Service.Meta, isBookkeeping);
  return { id, address, port: entry.Service.Port, ...labels };
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });

/**
 * Every passing instance of a service in Consul, for `registrar lb`: blocking queries on
 * `/v1/health/service/<name>?passing` (an instance with any check not passing is left out), address the
 * service's own or else its node's. The index handling follows Consul's blocking-query rules: an index that
 * goes backwards starts over from 0, one below 1 counts as 1, and queries of one service are rate-limited. A
 * failed query emits `unreachable` once, then retries with backoff from index 0 and emits the full set.
 */
export function createConsulFollower(options: ConsulFollowerOptions = {}): ServiceFollower {
  const logger = (options.logger ?? consoleLogger).child({ backend: BACKEND, role: 'follower' });
  const waitMs = options.waitMs ?? 60_000;
  if (!(waitMs >= 1000 && waitMs <= 600_000)) {
    throw new ConfigError(`consul follower: waitMs ${waitMs} must be from 1000 to 600000 (10 minutes)`);
  }
  const requestTimeoutMs =
    renamedOption<number>('consul follower', options, 'timeoutMs', 'requestTimeoutMs') ?? 10_000;
  const minIntervalMs = options.minIntervalMs ?? 100;
  const backoff = options.backoff ?? defaultBackoff;
  const client = new ConsulClient({
    baseUrl: agentOf('consul follower', options),
    timeoutMs: requestTimeoutMs,
    ...(options.token !== undefined && { token: options.token }),
    ...(options.tls !== undefined && { tls: options.tls }),
    ...(options.namespace !== undefined && { namespace: options.namespace }),
    ...(options.partition !== undefined && { partition: options.partition }),
    ...(options.fetch !== undefined && { fetch: options.fetch }),
  });
  const lifetimes = followLifetimes();

  const follow = (name: string): Observable<FollowUpdate> => {
    if (name === '') throw new ConfigError('cannot follow a Consul service with an empty name');
    const path = `/v1/health/service/${encodeURIComponent(name)}`;
    return new Observable<FollowUpdate>((subscriber) => {
      const log = logger.child({ service: name });
      const gate = followGate((update) => subscriber.next(update));
      const stop = new AbortController();
      /** `id\0reason` already warned about, for as long as that entry stays bad. */
      let warned = new Set<string>();

      const loop = async () => {
        let index = 0;
        let attempt = 0;
        let last = 0;
        while (!stop.signal.aborted) {
          const pause = last + minIntervalMs - Date.now();
          if (pause > 0) await sleep(pause, stop.signal);
          if (stop.signal.aborted) return;
          last = Date.now();
          try {
            const response = await client.request('GET', path, {
              query: { passing: 'true', index: String(index), wait: formatGoDuration(waitMs) },
              // Consul adds up to wait/16 to spread wake-ups; then the answer still has to arrive.
              timeoutMs: Math.ceil(waitMs + waitMs / 16) + requestTimeoutMs,
              signal: stop.signal,
              what: `follow ${name}`,
              permission: `service:read on ${quote(name, 60)} and node:read`,
            });
            if (stop.signal.aborted) return;
            const entries = client.parse(response, `follow ${name}`);
            if (!Array.isArray(entries)) {
              throw new RegistryConnectionError(`${path} answered ${quote(response.text, 60)}`, 'consul');
            }
            const instances: Instance[] = [];
            const stillBad = new Set<string>();
            for (const entry of entries as HealthEntry[]) {
              const read = instanceOf(entry ?? {});
              if (typeof read !== 'string') {
                instances.push(read);
                continue;
              }
              const key = `${String(entry?.Service?.ID)}\0${read}`;
              stillBad.add(key);
              if (!warned.has(key)) {
                log.warn(
                  { id: entry?.Service?.ID, reason: read },
                  `Consul instance of ${name} skipped: ${read}`,
                );
              }
            }
            warned = stillBad;
            const wasReachable = gate.reachable;
            gate.instances(instances);
            if (!wasReachable) log.info(`Consul reachable again; following ${name}`);
            attempt = 0;
            const next = response.index ?? 0;
            // Backwards (a restored snapshot, a rebuilt agent): start over, as Consul's docs require.
            if (next < index) {
              log.debug({ from: index, to: next }, 'Consul index went backwards; starting over');
              index = 0;
            } else {
              index = Math.max(1, next);
            }
          } catch (error) {
            if (stop.signal.aborted) return;
            const failure = error instanceof Error ? error : new Error(String(error));
            if (gate.unreachable(failure)) {
              log.warn({ err: failure }, `Consul unreachable while following ${name}; retrying`);
            }
            index = 0;
            await sleep(backoffDelay(++attempt, backoff), stop.signal);
          }
        }
      };

      return lifetimes.run(
        subscriber,
        () => stop.abort(),
        () => void loop(),
      );
    });
  };

  return {
    backend: BACKEND,
    target: client.target,
    follow,
    async close() {
      if (!lifetimes.close()) return;
      await client.close();
    },
  };
}
