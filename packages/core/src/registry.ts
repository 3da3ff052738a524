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
  readonly logger: Logger;
  /** Where credentials come from (`process.env` in the CLI); never argv. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** `--dry-run`: the adapter must not write, not even to keep liveness. */
  readonly dryRun?: boolean;
  /** `--state-dir`: where an adapter may keep what lets a restarted bridge resume without rewriting. */
  readonly stateDir?: string;
}
