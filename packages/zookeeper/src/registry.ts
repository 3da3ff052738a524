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
import { endpointProblem, removeStateFile, renamedOption, runPool } from '@registrar/core/kit';
import { createHash } from 'node:crypto';
import zookeeper from 'node-zookeeper-client';
import type { ACL, Client, Stat } from 'node-zookeeper-client';
import type { Observable } from 'rxjs';
import { applyBatch, type MultiOp } from './batch.js';
import { removeVersioned } from './client-internals.js';
import { electionPath, ZookeeperElection } from './election.js';
import { isCode, toRegistryError } from './errors.js';
import { codecFor, type LayoutCodec, type ZookeeperLayout, type ZookeeperPayload } from './layout.js';
import { EntriesSession } from './liveness.js';
import { parentOf, readNode, scanOwned, ServiceNodes } from './nodes.js';
import { checkDigest, digestAcls, type DigestAuth, type Session } from './session.js';

const BACKEND = 'zookeeper';
const E = zookeeper.Exception;

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

/** ZooKeeper path rules for one node name: no '/', not '.' or '..', no NUL or control characters. */
function segmentProblem(field: string, value: string): ServiceProblem | undefined {
  // eslint-disable-next-line no-control-regex
  if (value === '' || value === '.' || value === '..' || /[/\u0000-\u001f\u007f]/.test(value)) {
    return { field, message: `${field} ${JSON.stringify(value)} cannot be a ZooKeeper node name` };
  }
  return undefined;
}

class ZookeeperRegistry implements Registry {
  readonly backend = BACKEND;
  readonly mirrorsHealth = false;
  readonly nodeId: string;
  readonly engineId?: string;
  readonly target: string;
  readonly lost$: Observable<LivenessLoss>;
  readonly events$: Observable<RegistryEvent>;

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
  private readonly nodes: ServiceNodes;
  private readonly liveness: EntriesSession;
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
    this.nodes = new ServiceNodes(this.base, this.acls, this.logger);
    this.liveness = new EntriesSession({
      ...(options.client !== undefined && { client: options.client }),
      ...(options.connectString !== undefined && { connectString: options.connectString }),
      ...(options.auth !== undefined && { auth: options.auth }),
      ...(options.stateFile !== undefined && { stateFile: options.stateFile }),
      requestedTimeoutMs: this.requestedTimeoutMs,
      operationTimeoutMs: this.operationTimeoutMs,
      logger: this.logger,
      forget: (lost) => {
        this.written.clear();
        // Its ephemeral nodes went with it: the re-registration that follows is a batch of creates.
        if (lost) this.paths.clear();
      },
    });
    this.lost$ = this.liveness.lost$.asObservable();
    this.events$ = this.liveness.events$.asObservable();
  }

  private get session(): Session {
    return this.liveness.session;
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
    const liveness = this.liveness;
    if (liveness.fromStateFile) {
      // The saved session may be the one the current leader took over: resuming it would take it back.
      this.logger.info('election: not resuming the state file session; the leader publishes its own');
      liveness.abandon(true);
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
        entriesTimeoutMs: () => liveness.session.timeoutMs,
        credentials: () => liveness.credentials(),
        takeOver: (published) => {
          if (!published || published.sessionId === liveness.session.sessionId) return;
          // Our own session owns nothing while we follow; it is abandoned rather than closed all the same.
          liveness.abandon(false, published);
        },
        fence: (reopen) => liveness.abandon(reopen),
      },
      options,
    );
    liveness.electing(this.election);
    return this.election;
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
          this.nodes.holds(path);
          return;
        } catch (error) {
          if (isCode(error, E.NO_NODE)) {
            // The parent is missing, or another bridge's reap removed it since: create it and try again.
            this.nodes.forget(parentOf(path));
            await this.nodes.ensure(session, parentOf(path));
            continue;
          }
          if (!isCode(error, E.NODE_EXISTS)) throw error;
        }
      }
      const existing = await readNode(session, path);
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

  /** Delete `path` if it is still ours and still `id`. Its service node stays (see `ServiceNodes`). */
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
      const existing = await readNode(session, path);
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

  /** Every node under the base that this node id owns. */
  private scan(session: Session) {
    return scanOwned(session, this.base, this.codec, this.nodeId);
  }

  /** Remove the service nodes this adapter knows (created, or holding entries it listed) left empty. */
  async reap(): Promise<void> {
    try {
      await this.nodes.reap(this.session);
    } catch (error) {
      throw toRegistryError(error, 'reap');
    }
  }

  /** Creates of new instances and deletes of our own nodes as `multi`s; the rest as `register`/`deregister`. */
  applyBatch(writes: readonly RegistryWrite[]): Promise<RegistryWriteResult[]> {
    return applyBatch(writes, {
      session: () => this.session,
      nodes: this.nodes,
      logger: this.logger,
      opFor: (session, index, write) =>
        write.type === 'register'
          ? this.createOp(session, index, write.service)
          : this.removeOp(session, index, write.id),
      alone: (write) =>
        write.type === 'register' ? this.register(write.service) : this.deregister(write.id),
    });
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
      ...(this.nodes.isServiceNode(parent) && { parent }),
      done: () => {
        this.wrote(session, path, service.id, 0);
        this.paths.set(service.id, path);
        this.nodes.holds(path);
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
        this.nodes.holds(node.path);
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
    this.liveness.stop();
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
    await this.liveness.close(options.deregister === true);
  }
}

/** A registry adapter keeping `<base>/<name>/<id>` ephemeral nodes alive with one ZooKeeper session. */
export function createZookeeperRegistry(options: ZookeeperRegistryOptions): Registry {
  return new ZookeeperRegistry(options);
}
