import type { Observable } from 'rxjs';
import type { Logger } from './logger.js';
import type { Service } from './service.js';

/** An entry this node owns in a registry, as last written. */
export interface RegistryEntry {
  readonly id: string;
  readonly name: string;
  /**
   * The stored state in the adapter's own canonical form: equal to `fingerprint(service)` exactly when writing
   * `service` again would change nothing (same bytes, same lease/session). Lets the reconciler write nothing
   * on a resync when the registry already matches.
   */
  readonly fingerprint: string;
  /**
   * The Docker engine ID the entry records as its writer, when it records one (entries of older versions and
   * layouts without room for it do not).
   */
  readonly engine?: string;
}

/** Why a registry cannot store a service as it is: the field at fault and what is wrong with it. */
export interface ServiceProblem {
  /** `name`, `id`, `address`, `port`, `tags[0]`, `meta.<key>`, `check.http`... */
  readonly field: string;
  /** One line, e.g. `"a/b" cannot be a ZooKeeper node name`. */
  readonly message: string;
}

/** Why an adapter's entries are gone and must all be registered again. */
export interface LivenessLoss {
  readonly reason: string;
}

/**
 * What an adapter reports about its liveness, for metrics and logs; the reconciler acts on `lost$`.
 * - `heartbeat-failed`: one keepalive/ping/TTL pass failed (the entries may still be alive);
 * - `liveness-lost`: every entry is gone (also emitted on `lost$`);
 * - `recovered`: heartbeats succeed again after a failure.
 * A run of `heartbeat-failed` ends with either `recovered` or `liveness-lost`.
 */
export type RegistryEvent =
  | { readonly type: 'heartbeat-failed'; readonly error: unknown }
  | { readonly type: 'liveness-lost'; readonly reason: string }
  | { readonly type: 'recovered' };

/**
 * The contract every registry adapter implements. An adapter knows nothing of Docker: it stores services,
 * keeps them alive (lease, session, TTL check) and reports when that liveness was lost.
 *
 * All methods may reject with a `RegistryError`; the caller retries. `register` is an idempotent upsert and
 * `deregister` of an unknown id succeeds.
 */
export interface Registry {
  /** `etcd`, `zookeeper` or `consul`. */
  readonly backend: string;
  /** Where it writes, for logs and metrics; never contains credentials. */
  readonly target: string;
  /** The node id whose entries this adapter reads and writes; nothing else is ever touched. */
  readonly nodeId: string;
  /**
   * The Docker engine ID recorded with every entry written, beside the node id. Entries of `nodeId` that
   * record another engine belong to another host using the same node id: the reconciler never touches them.
   * Undefined: nothing recorded, nothing checked.
   */
  readonly engineId?: string;
  /**
   * True when the registry can present unhealthy services as such (Consul's checks). When false the caller
   * registers only `passing` services and removes the others.
   */
  readonly mirrorsHealth: boolean;
  /** Emits whenever every entry was lost at once (etcd lease, ZooKeeper session, Consul agent state). */
  readonly lost$: Observable<LivenessLoss>;
  /** Liveness events for metrics (see `RegistryEvent`); an adapter without heartbeats gives `EMPTY`. */
  readonly events$: Observable<RegistryEvent>;

  fingerprint(service: Service): string;
  /**
   * Why this registry cannot store `service` (an address that is not an IP, a port outside 1–65535, a name or
   * id its layout cannot hold), or undefined when it can. Pure, no I/O. `register` rejects such a service with
   * a `RegistryRejectedError` saying the same; `registerService` refuses it up front with a `ConfigError`
   * naming the field. Optional: a registry without it is asked nothing before writing.
   */
  check?(service: Service): ServiceProblem | undefined;
  register(service: Service): Promise<void>;
  deregister(id: string): Promise<void>;
  /**
   * Every entry owned by `nodeId`, read from the registry itself, with the engine each records (those of
   * another engine included: the reconciler refuses to go on when it sees one). May reject with a
   * `NodeIdConflictError` when something else of this node id (e.g. Consul's bridge service) is another
   * engine's; `register` likewise when the entry it would overwrite is.
   */
  list(): Promise<RegistryEntry[]>;
  /**
   * Stop liveness and release resources the adapter owns. With `deregister: true` remove every entry first;
   * otherwise entries stay until their TTL runs out.
   */
  close(options?: { deregister?: boolean }): Promise<void>;
  /**
   * What holds the entries alive, as the server agreed to it (e.g. a ZooKeeper session's negotiated timeout),
   * for `registrar check`; optional.
   */
  describeLiveness?(): string;
  /**
   * Swarm mode's one writer per cluster: join the election among the bridges sharing this node id, held in
   * the registry itself. See `Leadership` for what an adapter promises. Optional: a bridge that needs it and
   * finds none refuses to start.
   */
  elect?(options: ElectionOptions): Leadership;
}

/** Who joins an election. */
export interface ElectionOptions {
  /** This bridge, for the registry's leader record and the logs of the others: e.g. the manager's host name. */
  readonly candidate: string;
}

/**
 * One election in one registry, joined by every bridge that writes the same node id (every Swarm manager).
 *
 * What an adapter promises:
 * - at most one of the candidates sees `true` at a time, as far as the registry's own recipe guarantees it
 *   (etcd lease election, ZooKeeper ephemeral-sequential nodes, Consul session lock);
 * - while following, the adapter never writes an entry; it keeps the leader's entries alive where the
 *   backend lets every candidate do so (etcd: the entries' lease is kept alive by id by every candidate);
 * - when it is elected, it holds the liveness the previous leader's entries hang on (the same etcd lease,
 *   ZooKeeper session or Consul agent checks), so `list()` reports fingerprints that the same services match
 *   and the reconciler adopts them without writing;
 * - a leader that dies (SIGKILL) is succeeded within the TTL, before its entries expire.
 */
export interface Leadership {
  /** Whether this process writes now: the current value on subscribe (false until elected), then changes. */
  readonly leading$: Observable<boolean>;
  /** Leave the election (a leader resigns, so a successor takes over at once) and stop its timers. */
  close(): Promise<void>;
}

/** What the CLI hands an adapter's URI factory besides the URI itself. */
export interface RegistryUriContext {
  readonly nodeId: string;
  /** The Docker engine's ID (`docker info` → `ID`), recorded with every entry; see `Registry.engineId`. */
  readonly engineId?: string;
  /** Liveness TTL in seconds (`--ttl`). */
  readonly ttl: number;
  /** Heartbeat interval in seconds (`--ttl-refresh`); adapters default to ttl/3. */
  readonly ttlRefresh?: number;
  /** Default: the console logger (one line per event on standard error). */
  readonly logger?: Logger;
  /** Where credentials come from (`process.env` in the CLI); never argv. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** `--dry-run`: the adapter must not write, not even to keep liveness. */
  readonly dryRun?: boolean;
  /** `--state-dir`: where an adapter may keep what lets a restarted bridge resume without rewriting. */
  readonly stateDir?: string;
}
