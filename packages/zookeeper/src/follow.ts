import type { FollowUpdate, Instance, Logger, ServiceFollower } from '@registrar/core';
import { ConfigError, consoleLogger, RegistryConnectionError } from '@registrar/core';
import { backoffDelay, followGate, followLifetimes, quote } from '@registrar/core/kit';
import zookeeper from 'node-zookeeper-client';
import type { Client, Event, Stat } from 'node-zookeeper-client';
import { Observable, Subject } from 'rxjs';
import { codecFor, type LayoutCodec } from './layout.js';
import { normaliseBase, resolveNames, type ZookeeperRegistryOptions } from './registry.js';
import { isCode, toRegistryError } from './errors.js';
import { checkDigest, createClient, Session } from './session.js';

const BACKEND = 'zookeeper';
const E = zookeeper.Exception;

export type ZookeeperFollowerOptions = Pick<
  ZookeeperRegistryOptions,
  | 'hosts'
  | 'connectString'
  | 'prefix'
  | 'basePath'
  | 'layout'
  | 'auth'
  | 'timeoutMs'
  | 'operationTimeoutMs'
  | 'logger'
> & {
  /** A factory the follower calls for every new session (those clients are owned and closed). */
  readonly client?: () => Client;
  /**
   * Requested session timeout in milliseconds, default 10000. The follower holds no nodes, so this only
   * bounds how long a silent server goes unnoticed (about 2/3 of it).
   */
  readonly sessionTimeoutMs?: number;
};

/** One child of `<base>/<name>` as last read, with a data watch set on it by `session`. */
interface Child {
  readonly session: string;
  readonly czxid: string;
  readonly version: number;
  readonly instance: Instance | undefined;
}

/** What every followed name shares: one session, its connection events, the follower's lifetime. */
interface Shared {
  readonly base: string;
  readonly codec: LayoutCodec;
  readonly logger: Logger;
  /** The current session (replaced when one is lost). */
  readonly session: () => Session;
  readonly connected$: Subject<void>;
  readonly down$: Subject<Error>;
  readonly lifetimes: ReturnType<typeof followLifetimes>;
}

/**
 * Every node's instances of a service in ZooKeeper, for `registrar lb`: `getChildren` of `<base>/<name>` with
 * a watch, and `getData` with a watch of each child it has not read yet (a child is read again only when its
 * data watch fires, or after a new session, whose watches start empty). A missing parent is watched with
 * `exists` and gives the empty set. A dropped connection or a lost session emits `unreachable` once; every
 * reconnect reads the children again. One session serves every followed name.
 */
export function createZookeeperFollower(given: ZookeeperFollowerOptions): ServiceFollower {
  const options = resolveNames('zookeeper follower', given);
  const { connectString, client: factory, auth } = options;
  if (!connectString && !factory) {
    throw new ConfigError("zookeeper follower: give hosts (e.g. ['zk1:2181']) or client", { field: 'hosts' });
  }
  checkDigest(auth);
  const base = normaliseBase(options.basePath ?? '/services');
  const codec = codecFor(options.layout ?? 'curator');
  const logger = (options.logger ?? consoleLogger).child({ registry: BACKEND, role: 'follower' });
  const sessionTimeoutMs = options.sessionTimeoutMs ?? 10_000;
  const operationTimeoutMs = options.operationTimeoutMs ?? Math.min(sessionTimeoutMs, 5000);
  const connected$ = new Subject<void>();
  const down$ = new Subject<Error>();
  const lifetimes = followLifetimes();

  const newClient = (): Client => {
    if (!factory) return createClient(connectString!, sessionTimeoutMs, auth);
    const client = factory();
    if (auth) client.addAuthInfo(auth.scheme, Buffer.from(auth.credentials));
    return client;
  };
  const open = (): Session =>
    new Session({
      client: newClient(),
      owned: true,
      requestedTimeoutMs: sessionTimeoutMs,
      operationTimeoutMs,
      logger,
      onConnected: () => connected$.next(),
      onDisconnected: () =>
        down$.next(new RegistryConnectionError('disconnected from ZooKeeper, reconnecting', BACKEND)),
      onLost: (reason) => {
        if (lifetimes.closed) return;
        logger.warn({ reason }, 'zookeeper follower session lost; opening a new one');
        session = open();
        down$.next(new RegistryConnectionError(`ZooKeeper session lost (${reason})`, BACKEND));
      },
    });
  let session = open();

  const shared: Shared = { base, codec, logger, session: () => session, connected$, down$, lifetimes };

  return {
    backend: BACKEND,
    target: `zookeeper://${connectString ?? 'client'}${base || '/'}`,
    follow: (name) => followService(name, shared),
    async close() {
      if (!lifetimes.close()) return;
      connected$.complete();
      down$.complete();
      // Nothing of ours lives in the session: close it properly.
      await session.close(true);
    },
  };
}

/** One name's instances (see `createZookeeperFollower`): its own watches, on the follower's one session. */
function followService(name: string, shared: Shared): Observable<FollowUpdate> {
  const { base, codec, logger, connected$, down$, lifetimes } = shared;
  // ZooKeeper's path rules, as the registry applies them to the names it writes.
  // eslint-disable-next-line no-control-regex
  if (name === '' || name === '.' || name === '..' || /[/\u0000-\u001f\u007f]/.test(name)) {
    throw new ConfigError(`cannot follow service ${quote(name, 80)}: it cannot be a ZooKeeper node name`);
  }
  const dir = `${base}/${name}`;
  return new Observable<FollowUpdate>((subscriber) => {
    const log = logger.child({ service: name, path: dir });
    const gate = followGate((update) => subscriber.next(update));
    const children = new Map<string, Child>();
    /** Children whose data watch fired: read them again. */
    const stale = new Set<string>();
    let running = false;
    let again = false;
    let stopped = false;
    let attempt = 0;
    let timer: NodeJS.Timeout | undefined;

    // One function for every watch of this subscription: the client keeps one copy per path and kind.
    const watcher = (event: Event) => {
      if (stopped) return;
      const path = event.getPath();
      if (path.startsWith(`${dir}/`)) stale.add(path.slice(dir.length + 1));
      refresh();
    };

    const fail = (error: unknown) => {
      const failure = toRegistryError(error, `follow ${dir}`);
      if (gate.unreachable(failure)) {
        log.warn({ err: failure }, `zookeeper unreachable while following ${name}; retrying`);
      }
      clearTimeout(timer);
      timer = setTimeout(refresh, backoffDelay(++attempt));
    };

    /** Read the children again, coalescing watch events that arrive meanwhile into one more pass. */
    const refresh = () => {
      if (stopped) return;
      if (running) {
        again = true;
        return;
      }
      running = true;
      clearTimeout(timer);
      read(shared.session())
        .then(
          () => {
            attempt = 0;
          },
          (error: unknown) => !stopped && fail(error),
        )
        .finally(() => {
          running = false;
          if (again && !stopped) {
            again = false;
            refresh();
          }
        });
    };

    const read = async (current: Session) => {
      const names = await childNames(current, dir, watcher);
      const wanted = new Set(names);
      for (const child of children.keys()) if (!wanted.has(child)) children.delete(child);
      for (const child of stale) if (!wanted.has(child)) stale.delete(child);
      await Promise.all(
        names.map(async (child) => {
          const known = children.get(child);
          if (known && known.session === current.sessionId && !stale.has(child)) return;
          stale.delete(child);
          const next = await readChild(current, dir, child, known, { watcher, codec, log });
          if (next) children.set(child, next);
          else children.delete(child);
        }),
      );
      if (stopped || current !== shared.session()) return;
      const wasReachable = gate.reachable;
      gate.instances([...children.values()].flatMap((child) => (child.instance ? [child.instance] : [])));
      if (!wasReachable) log.info(`zookeeper reachable again; following ${name}`);
    };

    const subscriptions = [
      connected$.subscribe(() => refresh()),
      down$.subscribe((error) => {
        if (gate.unreachable(error))
          log.warn({ err: error }, `zookeeper unreachable while following ${name}`);
      }),
    ];
    const stop = () => {
      stopped = true;
      clearTimeout(timer);
      for (const subscription of subscriptions) subscription.unsubscribe();
    };
    return lifetimes.run(subscriber, stop, refresh);
  });
}

/** One child with a data watch; undefined when it is gone (its removal fired the children watch). */
async function readChild(
  current: Session,
  dir: string,
  child: string,
  known: Child | undefined,
  { watcher, codec, log }: { watcher: (event: Event) => void; codec: LayoutCodec; log: Logger },
): Promise<Child | undefined> {
  const path = `${dir}/${child}`;
  let data: Buffer | undefined;
  let stat: Stat;
  try {
    [data, stat] = await current.call<[Buffer | undefined, Stat]>('getData', (c, cb) =>
      c.getData(path, watcher, cb),
    );
  } catch (error) {
    if (isCode(error, E.NO_NODE)) return undefined;
    if (!isCode(error, E.NO_AUTH)) throw error;
    if (!known) log.warn({ path }, `zookeeper node ${path} skipped: no permission to read it`);
    return { session: current.sessionId, czxid: '', version: -1, instance: undefined };
  }
  const czxid = stat.czxid.toString('hex');
  // The same incarnation and version as before (read again in a new session): nothing changed.
  if (known && known.czxid === czxid && known.version === stat.version) {
    return { ...known, session: current.sessionId };
  }
  const parsed = codec.instance(child, data?.toString('utf8') ?? '');
  if (typeof parsed === 'string') {
    log.warn({ path, reason: parsed }, `zookeeper node ${path} skipped: its data is ${parsed}`);
  }
  return {
    session: current.sessionId,
    czxid,
    version: stat.version,
    instance: typeof parsed === 'string' ? undefined : parsed,
  };
}

/** The children of `dir`, watched; none while it does not exist, its creation watched instead. */
async function childNames(current: Session, dir: string, watcher: (event: Event) => void): Promise<string[]> {
  for (let tries = 0; tries < 8; tries++) {
    try {
      const [names] = await current.call<[string[], Stat]>('getChildren', (c, cb) =>
        c.getChildren(dir, watcher, cb),
      );
      return names;
    } catch (error) {
      if (!isCode(error, E.NO_NODE)) throw error;
      // Not there (yet, or no more since the last child left): wait for it to be created.
      const stat = await current.call<Stat | null>('exists', (c, cb) => c.exists(dir, watcher, cb));
      if (!stat) return [];
    }
  }
  throw new RegistryConnectionError(`${dir} kept appearing and vanishing`, BACKEND);
}
