import type {
  ElectionOptions,
  Leadership,
  LivenessLoss,
  Logger,
  Registry,
  RegistryEntry,
  RegistryEvent,
  RegistryWrite,
  RegistryWriteResult,
  Service,
  ServiceProblem,
} from '@registrar/core';
import {
  ConfigError,
  consoleLogger,
  NodeIdConflictError,
  RegistryError,
  RegistryRejectedError,
} from '@registrar/core';
import {
  endpointProblem,
  removeStateFile,
  renamedOption,
  roundsById,
  runPool,
  splitBatches,
  writeStateFile,
} from '@registrar/core/kit';
import { createHash } from 'node:crypto';
import zookeeper from 'node-zookeeper-client';
import type { ACL, Client, Stat, Transaction } from 'node-zookeeper-client';
import { Subject, type Observable } from 'rxjs';
import { codecFor, type LayoutCodec, type ZookeeperLayout, type ZookeeperPayload } from './layout.js';
import { checkDigest, createClient, isCode, Session, toRegistryError, ZkCodeError } from './session.js';
import type { DigestAuth } from './session.js';
import { loadSession } from './session-state.js';
import { electionPath, ZookeeperElection, type PublishedSession } from './election.js';
import { removeVersioned } from './client-internals.js';

const BACKEND = 'zookeeper';
const E = zookeeper.Exception;

/** Ops per `multi`, and its bytes: well inside ZooKeeper's default `jute.maxbuffer` of 1 MiB. */
const MULTI_OPS = 128;
const MULTI_BYTES = 512 * 2 ** 10;
/** `multi`s of one batch in flight at once (one session: ZooKeeper answers them in order). */
const MULTIS_IN_FLIGHT = 4;

/** One write of a batch as one op of a `multi`, and what it does to the bookkeeping once applied. */
interface MultiOp {
  /** The write's index in its round. */
  readonly index: number;
  readonly queue: (multi: Transaction) => void;
  readonly bytes: number;
  /** The service node a create needs (cached in `parents`). */
  readonly parent?: string;
  readonly done: () => void;
}

export interface ZookeeperRegistryOptions {
  /** The ensemble's servers, `host:port` each (port defaults to 2181). Needed unless `client` is given. */
  readonly hosts?: readonly string[];
  /**
   * @deprecated Renamed `hosts` (the same for every adapter): `connectString: 'a:2181,b:2181'` is
   * `hosts: ['a:2181', 'b:2181']`. This name goes in the next release.
   */
  readonly connectString?: string;
  /**
   * A ready client (not owned: never closed by the adapter; it cannot be replaced when its session expires,
   * so later operations fail with `RegistrySessionLostError`), or a factory the adapter calls for every new
   * session (those clients are owned and closed).
   */
  readonly client?: Client | (() => Client);
  /** The node id whose entries this adapter writes and lists. */
  readonly nodeId: string;
  /**
   * The Docker engine ID recorded in every node beside the owner (`registrar.engine`), so that a bridge of
   * another host using the same node id never touches them (see `Registry.engineId`).
   */
  readonly engineId?: string;
  /** Where services live, default `/services` (Curator's and Spring Cloud Zookeeper's default). */
  readonly prefix?: string;
  /** @deprecated Renamed `prefix` (the same for every adapter); this name goes in the next release. */
  readonly basePath?: string;
  /** Liveness TTL in seconds, requested as the session timeout (the server clamps it to 2–20 × tickTime). */
  readonly ttl?: number;
  /** Bound in milliseconds on each operation and on waiting for a session, default min(session timeout, 5 s). */
  readonly timeoutMs?: number;
  /** @deprecated Renamed `timeoutMs` (the same for every adapter); this name goes in the next release. */
  readonly operationTimeoutMs?: number;
  /** Default `curator`. */
  readonly layout?: ZookeeperLayout;
  /** Digest credentials: sent on every session, and created nodes get `digest:user:<hash>` all permissions. */
  readonly auth?: DigestAuth;
  /** With `auth`, also give `world:anyone` read so consumers without credentials can discover services. */
  readonly worldReadable?: boolean;
  /**
   * The curator layout's `payload`, which decides which Curator consumers can read the nodes: `spring` (Spring
   * Cloud Zookeeper's `ZookeeperInstance` with the metadata), `plain` (the metadata as a `Map`, for generic
   * Curator clients) or `none` (default: `null`, readable whatever the consumer's payload type, no metadata).
   * Not accepted with the registrator layout, whose nodes have no payload.
   */
  readonly payload?: ZookeeperPayload;
  /** Default: core's console logger (one line per event on standard error). */
  readonly logger?: Logger;
  /**
   * A file (mode 0600) that keeps this adapter's session id and password, so that a restarted process resumes
   * the session within its timeout: no node is deleted or created again. Without it a restart opens a new
   * session and re-creates every node. Needs `connectString`.
   */
  readonly stateFile?: string;
}

/**
 * The options with the renamed ones resolved onto the names this module uses inside (`connectString`,
 * `basePath`, `operationTimeoutMs`); giving a new name and its deprecated one is refused.
 */
export function resolveNames<
  T extends Pick<
    ZookeeperRegistryOptions,
    'hosts' | 'connectString' | 'prefix' | 'basePath' | 'timeoutMs' | 'operationTimeoutMs'
  >,
>(where: string, options: T): T {
  renamedOption(where, options, 'hosts', 'connectString');
  const { hosts } = options;
  if (
    hosts !== undefined &&
    (!Array.isArray(hosts) ||
      hosts.length === 0 ||
      hosts.some((h) => typeof h !== 'string' || h === '' || h.includes(',')))
  ) {
    throw new ConfigError(
      `${where}: hosts must be a non-empty list of host:port strings, e.g. ['zk1:2181']`,
      {
        field: 'hosts',
      },
    );
  }
  const connectString = hosts !== undefined ? hosts.join(',') : options.connectString;
  const basePath = renamedOption<string>(where, options, 'prefix', 'basePath');
  const operationTimeoutMs = renamedOption<number>(where, options, 'timeoutMs', 'operationTimeoutMs');
  return {
    ...options,
    ...(connectString !== undefined && { connectString }),
    ...(basePath !== undefined && { basePath }),
    ...(operationTimeoutMs !== undefined && { operationTimeoutMs }),
  };
}

/** Where a node of ours was found and what it holds. */
interface OwnedNode {
  readonly path: string;
  readonly id: string;
  readonly name: string;
  /** The writing engine, if the node records one. */
  readonly engine?: string;
  readonly data: string;
  readonly stat: Stat;
}

/** `/services` → `/services`, `/` → `` (so `${base}/${name}` never doubles the slash). */
export function normaliseBase(path: string): string {
  const trimmed = path.replace(/\/+$/, '');
  if (trimmed !== '' && !trimmed.startsWith('/'))
    throw new ConfigError(`base path "${path}" must start with /`);
  if (
    trimmed
      .split('/')
      .slice(1)
      .some((segment) => segment === '' || segment === '.' || segment === '..')
  ) {
    throw new ConfigError(`base path "${path}" has an empty, "." or ".." segment; use e.g. /services`);
  }
  return trimmed;
}

export function digestAcls(auth: ZookeeperRegistryOptions['auth'], worldReadable: boolean): ACL[] {
  const { ACL, Id, Permission } = zookeeper;
  if (!auth) return [new ACL(Permission.ALL, new Id('world', 'anyone'))];
  const user = auth.credentials.slice(0, auth.credentials.indexOf(':'));
  const hash = createHash('sha1').update(auth.credentials).digest('base64');
  const acls = [new ACL(Permission.ALL, new Id('digest', `${user}:${hash}`))];
  if (worldReadable) acls.push(new ACL(Permission.READ, new Id('world', 'anyone')));
  return acls;
}

/** ZooKeeper path rules for one node name: no '/', not '.' or '..', no NUL or control characters. */
function segmentProblem(field: string, value: string): ServiceProblem | undefined {
  // eslint-disable-next-line no-control-regex
  if (value === '' || value === '.' || value === '..' || /[/\u0000-\u001f\u007f]/.test(value)) {
    return { field, message: `${field} ${JSON.stringify(value)} cannot be a ZooKeeper node name` };
  }
  return undefined;
}

function parentOf(path: string): string {
  return path.slice(0, path.lastIndexOf('/')) || '/';
}

class ZookeeperRegistry implements Registry {
  readonly backend = BACKEND;
  readonly mirrorsHealth = false;
  readonly nodeId: string;
  readonly engineId?: string;
  readonly target: string;
  readonly lost$: Observable<LivenessLoss>;
  readonly events$: Observable<RegistryEvent>;

  private readonly lost = new Subject<LivenessLoss>();
  private readonly events = new Subject<RegistryEvent>();
  private readonly codec: LayoutCodec;
  private readonly base: string;
  private readonly acls: ACL[];
  private readonly logger: Logger;
  private readonly requestedTimeoutMs: number;
  private readonly operationTimeoutMs: number;
  /** Where each id was last written: deregister(id) needs the path, which the id alone does not give. */
  private readonly paths = new Map<string, string>();
  /**
   * Nodes this session wrote (or listed as its own), by path: the id they hold and the data version of our
   * last write. Lets an update skip the create that would fail with NODE_EXISTS, and a removal skip the read
   * before its versioned delete: a version that still matches means nobody wrote the node since we did.
   */
  private readonly written = new Map<string, { session: string; id: string; version: number }>();
  /**
   * Service nodes (`<base>/<name>`) known to exist: kept when their last instance goes, so the next start in
   * that service is one create, and removed by `reap()` once empty. Forgotten when a create says NO_NODE
   * (another bridge reaped it).
   */
  private readonly parents = new Set<string>();
  private session: Session;
  /** The saved session id the current client tries to resume, until it is established, and whose it was. */
  private resuming: { readonly sessionId: string; readonly from: 'state file' | 'leader' } | undefined;
  /** The first session came from the state file (it may hold entries the election's leader owns now). */
  private fromStateFile = false;
  /** The current session's id and password, once the server gave them (the election publishes them). */
  private established: { readonly client: Client; readonly credentials: PublishedSession } | undefined;
  private election: ZookeeperElection | undefined;
  private closed = false;

  private readonly options: ZookeeperRegistryOptions;

  constructor(given: ZookeeperRegistryOptions) {
    const options = resolveNames('zookeeper registry', given);
    this.options = options;
    if (!options.nodeId) throw new ConfigError('zookeeper registry: nodeId is required');
    if (!options.connectString && !options.client) {
      throw new ConfigError("zookeeper registry: give hosts (e.g. ['zk1:2181']) or client", {
        field: 'hosts',
      });
    }
    checkDigest(options.auth);
    const ttl = options.ttl ?? 15;
    if (!(ttl > 0)) throw new ConfigError(`zookeeper registry: ttl must be a positive number of seconds`);
    this.nodeId = options.nodeId;
    if (options.engineId !== undefined) this.engineId = options.engineId;
    this.base = normaliseBase(options.basePath ?? '/services');
    if (options.layout === 'registrator' && options.payload !== undefined) {
      throw new ConfigError(
        'zookeeper registry: payload applies to the curator layout only; registrator nodes have no payload',
      );
    }
    this.codec = codecFor(options.layout ?? 'curator', options.payload);
    this.acls = digestAcls(options.auth, options.worldReadable ?? false);
    this.logger = (options.logger ?? consoleLogger).child({ registry: BACKEND });
    this.requestedTimeoutMs = Math.round(ttl * 1000);
    this.operationTimeoutMs = options.operationTimeoutMs ?? Math.min(this.requestedTimeoutMs, 5000);
    const hosts = options.connectString ?? 'client';
    this.target = `zookeeper://${hosts}${this.base || '/'}`;
    this.lost$ = this.lost.asObservable();
    this.events$ = this.events.asObservable();
    this.session = this.openSession(true);
  }

  /** `takeOver`: resume this session (the previous election leader's) instead of opening a new one. */
  private openSession(first: boolean, takeOver?: PublishedSession): Session {
    const { client, connectString, auth } = this.options;
    let instance: Client;
    let owned: boolean;
    if (typeof client === 'function') {
      instance = client();
      owned = true;
      if (auth) instance.addAuthInfo(auth.scheme, Buffer.from(auth.credentials));
    } else if (client && first) {
      instance = client;
      owned = false;
      if (auth) instance.addAuthInfo(auth.scheme, Buffer.from(auth.credentials));
    } else if (connectString) {
      // Only the first session may resume a saved one: after a loss the saved one is gone too.
      const saved =
        takeOver ??
        (first && this.options.stateFile ? loadSession(this.options.stateFile, connectString) : undefined);
      this.resuming = saved && { sessionId: saved.sessionId, from: takeOver ? 'leader' : 'state file' };
      if (first && saved) this.fromStateFile = true;
      instance = createClient(
        connectString,
        this.requestedTimeoutMs,
        auth,
        saved && {
          sessionId: Buffer.from(saved.sessionId, 'hex'),
          sessionPassword: Buffer.from(saved.password, 'hex'),
        },
      );
      owned = true;
    } else {
      // An injected client whose session is gone cannot be replaced by us.
      const dead = new Session({
        client: client!,
        owned: false,
        requestedTimeoutMs: this.requestedTimeoutMs,
        operationTimeoutMs: this.operationTimeoutMs,
        logger: this.logger,
        onLost: () => undefined,
      });
      dead.markLost();
      return dead;
    }
    return new Session({
      client: instance,
      owned,
      requestedTimeoutMs: this.requestedTimeoutMs,
      operationTimeoutMs: this.operationTimeoutMs,
      ...(connectString !== undefined && { servers: connectString }),
      logger: this.logger,
      onLost: (reason) => this.onSessionLost(reason),
      onHeartbeatFailed: (error) => {
        if (!this.closed) this.events.next({ type: 'heartbeat-failed', error });
      },
      onRecovered: () => {
        if (!this.closed) this.events.next({ type: 'recovered' });
      },
      onEstablished: (sessionId, password) => this.onSessionEstablished(instance, sessionId, password),
      onDisconnected: () => {
        if (instance === this.session.client) this.election?.entriesDisconnected();
      },
    });
  }

  /** Remember the session (with `stateFile`), and say whether it is the one a previous process left. */
  private onSessionEstablished(client: Client, sessionId: string, password: Buffer) {
    const { stateFile, connectString } = this.options;
    if (this.resuming !== undefined && client === this.session?.client) {
      if (sessionId === this.resuming.sessionId) {
        this.logger.info(
          { sessionId },
          this.resuming.from === 'leader'
            ? 'zookeeper session taken over from the previous leader: nodes kept as they are'
            : 'zookeeper session resumed from the state file: nodes kept as they are',
        );
      }
      this.resuming = undefined;
    }
    if (client !== this.session?.client) return;
    this.established = { client, credentials: { sessionId, password: password.toString('hex') } };
    this.election?.entriesEstablished();
    // In an election the leader's session is published in ZooKeeper itself; a state file would only let a
    // restarted process take back a session its successor holds now.
    if (!stateFile || !connectString || this.election) return;
    try {
      writeStateFile(stateFile, { connectString, sessionId, password: password.toString('hex') });
    } catch (error) {
      this.logger.warn(
        { err: error, stateFile },
        'cannot write the zookeeper state file; a restart will re-create every node',
      );
    }
  }

  private onSessionLost(reason: string) {
    if (this.closed) return;
    this.logger.warn({ reason }, 'zookeeper session lost; opening a new one, every entry must be re-created');
    this.written.clear();
    // Its ephemeral nodes went with it: the re-registration that follows is a batch of creates.
    this.paths.clear();
    this.session = this.openSession(false);
    this.events.next({ type: 'liveness-lost', reason });
    this.lost.next({ reason });
  }

  /**
   * Swarm mode: one writer among the bridges sharing this node id, and the entries session handed from
   * leader to leader (see `election.ts`). While following, this adapter holds a session that owns nothing.
   */
  elect(options: ElectionOptions): Leadership {
    const { connectString, auth } = this.options;
    if (this.election) throw new ConfigError('zookeeper registry: elect() was called already');
    if (!connectString) {
      throw new ConfigError(
        'zookeeper registry: an election needs connectString (its session is a client of its own)',
      );
    }
    if (this.fromStateFile) {
      // The saved session may be the one the current leader took over: resuming it would take it back.
      this.logger.info('election: not resuming the state file session; the leader publishes its own');
      this.abandonSession(true);
    }
    // Nor may a later restart resume it (it may have been written before this call): the election node
    // is where a leader's session is found.
    if (this.options.stateFile) removeStateFile(this.options.stateFile);
    this.election = new ZookeeperElection(
      {
        connectString,
        auth,
        path: electionPath(this.base, this.nodeId),
        acls: digestAcls(auth, false),
        requestedTimeoutMs: this.requestedTimeoutMs,
        operationTimeoutMs: this.operationTimeoutMs,
        logger: this.logger,
        entriesTimeoutMs: () => this.session.timeoutMs,
        credentials: () =>
          this.established?.client === this.session.client ? this.established.credentials : undefined,
        takeOver: (published) => {
          if (!published || published.sessionId === this.session.sessionId) return;
          // Our own session owns nothing while we follow; it is abandoned rather than closed all the same.
          this.abandonSession(false, published);
        },
        fence: (reopen) => this.abandonSession(reopen),
      },
      options,
    );
    return this.election;
  }

  /**
   * Let go of the current session without closeSession and without a reconnect: its nodes stay for
   * whoever resumes it. Then open a fresh one (`reopen`), resume `takeOver`, or keep none (closing).
   */
  private abandonSession(reopen: boolean, takeOver?: PublishedSession) {
    const previous = this.session;
    this.written.clear();
    this.established = undefined;
    void previous.close(false);
    if (this.closed || (!reopen && !takeOver)) return;
    this.session = this.openSession(false, takeOver);
  }

  describeLiveness(): string {
    return `session timeout ${this.session.timeoutMs} ms as negotiated (requested ${this.requestedTimeoutMs} ms)`;
  }

  fingerprint(service: Service): string {
    const path = this.codec.path(this.base, service);
    return this.fingerprintOf(
      this.session.sessionId,
      path,
      this.codec.encode(service, this.nodeId, 0, this.engineId),
    );
  }

  /** The owning session is part of it: a node left by an earlier session must be re-created, so it differs. */
  private fingerprintOf(sessionId: string, path: string, data: string): string {
    const digest = createHash('sha256')
      .update(`${path}\n${this.codec.canonical(data)}`)
      .digest('hex');
    return `${sessionId || 'nosession'}/${digest.slice(0, 32)}`;
  }

  /** Written by another Docker engine under our node id: never ours to change or remove. */
  private foreignEngine(engine: string | undefined): boolean {
    return engine !== undefined && this.engineId !== undefined && engine !== this.engineId;
  }

  check(service: Service): ServiceProblem | undefined {
    return (
      endpointProblem(service) ??
      segmentProblem('name', service.name) ??
      segmentProblem('id', service.id) ??
      (this.codec.layout === 'registrator' ? segmentProblem('address', service.address) : undefined)
    );
  }

  async register(service: Service): Promise<void> {
    const unusable = this.check(service);
    if (unusable) throw new RegistryRejectedError(`service ${service.id}: ${unusable.message}`, BACKEND);
    const session = this.session;
    const path = this.codec.path(this.base, service);
    try {
      await this.upsert(session, path, service);
      const previous = this.paths.get(service.id);
      this.paths.set(service.id, path);
      // Renamed (or moved to another ip:port): the old node would otherwise linger under the old name.
      if (previous && previous !== path) await this.removeOwned(session, previous, service.id);
    } catch (error) {
      throw toRegistryError(error, `register ${service.id} at ${path}`);
    }
  }

  /** Remember that `path` holds `id` at data `version`, written (or owned) by the current session. */
  private wrote(session: Session, path: string, id: string, version: number) {
    if (session.sessionId) this.written.set(path, { session: session.sessionId, id, version });
  }

  /** What this session last wrote at `path`, if that session is still the current one. */
  private ownWrite(session: Session, path: string, id: string) {
    const known = this.written.get(path);
    return known && known.session === session.sessionId && known.id === id ? known : undefined;
  }

  private async upsert(session: Session, path: string, service: Service): Promise<void> {
    // A node this session already holds is read and updated in place: a create would only fail.
    let create = this.ownWrite(session, path, service.id) === undefined;
    for (let attempt = 0; attempt < 8; attempt++) {
      if (create) {
        const data = this.codec.encode(service, this.nodeId, Date.now(), this.engineId);
        try {
          await session.call('create', (c, cb) =>
            c.create(path, Buffer.from(data), this.acls, zookeeper.CreateMode.EPHEMERAL, cb),
          );
          this.wrote(session, path, service.id, 0);
          if (this.isServiceNode(parentOf(path))) this.parents.add(parentOf(path));
          return;
        } catch (error) {
          if (isCode(error, E.NO_NODE)) {
            // The parent is missing, or another bridge's reap removed it since: create it and try again.
            this.parents.delete(parentOf(path));
            await this.ensureParents(session, parentOf(path));
            continue;
          }
          if (!isCode(error, E.NODE_EXISTS)) throw error;
        }
      }
      const existing = await this.read(session, path);
      create = true;
      if (!existing) continue;
      const decoded = this.codec.decode(existing.data);
      if (decoded?.node !== this.nodeId) {
        throw new RegistryRejectedError(
          `${path} exists and belongs to ${decoded ? `node ${decoded.node}` : 'something else'}; leaving it alone`,
          BACKEND,
        );
      }
      if (this.foreignEngine(decoded.engine)) {
        throw new NodeIdConflictError(this.target, this.nodeId, decoded.engine!, BACKEND, path);
      }
      if (decoded.id !== service.id) {
        throw new RegistryRejectedError(
          `${path} already holds service ${decoded.id}; the ${this.codec.layout} layout cannot hold two services at one path`,
          BACKEND,
        );
      }
      const owner = existing.stat.ephemeralOwner.toString('hex');
      try {
        if (owner === session.sessionId) {
          const wanted = this.codec.encode(
            service,
            this.nodeId,
            decoded.registrationTimeUTC ?? Date.now(),
            this.engineId,
          );
          if (wanted === existing.data) {
            this.wrote(session, path, service.id, existing.stat.version);
            return;
          }
          const stat = await session.call<Stat>('setData', (c, cb) =>
            c.setData(path, Buffer.from(wanted), existing.stat.version, cb),
          );
          this.wrote(session, path, service.id, stat.version);
          return;
        }
        // Left by an earlier session of this node: it dies with that session, so replace it with ours.
        this.logger.debug({ path, ephemeralOwner: owner }, 'replacing node of an earlier session');
        await session.call('remove', (c, cb) => c.remove(path, existing.stat.version, cb));
      } catch (error) {
        if (!isCode(error, E.NO_NODE, E.BAD_VERSION)) throw error;
      }
    }
    throw new RegistryError(`${path} kept changing under us; giving up for now`, BACKEND);
  }

  private async read(session: Session, path: string): Promise<{ data: string; stat: Stat } | undefined> {
    try {
      const [data, stat] = await session.call<[Buffer | undefined, Stat]>('getData', (c, cb) =>
        c.getData(path, cb),
      );
      return { data: data?.toString('utf8') ?? '', stat };
    } catch (error) {
      if (isCode(error, E.NO_NODE)) return undefined;
      throw error;
    }
  }

  private async ensureParents(session: Session, path: string): Promise<void> {
    if (this.parents.has(path)) return;
    let current = '';
    for (const segment of path.split('/').slice(1)) {
      current += `/${segment}`;
      const node = current;
      const stat = await session.call<Stat | null>('exists', (c, cb) => c.exists(node, cb));
      if (stat) continue;
      try {
        await session.call('create', (c, cb) =>
          c.create(node, this.acls, zookeeper.CreateMode.PERSISTENT, cb),
        );
      } catch (error) {
        if (!isCode(error, E.NODE_EXISTS)) throw error;
      }
    }
    if (this.isServiceNode(path)) this.parents.add(path);
  }

  /** `<base>/<name>`: a node this adapter creates for a service and may reap once it is empty. */
  private isServiceNode(path: string): boolean {
    return path.startsWith(`${this.base}/`) && !path.slice(this.base.length + 1).includes('/');
  }

  async deregister(id: string): Promise<void> {
    const session = this.session;
    try {
      const known = this.paths.get(id);
      const paths = known
        ? [known]
        : (await this.scan(session)).filter((n) => n.id === id).map((n) => n.path);
      for (const path of paths) await this.removeOwned(session, path, id);
      this.paths.delete(id);
    } catch (error) {
      throw toRegistryError(error, `deregister ${id}`);
    }
  }

  /** Delete `path` if it is still ours and still `id`. Its service node stays (see `parents`, `reap`). */
  private async removeOwned(session: Session, path: string, id: string): Promise<void> {
    const own = this.ownWrite(session, path, id);
    this.written.delete(path);
    if (own) {
      // Unchanged since our own write (else the versioned delete fails): no read needed.
      const removed = await session
        .call('remove', (c, cb) => c.remove(path, own.version, cb))
        .then(
          () => true,
          (error: unknown) => {
            if (isCode(error, E.NO_NODE)) return true;
            if (isCode(error, E.BAD_VERSION)) return false;
            throw error;
          },
        );
      if (removed) return;
    }
    for (let attempt = 0; attempt < 8; attempt++) {
      const existing = await this.read(session, path);
      if (!existing) break;
      const decoded = this.codec.decode(existing.data);
      if (decoded?.node !== this.nodeId || decoded.id !== id || this.foreignEngine(decoded.engine)) return;
      try {
        await session.call('remove', (c, cb) => c.remove(path, existing.stat.version, cb));
        break;
      } catch (error) {
        if (isCode(error, E.NO_NODE)) break;
        if (!isCode(error, E.BAD_VERSION)) throw error;
      }
    }
  }

  /**
   * Remove the service nodes this adapter knows (created, or holding entries it listed) that have no instance
   * left. ZooKeeper refuses to delete a node with children (NOT_EMPTY) and the delete is versioned, so an
   * instance another bridge creates at the same moment wins; that bridge creates the node again on NO_NODE.
   * The node is forgotten before its delete is sent, so a create of ours racing with it does the same.
   */
  async reap(): Promise<void> {
    const session = this.session;
    try {
      await runPool([...this.parents], 16, async (parent) => {
        const stat = await session.call<Stat | null>('exists', (c, cb) => c.exists(parent, cb));
        if (!stat) return void this.parents.delete(parent);
        if (stat.numChildren > 0) return;
        this.parents.delete(parent);
        try {
          await session.call('remove', (c, cb) => c.remove(parent, stat.version, cb));
          this.logger.debug({ path: parent }, 'reaped empty service node');
        } catch (error) {
          if (isCode(error, E.NOT_EMPTY, E.BAD_VERSION)) this.parents.add(parent);
          else if (!isCode(error, E.NO_NODE, E.NO_AUTH)) throw error;
        }
      });
    } catch (error) {
      throw toRegistryError(error, 'reap');
    }
  }

  /**
   * Each round of distinct ids as `multi`s of up to 128 ops / 512 KiB: creates of new instances (their
   * service nodes made first, once, and cached) and versioned deletes of nodes this session wrote. What a
   * `multi` cannot say without a read (an update, a rename, a node written by someone else) goes the way
   * `register` / `deregister` go, beside it. A `multi` is all or nothing: when one op fails on the data (a
   * node that exists already, a service node reaped meanwhile, a version that moved, a permission) each of
   * its writes is made again alone, so each gets its own outcome; a lost connection or session fails them all.
   */
  async applyBatch(writes: readonly RegistryWrite[]): Promise<RegistryWriteResult[]> {
    const results = new Array<RegistryWriteResult>(writes.length);
    for (const round of roundsById(writes)) {
      await this.applyRound(
        round.map((index) => writes[index]),
        (i, result) => (results[round[i]] = result),
      );
    }
    return results;
  }

  private async applyRound(
    writes: readonly RegistryWrite[],
    settle: (index: number, result: RegistryWriteResult) => void,
  ): Promise<void> {
    const session = this.session;
    const single = async (index: number) => {
      const write = writes[index];
      try {
        if (write.type === 'register') await this.register(write.service);
        else await this.deregister(write.id);
        settle(index, { ok: true });
      } catch (error) {
        settle(index, { ok: false, error: toRegistryError(error, 'batch') });
      }
    };
    const ops: MultiOp[] = [];
    const alone: number[] = [];
    writes.forEach((write, index) => {
      const op =
        write.type === 'register'
          ? this.createOp(session, index, write.service)
          : this.removeOp(session, index, write.id);
      if (op) ops.push(op);
      else alone.push(index);
    });
    // Service nodes first, each once; a create under one that could not be made goes alone (and says why).
    const missing = [
      ...new Set(
        ops.flatMap((op) => (op.parent !== undefined && !this.parents.has(op.parent) ? [op.parent] : [])),
      ),
    ];
    const unmade = new Set<string>();
    await runPool(missing, 16, (parent) =>
      this.ensureParents(session, parent).catch(() => void unmade.add(parent)),
    );
    const batched = ops.filter((op) => op.parent === undefined || !unmade.has(op.parent));
    for (const op of ops) if (op.parent !== undefined && unmade.has(op.parent)) alone.push(op.index);
    const multis = splitBatches(batched, MULTI_OPS, MULTI_BYTES, (op) => op.bytes);
    await Promise.all([
      runPool(alone, 16, single),
      runPool(multis, MULTIS_IN_FLIGHT, async (multi) => {
        try {
          await session.call('multi', (c, cb) => {
            const transaction = c.transaction();
            for (const op of multi) op.queue(transaction);
            transaction.commit(cb);
          });
        } catch (error) {
          if (
            !(error instanceof ZkCodeError) ||
            isCode(error, E.CONNECTION_LOSS, E.OPERATION_TIMEOUT, E.SESSION_EXPIRED)
          ) {
            for (const op of multi) settle(op.index, { ok: false, error: toRegistryError(error, 'batch') });
            return;
          }
          // NODE_EXISTS, NO_NODE, BAD_VERSION, a permission: one op's data, not the session. Each alone.
          if (isCode(error, E.NO_NODE))
            for (const op of multi) if (op.parent !== undefined) this.parents.delete(op.parent);
          this.logger.debug({ err: error, ops: multi.length }, 'multi refused; writing its ops one by one');
          await runPool(multi, 16, (op) => single(op.index));
          return;
        }
        for (const op of multi) {
          op.done();
          settle(op.index, { ok: true });
        }
      }),
    ]);
  }

  /** A create of `service` in a `multi`, when that is all its register needs; undefined otherwise. */
  private createOp(session: Session, index: number, service: Service): MultiOp | undefined {
    if (this.check(service)) return undefined;
    const path = this.codec.path(this.base, service);
    // A node known to exist (written, or listed from an earlier session) is read first, updated or replaced,
    // and a renamed one also removed: register does all that. A create is for an id with no node yet.
    if (this.paths.has(service.id)) return undefined;
    const data = Buffer.from(this.codec.encode(service, this.nodeId, Date.now(), this.engineId));
    const parent = parentOf(path);
    return {
      index,
      queue: (multi) => multi.create(path, data, this.acls, zookeeper.CreateMode.EPHEMERAL),
      bytes: data.length + path.length + 64,
      ...(this.isServiceNode(parent) && { parent }),
      done: () => {
        this.wrote(session, path, service.id, 0);
        this.paths.set(service.id, path);
        if (this.isServiceNode(parent)) this.parents.add(parent);
      },
    };
  }

  /** A versioned delete in a `multi` of a node this session wrote and nobody changed since we know of. */
  private removeOp(session: Session, index: number, id: string): MultiOp | undefined {
    const path = this.paths.get(id);
    const own = path === undefined ? undefined : this.ownWrite(session, path, id);
    if (path === undefined || own === undefined) return undefined;
    return {
      index,
      queue: (multi) => removeVersioned(multi, path, own.version),
      bytes: path.length + 32,
      done: () => {
        this.written.delete(path);
        this.paths.delete(id);
      },
    };
  }

  async list(): Promise<RegistryEntry[]> {
    const session = this.session;
    try {
      const nodes = await this.scan(session);
      for (const node of nodes) {
        if (!this.paths.has(node.id)) this.paths.set(node.id, node.path);
        const parent = parentOf(node.path);
        if (this.isServiceNode(parent)) this.parents.add(parent);
        if (node.stat.ephemeralOwner.toString('hex') === session.sessionId) {
          this.wrote(session, node.path, node.id, node.stat.version);
        }
      }
      return nodes.map((node) => ({
        id: node.id,
        name: node.name,
        fingerprint: this.fingerprintOf(node.stat.ephemeralOwner.toString('hex'), node.path, node.data),
        ...(node.engine !== undefined && { engine: node.engine }),
      }));
    } catch (error) {
      throw toRegistryError(error, 'list');
    }
  }

  private async children(session: Session, path: string): Promise<string[]> {
    try {
      const [children] = await session.call<[string[], Stat]>('getChildren', (c, cb) =>
        c.getChildren(path, cb),
      );
      return children;
    } catch (error) {
      if (isCode(error, E.NO_NODE, E.NO_AUTH)) return [];
      throw error;
    }
  }

  /**
   * Every node under the base whose record names this node as owner. Reads only, pipelined; the data of
   * only those children whose name this node can own (the curator layout names them `<node-id>:...`), so a
   * base shared with thousands of other nodes' instances costs one `getChildren` per service, not a read
   * of each instance.
   */
  private async scan(session: Session): Promise<OwnedNode[]> {
    const names = await this.children(session, this.base || '/');
    const perName = await runPool(names, 16, async (name) => {
      const dir = `${this.base}/${name}`;
      const kids = (await this.children(session, dir)).filter((kid) => this.codec.mayOwn(kid, this.nodeId));
      const found = await runPool(kids, 32, async (kid) => {
        const path = `${dir}/${kid}`;
        let existing: { data: string; stat: Stat } | undefined;
        try {
          existing = await this.read(session, path);
        } catch (error) {
          if (isCode(error, E.NO_AUTH)) return undefined;
          throw error;
        }
        const decoded = existing && this.codec.decode(existing.data);
        if (!existing || decoded?.node !== this.nodeId) return undefined;
        const engine = decoded.engine !== undefined ? { engine: decoded.engine } : {};
        return {
          path,
          id: decoded.id,
          name: decoded.name,
          ...engine,
          data: existing.data,
          stat: existing.stat,
        };
      });
      return found.filter((node) => node !== undefined);
    });
    return perName.flat();
  }

  async close(options: { deregister?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    if (this.election) {
      // The entries are the cluster's, not this process's: resign (a leader abandons the entries session
      // for its successor) and never delete them, not even by closing the session.
      await this.election.close();
      if (options.deregister)
        this.logger.warn('election: entries are left for the successor, not deregistered');
      options = { deregister: false };
    }
    this.closed = true;
    const session = this.session;
    if (options.deregister && session.state === 'connected') {
      try {
        const nodes = await this.scan(session);
        await runPool(nodes, 32, (node) => this.removeOwned(session, node.path, node.id));
        // Leaving for good: nothing of ours will reap the service nodes later.
        await this.reap();
      } catch (error) {
        // The clean close below still removes every ephemeral of this session.
        this.logger.warn(
          { err: toRegistryError(error, 'deregister on close') },
          'deregister on close failed',
        );
      }
    }
    // Without deregister the session is abandoned rather than closed, so the nodes outlive us by the
    // session timeout (the Registry contract: entries stay until their TTL runs out).
    await session.close(options.deregister === true);
    // Closed for good: nothing is left to resume.
    if (options.deregister === true && this.options.stateFile) removeStateFile(this.options.stateFile);
    this.lost.complete();
    this.events.complete();
  }
}

/** A registry adapter keeping `<base>/<name>/<id>` ephemeral nodes alive with one ZooKeeper session. */
export function createZookeeperRegistry(options: ZookeeperRegistryOptions): Registry {
  return new ZookeeperRegistry(options);
}
