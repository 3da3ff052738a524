import type {
  ElectionOptions,
  Leadership,
  Logger,
  Registry,
  RegistryEntry,
  RegistryWrite,
  RegistryWriteResult,
  Service,
  ServiceProblem,
} from '@registrar/core';
import { endpointProblem, renamedOption, roundsById } from '@registrar/core/kit';
import { ConfigError, consoleLogger, RegistryRejectedError } from '@registrar/core';
import type { Etcd3, IRangeRequest } from 'etcd3';
import { EtcdLeaseInvalidError } from 'etcd3';
import { applyTxns, type TxnWrite } from './batch.js';
import { createClient, prefixEnd, targetOf } from './client.js';
import { etcdCall } from './call.js';
import { backend, compacted, toRegistryError } from './errors.js';
import type { EtcdLayout, LayoutCodec } from './layout.js';
import { createCodec, defaultPrefix, layouts, normalisePrefix, ownedId } from './layout.js';
import { EtcdLeadership } from './election.js';
import { LeaseKeeper } from './liveness.js';
import { keyAfter, ownedRuns, readRange } from './range.js';

/** Connection settings for a client the adapter creates, owns and closes. */
export interface EtcdConnectionOptions {
  /** `host:port` or `http(s)://host:port`; several for a cluster. */
  readonly hosts: readonly string[];
  readonly auth?: { readonly username: string; readonly password: string };
  /** PEM contents (not paths). Any of them switches the connection to TLS. */
  readonly tls?: {
    readonly ca?: string | Buffer;
    readonly cert?: string | Buffer;
    readonly key?: string | Buffer;
  };
  readonly client?: undefined;
}

/** A ready client the caller owns: the adapter never closes it. */
export interface EtcdClientOptions {
  readonly client: Etcd3;
}

export interface EtcdCommonOptions {
  /** Whose entries this adapter reads and writes. No `:` or `/`: ids are `<node-id>:...`. */
  readonly nodeId: string;
  /**
   * The Docker engine ID recorded with every entry (json layout: `"engine"` in the record), so that a bridge
   * of another host using the same node id never touches them (see `Registry.engineId`).
   */
  readonly engineId?: string;
  /** Key prefix; default `/services` (`/skydns` for the skydns layout, CoreDNS's `path`). */
  readonly prefix?: string;
  /** Lease TTL in seconds; default 15, at least 2 (etcd raises smaller grants). */
  readonly ttl?: number;
  /** Seconds between keepalives; default ttl/3. */
  readonly keepaliveInterval?: number;
  readonly layout?: EtcdLayout;
  /** skydns only: the DNS zone; default `skydns.local`. */
  readonly skydnsDomain?: string;
  /**
   * Milliseconds any one etcd call (connecting, and attempts on other members, included) may take before it fails with a
   * RegistryConnectionError; default 5000. (etcd3 1.1.2 ignores its own `dialTimeout`.)
   */
  readonly timeoutMs?: number;
  /** @deprecated Renamed `timeoutMs` (the same for every adapter); this name goes in the next release. */
  readonly requestTimeout?: number;
  /** Default: core's console logger (one line per event on standard error). */
  readonly logger?: Logger;
  /**
   * Never grant a lease before a write (`--dry-run`): by default `list()` grants it beside its read, so the
   * first write after start-up pays no grant.
   */
  readonly readOnly?: boolean;
  /**
   * A file (mode 0600) keeping this adapter's lease id, so that a restarted process keeps that lease alive
   * instead of granting a new one: the keys on it need no write. Without it a restart puts every key again.
   */
  readonly stateFile?: string;
}

export type EtcdRegistryOptions = EtcdCommonOptions & (EtcdConnectionOptions | EtcdClientOptions);

function validate(options: EtcdRegistryOptions) {
  const fail = (message: string) => {
    throw new ConfigError(message);
  };
  if (!options.nodeId || /[:/]/.test(options.nodeId)) {
    fail(`invalid etcd node id "${options.nodeId}": it must be non-empty without ":" or "/"`);
  }
  const ttl = options.ttl ?? 15;
  if (!Number.isFinite(ttl) || ttl < 2) fail(`invalid etcd ttl ${ttl}: use at least 2 seconds`);
  const interval = options.keepaliveInterval ?? ttl / 3;
  if (!Number.isFinite(interval) || interval <= 0 || interval >= ttl) {
    fail(`invalid etcd keepalive interval ${interval}: it must be above 0 and below the ttl (${ttl} s)`);
  }
  if (options.layout !== undefined && !layouts.includes(options.layout)) {
    fail(`invalid etcd layout "${String(options.layout)}": use one of ${layouts.join(', ')}`);
  }
  if (!options.client && (!options.hosts || options.hosts.length === 0)) {
    fail('no etcd hosts given: pass `hosts` or a ready `client`');
  }
  return { ttl: Math.ceil(ttl), interval };
}

/**
 * An etcd v3 registry: every key put with this adapter's one lease, kept alive every `keepaliveInterval`.
 * Usable on its own: `createEtcdRegistry({ hosts: ['127.0.0.1:2379'], nodeId: 'host1' })`, then
 * `register` / `deregister` / `list` / `close`.
 */
export function createEtcdRegistry(options: EtcdRegistryOptions): Registry {
  const { ttl, interval } = validate(options);
  const layout = options.layout ?? 'json';
  const timeoutMs = renamedOption<number>('etcd registry', options, 'timeoutMs', 'requestTimeout') ?? 5000;
  const logger = (options.logger ?? consoleLogger).child({ backend });
  const ownsClient = !options.client;
  const client = options.client ?? createClient(options, timeoutMs);
  const prefix = normalisePrefix(options.prefix ?? defaultPrefix(layout));
  const codec = createCodec({
    layout,
    prefix,
    nodeId: options.nodeId,
    ...(options.engineId !== undefined && layout === 'json' && { engineId: options.engineId }),
    domain: options.skydnsDomain ?? 'skydns.local',
    ttl,
  });
  const lease = new LeaseKeeper({
    client,
    ttl,
    keepaliveMs: interval * 1000,
    timeoutMs,
    logger,
    ...(options.stateFile !== undefined && { stateFile: options.stateFile }),
  });
  return new EtcdRegistry(client, ownsClient, codec, lease, options.nodeId, {
    // Only a layout that records the engine can tell another engine's entries from ours.
    ...(options.engineId !== undefined && layout === 'json' && { engineId: options.engineId }),
    target: targetOf(options, codec.root),
    timeoutMs,
    logger,
    ttl,
    readOnly: options.readOnly === true,
  });
}

interface StoredEntry {
  readonly id: string;
  readonly name: string;
  readonly engine?: string;
  readonly key: string;
  readonly fingerprint: string;
}

const fingerprintOf = (key: string, value: string, lease: string) => `${key}\n${value}\nlease=${lease}`;

class EtcdRegistry implements Registry {
  readonly backend = backend;
  readonly mirrorsHealth = false;
  readonly target: string;
  readonly engineId?: string;
  /** id → keys it is stored under (more than one only after a rename or a hand edit). */
  private readonly index = new Map<string, string[]>();
  /** Whether the write path was primed (`primeWrites`): once per adapter. */
  private primed = false;
  private readonly timeoutMs: number;
  private readonly logger: Logger;
  private closing: Promise<void> | undefined;
  private readonly ttl: number;
  private electing: EtcdLeadership | undefined;
  private readonly readOnly: boolean;

  constructor(
    private readonly client: Etcd3,
    private readonly ownsClient: boolean,
    private readonly codec: LayoutCodec,
    private readonly lease: LeaseKeeper,
    readonly nodeId: string,
    settings: {
      target: string;
      timeoutMs: number;
      logger: Logger;
      engineId?: string;
      ttl: number;
      readOnly: boolean;
    },
  ) {
    this.ttl = settings.ttl;
    this.readOnly = settings.readOnly;
    this.target = settings.target;
    if (settings.engineId !== undefined) this.engineId = settings.engineId;
    this.timeoutMs = settings.timeoutMs;
    this.logger = settings.logger;
  }

  get lost$() {
    return this.lease.lost$.asObservable();
  }

  get events$() {
    return this.lease.events$.asObservable();
  }

  describeLiveness(): string {
    return `lease ${this.lease.id ?? '(none yet)'} with a TTL of ${this.lease.grantedTtl ?? '?'} s`;
  }

  /**
   * Joins etcd3's election `registrar<root>/<node id>` (keys `election/registrar<root>/<node id>/<lease>`):
   * see `EtcdLeadership`. One election per adapter at a time.
   */
  elect(options: ElectionOptions): Leadership {
    this.assertOpen();
    if (this.electing) throw new ConfigError('this etcd adapter is already in an election');
    this.electing = new EtcdLeadership(
      {
        ...options,
        client: this.client,
        lease: this.lease,
        name: `registrar${this.codec.root}/${this.nodeId}`,
        ttl: this.ttl,
        logger: this.logger,
      },
      () => (this.electing = undefined),
    );
    return this.electing;
  }

  check(service: Service): ServiceProblem | undefined {
    return endpointProblem(service) ?? this.codec.check(service);
  }

  fingerprint(service: Service): string {
    return fingerprintOf(this.codec.key(service), this.codec.value(service), this.lease.id ?? 'none');
  }

  async register(service: Service): Promise<void> {
    this.assertOpen();
    const refused = this.refusal(service);
    if (refused) throw refused;
    const key = this.codec.key(service);
    const value = this.codec.value(service);
    const leaseId = await this.lease.acquire();
    const stale = (this.index.get(service.id) ?? []).filter((old) => old !== key);
    const put = { key: Buffer.from(key), value: Buffer.from(value), lease: leaseId };
    // Written only if not there yet: an attempt cut off by its deadline may have landed, and its retry must
    // not write the same again. A renamed service's new key and the removal of the old one land together.
    const there = [
      { key: put.key, target: 'Value' as const, result: 'Equal' as const, value: put.value },
      { key: put.key, target: 'Lease' as const, result: 'Equal' as const, lease: leaseId },
    ];
    const removals = stale.map((old) => ({ request_delete_range: { key: Buffer.from(old) } }));
    await this.call('put', async (options) => {
      try {
        await this.client.kv.txn(
          { compare: there, success: removals, failure: [{ request_put: put }, ...removals] },
          options,
        );
      } catch (error) {
        if (error instanceof EtcdLeaseInvalidError)
          this.lease.lose(leaseId, 'etcd refused a put: lease not found');
        throw error;
      }
    });
    this.index.set(service.id, [key]);
    this.logger.debug({ id: service.id, key }, 'registered');
  }

  async deregister(id: string): Promise<void> {
    this.assertOpen();
    if (!ownedId(id, this.nodeId)) return; // never ours: nothing of ours to remove
    let keys = this.index.get(id);
    if (!keys) keys = (await this.scan()).filter((entry) => entry.id === id).map((entry) => entry.key);
    for (const key of keys) {
      await this.call('delete', (options) => this.client.kv.deleteRange({ key: Buffer.from(key) }, options));
    }
    this.index.delete(id);
    if (keys.length > 0) this.logger.debug({ id, keys }, 'deregistered');
  }

  /**
   * Each round of distinct ids as transactions of up to 128 ops and compares (so 64 registers) and 1.5 MiB, a
   * few in flight. A transaction is all or nothing and writes nothing when all of its records are there already
   * on the lease (it landed, and only its answer was lost): it puts them all otherwise, and always deletes the
   * keys of its deregisters and the keys an earlier name of a registered id left. When the server refuses a
   * transaction (a permission on one key) its writes are made again one by one, so each gets its own outcome;
   * a connection failure fails them all.
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
    const fail = (index: number, error: unknown) =>
      settle(index, { ok: false, error: toRegistryError(error, 'batch') });
    const ok = (index: number) => settle(index, { ok: true });
    try {
      this.assertOpen();
    } catch (error) {
      writes.forEach((_, index) => fail(index, error));
      return;
    }
    const ops: TxnWrite[] = [];
    const registers: { index: number; service: Service }[] = [];
    const unknown: { index: number; id: string }[] = [];
    writes.forEach((write, index) => {
      if (write.type === 'deregister') {
        if (!ownedId(write.id, this.nodeId)) return ok(index);
        const keys = this.index.get(write.id);
        if (keys === undefined) unknown.push({ index, id: write.id });
        else ops.push(this.deleteOp(index, write.id, keys));
        return;
      }
      const problem = this.refusal(write.service);
      if (problem) return fail(index, problem);
      registers.push({ index, service: write.service });
    });
    if (unknown.length > 0) {
      // Ids this process never wrote nor listed: one read for all of them, not one per id.
      try {
        const stored = await this.scan();
        for (const { index, id } of unknown) {
          const keys = stored.filter((entry) => entry.id === id).map((entry) => entry.key);
          if (keys.length === 0) ok(index);
          else ops.push(this.deleteOp(index, id, keys));
        }
      } catch (error) {
        for (const { index } of unknown) fail(index, error);
      }
    }
    let leaseId: string | undefined;
    if (registers.length > 0) {
      try {
        leaseId = await this.lease.acquire();
      } catch (error) {
        for (const { index } of registers) fail(index, error);
      }
      if (leaseId !== undefined) for (const r of registers) ops.push(this.putOp(r.index, r.service, leaseId));
    }
    await applyTxns(ops, {
      txn: (request) => this.call('batch', (options) => this.client.kv.txn(request, options)),
      alone: async (w) => {
        const write = writes[w.index];
        try {
          if (write.type === 'register') await this.register(write.service);
          else await this.deregister(write.id);
          ok(w.index);
        } catch (error) {
          fail(w.index, error);
        }
      },
      ok,
      fail,
      ...(leaseId !== undefined && {
        leaseLost: () => this.lease.lose(leaseId, 'etcd refused a batch: lease not found'),
      }),
      logger: this.logger,
    });
  }

  /** Why `register(service)` would refuse it without asking etcd, if it would. */
  private refusal(service: Service): RegistryRejectedError | undefined {
    if (service.node !== this.nodeId) {
      return new RegistryRejectedError(
        `service ${service.id} belongs to node "${service.node}", this adapter writes for "${this.nodeId}"`,
        backend,
      );
    }
    if (!ownedId(service.id, this.nodeId)) {
      return new RegistryRejectedError(
        `service id ${service.id} does not start with "${this.nodeId}:"`,
        backend,
      );
    }
    const unusable = this.check(service);
    return unusable && new RegistryRejectedError(`service ${service.id}: ${unusable.message}`, backend);
  }

  /**
   * One transaction shaped like a batch of a register and a deregister whose compare never holds (no key has
   * a version below 0), so etcd writes nothing and its revision stays: the client's encoders for the write
   * path (protobufjs generates each message's at its first use) are built before the first container needs
   * them, not during its start.
   */
  private async primeWrites(leaseId: string): Promise<void> {
    const service: Service = {
      id: `${this.nodeId}:registrar-prime:1`,
      name: 'registrar-prime',
      address: '127.0.0.1',
      port: 1,
      protocol: 'tcp',
      containerPort: 1,
      tags: [],
      meta: {},
      node: this.nodeId,
      health: 'passing',
      healthOutput: '',
      checks: {},
    };
    const put = this.putOp(-1, service, leaseId);
    // etcd refuses a branch that names one key twice: the delete is of another (never written) id's key.
    const other = Buffer.from(
      this.codec.key({ ...service, id: `${this.nodeId}:registrar-prime:2`, port: 2 }),
    );
    // One attempt, bounded short: a prime that fails costs the first container its few milliseconds, no more.
    await this.client.kv.txn(
      {
        compare: [{ key: other, target: 'Version', result: 'Less', version: '0' }, ...put.compare],
        success: [...put.unlessThere, { request_delete_range: { key: other } }],
        failure: [],
      },
      { deadline: Date.now() + Math.min(1_000, this.timeoutMs) },
    );
  }

  /** The record put with the lease; the keys an earlier name of the id left deleted. */
  private putOp(index: number, service: Service, leaseId: string): TxnWrite {
    const key = Buffer.from(this.codec.key(service));
    const value = Buffer.from(this.codec.value(service));
    const stale = (this.index.get(service.id) ?? []).filter((old) => old !== key.toString());
    return {
      index,
      compare: [
        { key, target: 'Value', result: 'Equal', value },
        { key, target: 'Lease', result: 'Equal', lease: leaseId },
      ],
      always: stale.map((old) => ({ request_delete_range: { key: Buffer.from(old) } })),
      unlessThere: [{ request_put: { key, value, lease: leaseId } }],
      // The value twice (compare and put), the key three times, removed keys twice (both branches).
      bytes:
        2 * value.length + 3 * key.length + stale.reduce((sum, old) => sum + 2 * old.length + 32, 0) + 64,
      done: () => this.index.set(service.id, [key.toString()]),
    };
  }

  private deleteOp(index: number, id: string, keys: readonly string[]): TxnWrite {
    return {
      index,
      compare: [],
      always: keys.map((key) => ({ request_delete_range: { key: Buffer.from(key) } })),
      unlessThere: [],
      bytes: keys.reduce((sum, key) => sum + 2 * key.length + 32, 16),
      done: () => this.index.delete(id),
    };
  }

  async list(): Promise<RegistryEntry[]> {
    this.assertOpen();
    // A lease an earlier run left is taken over first, so the keys on it match and need no write.
    if (this.lease.resumable) await this.lease.acquire();
    const stored = await this.scan();
    // Otherwise the lease is granted now, once etcd answered the read, not by the first write: the start of the
    // first container after start-up costs no grant. (Not beside the read: against an etcd that does not answer,
    // two failing calls would open the client's circuit breaker and hide why the read failed.)
    if (!this.readOnly) {
      const leaseId = await this.lease
        .acquire()
        .catch((error: unknown) =>
          this.logger.debug({ err: error }, 'etcd lease grant failed; the first write asks again'),
        );
      if (leaseId !== undefined && !this.primed) {
        this.primed = true;
        await this.primeWrites(leaseId).catch(() => undefined);
      }
    }
    const byId = new Map<string, StoredEntry[]>();
    for (const entry of stored) byId.set(entry.id, [...(byId.get(entry.id) ?? []), entry]);
    this.index.clear();
    const entries: RegistryEntry[] = [];
    for (const [id, copies] of byId) {
      this.index.set(
        id,
        copies.map((copy) => copy.key),
      );
      const first = copies[0];
      // Duplicates never match a fingerprint, so the next register rewrites the id and removes the extras.
      const fingerprint = copies.length === 1 ? first.fingerprint : `duplicate:${copies.length}`;
      // Another engine's copy among them is reported, whichever comes first: it must stop the reconciler.
      const engine = copies.find(
        (copy) => copy.engine !== undefined && copy.engine !== this.engineId,
      )?.engine;
      const recorded = engine ?? first.engine;
      entries.push({
        id,
        name: first.name,
        fingerprint,
        ...(recorded !== undefined && { engine: recorded }),
      });
    }
    return entries;
  }

  close(options?: { deregister?: boolean }): Promise<void> {
    this.closing ??= this.shutdown(options?.deregister === true);
    return this.closing;
  }

  private async shutdown(deregister: boolean) {
    try {
      await this.electing?.close();
      // Revoking deletes every key attached at once; releasing lets them expire after the TTL.
      await this.lease.close(deregister);
    } finally {
      if (this.ownsClient) this.client.close();
    }
  }

  /**
   * Every key under the layout's root that this node owns. The root is shared by every node (20,000 entries
   * of others are ~18 MB), so it is read in pages and keys only; then the values of our own keys, one range
   * per stretch of them (about one per service), at the same revision. A revision compacted meanwhile
   * (etcd keeps old ones only so long) starts the read again.
   */
  private async scan(): Promise<StoredEntry[]> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.scanOnce();
      } catch (error) {
        if (attempt >= 3 || !compacted(error)) throw error;
        this.logger.debug({ err: error }, 'etcd compacted the revision of a paged read; reading again');
      }
    }
  }

  private async scanOnce(): Promise<StoredEntry[]> {
    const root = Buffer.from(`${this.codec.root}/`);
    const page = (request: IRangeRequest) =>
      this.call('range', (options) => this.client.kv.range(request, options));
    const keys = await readRange(page, { key: root, rangeEnd: prefixEnd(root), keysOnly: true });
    const entries: StoredEntry[] = [];
    const runs = ownedRuns(
      keys.kvs.map((kv) => kv.key),
      (key) => this.codec.owns(key.toString()),
    );
    for (const run of runs) {
      const read = await readRange(page, {
        key: run.first,
        rangeEnd: keyAfter(run.last),
        revision: keys.revision,
      });
      for (const kv of read.kvs) {
        const key = kv.key.toString();
        const value = kv.value.toString();
        const parsed = this.codec.parse(key, value);
        if (parsed) entries.push({ ...parsed, key, fingerprint: fingerprintOf(key, value, kv.lease) });
      }
    }
    return entries;
  }

  /** Bounded by the request timeout, and tried again on another member when one fails (see `etcdCall`). */
  private call<T>(what: string, fn: (options: { deadline: number }) => Promise<T>): Promise<T> {
    return etcdCall(what, this.timeoutMs, fn, this.logger);
  }

  private assertOpen() {
    if (this.closing) throw new RegistryRejectedError('etcd adapter is closed', backend);
  }
}
