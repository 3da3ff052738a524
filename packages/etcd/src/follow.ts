import type { FollowUpdate, Instance, ServiceFollower } from '@registrar/core';
import { ConfigError, consoleLogger } from '@registrar/core';
import { renamedOption } from '@registrar/core/kit';
import { backoffDelay, followGate, followLifetimes, quote } from '@registrar/core/kit';
import type { Etcd3, IKeyValue, IWatchResponse, Watcher } from 'etcd3';
import { Observable } from 'rxjs';
import { createClient, prefixEnd, targetOf } from './client.js';
import { etcdCall } from './call.js';
import { backend, toRegistryError } from './errors.js';
import { createReader, defaultPrefix, layouts, normalisePrefix } from './layout.js';
import { readRange } from './range.js';
import type { EtcdClientOptions, EtcdCommonOptions, EtcdConnectionOptions } from './registry.js';

export type EtcdFollowerOptions = Pick<
  EtcdCommonOptions,
  'prefix' | 'layout' | 'skydnsDomain' | 'timeoutMs' | 'requestTimeout' | 'logger'
> & {
  /**
   * Milliseconds between gRPC keepalive pings on the watch stream (at least 5000, etcd's minimum), so that
   * a server that stops answering without closing the connection is noticed; default 10000. Only for a
   * client the follower creates.
   */
  readonly keepaliveMs?: number;
} & (EtcdConnectionOptions | EtcdClientOptions);

/**
 * Every node's instances of a service in etcd, for `registrar lb`: a paged read of `<prefix>/<name>/` at one
 * revision, then a watch from the revision after it (no gap, no polling), and the full set after every change. When the watch
 * stream breaks it emits `unreachable` once, and reads everything again (range, then a new watch) when etcd
 * answers again. Values that are not an instance of the layout are skipped with one warning each.
 */
export function createEtcdFollower(options: EtcdFollowerOptions): ServiceFollower {
  const layout = options.layout ?? 'json';
  if (!layouts.includes(layout)) {
    throw new ConfigError(`invalid etcd layout "${String(layout)}": use one of ${layouts.join(', ')}`);
  }
  if (!options.client && (!options.hosts || options.hosts.length === 0)) {
    throw new ConfigError('no etcd hosts given: pass `hosts` or a ready `client`');
  }
  const timeoutMs = renamedOption<number>('etcd follower', options, 'timeoutMs', 'requestTimeout') ?? 5000;
  const logger = (options.logger ?? consoleLogger).child({ backend, role: 'follower' });
  const ownsClient = !options.client;
  const client: Etcd3 =
    options.client ?? createClient(options, timeoutMs, { keepaliveMs: options.keepaliveMs ?? 10_000 });
  const prefix = normalisePrefix(options.prefix ?? defaultPrefix(layout));
  const reader = createReader({ layout, prefix, domain: options.skydnsDomain ?? 'skydns.local' });
  const target = targetOf(options, reader.root);
  const lifetimes = followLifetimes();

  const call = <T>(what: string, fn: (callOptions: { deadline: number }) => Promise<T>) =>
    etcdCall(what, timeoutMs, fn, logger);

  const follow = (name: string): Observable<FollowUpdate> => {
    const dir = reader.dir(name);
    if (dir === undefined) {
      throw new ConfigError(
        `cannot follow service ${quote(name, 80)} in the etcd ${layout} layout: ${
          layout === 'skydns' ? 'a skydns name is dot-separated DNS labels without "/"' : 'the name is empty'
        }`,
      );
    }
    return new Observable<FollowUpdate>((subscriber) => {
      const log = logger.child({ service: name, dir });
      const gate = followGate((update) => subscriber.next(update));
      /** key → instance, for every key under `dir` that holds one. */
      const entries = new Map<string, Instance>();
      /** key → the mod revision last warned about: one warning per bad value, not one per read. */
      const warned = new Map<string, string>();
      let watcher: Watcher | undefined;
      let timer: NodeJS.Timeout | undefined;
      let attempt = 0;
      let stopped = false;

      const apply = (kv: IKeyValue) => {
        const key = kv.key.toString();
        const read = reader.read(dir, key, kv.value.toString());
        if (read === undefined) return;
        if (typeof read === 'string') {
          entries.delete(key);
          if (warned.get(key) !== kv.mod_revision) {
            warned.set(key, kv.mod_revision);
            log.warn({ key, reason: read }, `etcd entry ${key} skipped: its value is ${read}`);
          }
          return;
        }
        warned.delete(key);
        entries.set(key, read);
      };

      const drop = () => {
        const current = watcher;
        watcher = undefined;
        current?.removeAllListeners();
        // A cancel swallows late events; an error here only means the stream is gone already.
        current?.on('error', () => undefined);
        current?.cancel().catch(() => undefined);
      };

      /** Read again after `error`; `outage` says whether the consumer must hear that etcd is unreachable. */
      const retry = (error: unknown, outage: boolean) => {
        if (stopped) return;
        drop();
        const failure = toRegistryError(error, 'watch');
        if (outage && gate.unreachable(failure)) {
          log.warn({ err: failure }, `etcd unreachable while following ${name}; retrying`);
        } else if (!outage) {
          log.warn({ err: failure }, `etcd cancelled the watch of ${name}; reading again`);
        }
        clearTimeout(timer);
        timer = setTimeout(() => void start(), backoffDelay(++attempt));
      };

      const start = async () => {
        timer = undefined;
        try {
          const key = Buffer.from(dir);
          // In pages: one service of a large fleet can pass gRPC's 4 MiB receive limit on its own.
          const response = await readRange(
            (request) => call('range', (callOptions) => client.kv.range(request, callOptions)),
            { key, rangeEnd: prefixEnd(key) },
          );
          if (stopped) return;
          entries.clear();
          for (const kv of response.kvs) apply(kv);
          const wasReachable = gate.reachable;
          gate.instances(entries.values());
          if (!wasReachable) log.info(`etcd reachable again; following ${name}`);
          // The consumer may have unsubscribed on that very update (firstValueFrom): no watch is left behind.
          if (stopped) return;
          // `watcher()` rather than `create()`: create() only settles once the stream is up, and while etcd
          // is down we must be able to drop the watcher, which it would keep retrying for ever.
          const next = client
            .watch()
            .prefix(dir)
            .startRevision((BigInt(response.revision) + 1n).toString())
            .watcher();
          watcher = next;
          // Only a watch that is up ends the backoff: one etcd keeps refusing is retried ever more slowly.
          next.on('connected', () => {
            if (watcher === next) attempt = 0;
          });
          next.on('data', (change: IWatchResponse) => {
            if (watcher !== next) return;
            for (const event of change.events) {
              if (event.type === 'Delete') {
                entries.delete(event.kv.key.toString());
                warned.delete(event.kv.key.toString());
              } else apply(event.kv);
            }
            if (change.events.length > 0) gate.instances(entries.values());
          });
          next.on('disconnected', (error) => watcher === next && retry(error, true));
          // Cancelled by etcd (the revision was compacted meanwhile...): not an outage, just read again.
          next.on('error', (error) => watcher === next && retry(error, false));
        } catch (error) {
          retry(error, true);
        }
      };

      const stop = () => {
        stopped = true;
        clearTimeout(timer);
        drop();
      };
      return lifetimes.run(subscriber, stop, () => void start());
    });
  };

  return {
    backend,
    target,
    follow,
    close() {
      if (lifetimes.close() && ownsClient) client.close();
      return Promise.resolve();
    },
  };
}
