import { defer, Subject, Subscription, timer } from 'rxjs';
import { backoffDelay, defaultBackoff, type BackoffOptions } from './backoff.js';
import { planChanges } from './diff.js';
import { runPool } from './kit/pool.js';
import { NodeIdConflictError, registryErrorKind, type RegistryError } from './errors.js';
import { coalesceWhileBusy } from './operators.js';
import type { Logger } from './logger.js';
import type { Registry, RegistryEntry } from './registry.js';
import type { Service } from './service.js';
import { oneLine } from './text.js';

/**
 * Where one service id stands in one registry, as this reconciler knows it (for `registrar explain`):
 * - `registered`: stored exactly as wanted (written by this process, or adopted unchanged);
 * - `pending`: wanted, the write is queued or in flight;
 * - `retrying`: wanted, and the registry's passes keep failing (retryable errors): `error` is the last one,
 *   `attempts` the failed passes in a row;
 * - `rejected`: the registry refused this very definition (non-retryable, e.g. a permission): tried again
 *   with a slow backoff, on every resync, and at once when the definition changes;
 * - `stored`: not wanted here (any more), still stored: its removal is pending or being retried;
 * - `absent`: not wanted, not stored.
 */
export interface RegistrationState {
  readonly state: 'registered' | 'pending' | 'retrying' | 'rejected' | 'stored' | 'absent';
  /** The service as this process last wrote it there, or as adopted; absent when none is known. */
  readonly record?: Service;
  /** When `record` was written (ms since the epoch); absent for an adopted entry. */
  readonly writtenAt?: number;
  readonly error?: string;
  readonly attempts?: number;
}

/** A registry whose passes fail: how many in a row, since when (ms), the last error. */
export interface RegistryFailing {
  readonly passes: number;
  readonly since: number;
  readonly error: string;
  readonly stage: string;
}

/** How one registry's wanted services stand, for readiness and metrics. */
export interface RegistryStatus {
  readonly backend: string;
  readonly target: string;
  /** False while standing by for another writer (Swarm) or halted by a node id conflict. */
  readonly writing: boolean;
  readonly failing?: RegistryFailing;
  /**
   * Wanted services by state; `withheld`: desired but not served here (not passing, on a registry that
   * holds only passing services).
   */
  readonly services: Readonly<
    Record<'registered' | 'pending' | 'retrying' | 'rejected' | 'withheld', number>
  >;
}

/** A registration the registry refused: when to offer it again, and why it was refused. */
interface Refusal {
  readonly fingerprint: string;
  readonly error: string;
  readonly attempts: number;
  readonly retryAt: number;
}

/** Backoff between offers of a refused registration: a permission or ACL can be fixed without a restart. */
export const refusalBackoff: BackoffOptions = { initialMs: 2_000, maxMs: 60_000, jitter: 0.2 };

/** The last write of one id: what is stored as far as this process knows, and how the last attempt went. */
interface WriteRecord {
  readonly written?: { readonly service: Service; readonly fingerprint: string; readonly at: number };
  readonly failed?: { readonly error: string; readonly at: number };
}

const errorText = (error: unknown) =>
  oneLine((error instanceof Error ? error.message : String(error)).trim(), 400);

/**
 * The first of `entries` (as `registry.list()` gave them) that another Docker engine wrote under this node id,
 * as the error that stops the bridge; undefined when none is or the registry records no engine. Entries that
 * record no engine (older versions) are this node's as before.
 */
export function findNodeIdConflict(
  registry: Registry,
  entries: readonly RegistryEntry[],
): NodeIdConflictError | undefined {
  const own = registry.engineId;
  if (own === undefined) return undefined;
  const foreign = entries.find((entry) => entry.engine !== undefined && entry.engine !== own);
  if (foreign?.engine === undefined) return undefined;
  return new NodeIdConflictError(
    registry.target,
    registry.nodeId,
    foreign.engine,
    registry.backend,
    foreign.id,
  );
}

/** One write the reconciler makes (or, with dry-run, would make). */
export type RegistryOp =
  | { readonly type: 'register'; readonly service: Service; readonly replaces?: RegistryEntry }
  | { readonly type: 'deregister'; readonly entry: RegistryEntry };

/** Hooks for metrics and dry-run output; all optional. */
export interface ReconcilerObserver {
  /** Every completed pass, with the number of ops it planned (the drift found). */
  onPass?(registry: Registry, drift: number): void;
  onOp?(registry: Registry, op: RegistryOp, outcome: 'ok' | 'error' | 'dry-run', seconds: number): void;
  onLost?(registry: Registry): void;
  /** Reachability as seen by the last call to the registry; when unreachable, the streak of failed passes. */
  onReachable?(registry: Registry, reachable: boolean, failing?: RegistryFailing): void;
  /**
   * The registry holds entries of this node id written by another Docker engine: this reconciler stopped
   * for good before touching them and never writes again. The bridge cannot go on; the CLI exits 2.
   */
  onFatal?(registry: Registry, error: NodeIdConflictError): void;
}

export interface ReconcilerOptions {
  readonly registry: Registry;
  /**
   * Current desired services of this node, keyed by id. Read by id on every pass and iterated only on a full
   * diff, so the caller should hand out a map it keeps up to date rather than build one per call.
   */
  readonly desired: () => ReadonlyMap<string, Service>;
  /**
   * True once the first complete Docker inventory is in. Before it only entries this process wrote or saw
   * wanted may be removed; after it, every entry of this node that nothing wants, whoever wrote it (an
   * earlier run, a predecessor in Swarm mode): the registry then equals what Docker runs.
   */
  readonly inventoryComplete: () => boolean;
  /** Entries never removed even when nothing wants them (e.g. of a container that could not be inspected). */
  readonly keep?: (id: string) => boolean;
  /** Print instead of writing. */
  readonly dryRun?: boolean;
  readonly logger: Logger;
  readonly backoff?: BackoffOptions;
  /** Between offers of a refused registration; default `refusalBackoff`. */
  readonly refusalBackoff?: BackoffOptions;
  /** Writes in flight at once per registry. */
  readonly concurrency?: number;
  readonly observer?: ReconcilerObserver;
}

/** One reconciler per registry, all over the same desired set (the container and Swarm bridges both). */
export function reconcilersFor(
  registries: readonly Registry[],
  shared: Omit<ReconcilerOptions, 'registry'>,
): Reconciler[] {
  return registries.map((registry) => new Reconciler({ ...shared, registry }));
}

/**
 * Converges one registry to the desired set. Work is proportional to what changed: `changed(ids)` marks ids
 * and the next pass looks at those alone; a full diff of everything desired against everything owned runs
 * only at start, on `resync()`, after the liveness was lost, and on a bare `poke()`. A failed write marks its
 * id uncertain and is retried with backoff without re-listing the registry; an unchanged registry gets no
 * writes at all. Passes never overlap: changes arriving during one coalesce into one more.
 */
export class Reconciler {
  readonly registry: Registry;
  /** What this node owns in the registry as far as we know; undefined = must be listed first. */
  private actual: Map<string, RegistryEntry> | undefined;
  /** Ids the next pass must look at; `everything` asks for a full diff. */
  private dirty = new Set<string>();
  private everything = true;
  /** Ids whose last write failed: whether the registry holds them is unknown, so their op is issued again. */
  private readonly uncertain = new Set<string>();
  /**
   * Ids this process registered (or tried to), or saw wanted: removed when no longer wanted, even before the
   * first inventory is complete.
   */
  private readonly mine = new Set<string>();
  /** Registrations the registry refused, by id: offered again at `retryAt`, on resync, or once changed. */
  private readonly rejected = new Map<string, Refusal>();
  /** The timer that offers refused registrations again. */
  private refusalRetry: Subscription | undefined;
  /** Per id the outcome of the last write; only ids wanted or stored are kept. */
  private readonly writes = new Map<string, WriteRecord>();
  private failing: RegistryFailing | undefined;
  private failures = 0;
  private stopped = false;
  /** Another bridge writes this node id's entries (Swarm mode follower): no pass lists or writes. */
  private standingBy = false;
  /** Set once another engine's entries of this node id were seen: nothing is written any more. */
  private halted: NodeIdConflictError | undefined;
  /** The pass in flight, for `settled()` and `stop()`. */
  private current: Promise<void> | undefined;
  private readonly pokes$ = new Subject<void>();
  private readonly subscription = new Subscription();
  private retry: Subscription | undefined;
  private readonly log: Logger;

  constructor(private readonly options: ReconcilerOptions) {
    this.registry = options.registry;
    this.log = options.logger.child({ backend: this.registry.backend, target: this.registry.target });
    this.subscription.add(
      this.pokes$
        .pipe(
          coalesceWhileBusy(() =>
            defer(() => {
              this.current = this.pass();
              return this.current;
            }),
          ),
        )
        .subscribe(),
    );
  }

  /** Something changed, we do not know what: diff everything soon (coalesced with a pass in progress). */
  poke(): void {
    this.everything = true;
    this.schedule();
  }

  /** These service ids changed (appeared, changed or went away): converge them soon. */
  changed(ids: Iterable<string>): void {
    for (const id of ids) this.dirty.add(id);
    this.schedule();
  }

  /**
   * Forget what we believe is stored and read it back from the registry on the next pass; refused
   * registrations are offered again.
   */
  resync(): void {
    this.actual = undefined;
    for (const [id, refusal] of this.rejected) this.rejected.set(id, { ...refusal, retryAt: 0 });
    this.poke();
  }

  /** The adapter lost its lease/session: nothing of ours is stored any more. */
  lost(reason: string): void {
    this.log.warn({ reason }, 'registry liveness lost; registering everything again');
    this.options.observer?.onLost?.(this.registry);
    this.actual = new Map();
    this.uncertain.clear();
    for (const [id, record] of this.writes) {
      if (record.failed === undefined) this.writes.delete(id);
      else this.writes.set(id, { failed: record.failed });
    }
    this.poke();
  }

  /**
   * The adapter is in touch with the registry again (reconnected, failed over to another member): a pass
   * that failed meanwhile is retried now rather than after its backoff, which by then may be seconds.
   */
  recovered(): void {
    if (this.failures > 0 && this.retry) this.schedule();
  }

  /**
   * Another bridge is the writer: list nothing, write nothing (a write in flight finishes; the rest of its
   * pass is dropped), until `lead()`.
   */
  standBy(): void {
    this.standingBy = true;
    this.retry?.unsubscribe();
    this.retry = undefined;
  }

  /**
   * This bridge is the writer now: list the registry and diff everything. Entries the previous writer left
   * that match what is wanted are adopted as they are; those nothing wants any more are removed.
   */
  lead(): void {
    this.standingBy = false;
    this.failures = 0;
    this.failing = undefined;
    this.resync();
  }

  /** Whether this reconciler writes (false while standing by for another writer). */
  get writing(): boolean {
    return !this.standingBy && !this.halted;
  }

  /** Resolves when no pass is running or queued (retries scheduled for later do not count). */
  async settled(): Promise<void> {
    while (this.current) await this.current;
  }

  /** Wait for the pass in progress, then stop scheduling new ones. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.retry?.unsubscribe();
    this.refusalRetry?.unsubscribe();
    this.subscription.unsubscribe();
    await this.current;
  }

  /** Whether this registry's passes are failing (and are being retried); undefined when the last succeeded. */
  get failingState(): RegistryFailing | undefined {
    return this.failing;
  }

  get dryRun(): boolean {
    return this.options.dryRun ?? false;
  }

  /** How this registry's wanted services stand: O(desired services). */
  status(): RegistryStatus {
    const services = { registered: 0, pending: 0, retrying: 0, rejected: 0, withheld: 0 };
    for (const id of this.options.desired().keys()) {
      const wanted = this.wantedHere(id);
      if (wanted === undefined) services.withheld += 1;
      else {
        const { state } = this.stateOf(id, wanted);
        if (state === 'registered' || state === 'pending' || state === 'retrying' || state === 'rejected') {
          services[state] += 1;
        }
      }
    }
    return {
      backend: this.registry.backend,
      target: this.registry.target,
      writing: this.writing,
      ...(this.failing && { failing: this.failing }),
      services,
    };
  }

  /**
   * Where `id` stands in this registry. `wanted` is the service the bridge wants stored there under that id
   * (undefined: none, e.g. an unhealthy container on a registry that does not mirror health). Read-only.
   */
  stateOf(id: string, wanted: Service | undefined): RegistrationState {
    const record = this.writes.get(id);
    const written = record?.written;
    const writtenFields = written ? { record: written.service, writtenAt: written.at } : {};
    const failing = this.failing;
    // The error of this id's own write if it failed in the current streak of failures, else the pass's.
    const lastError =
      failing === undefined
        ? undefined
        : record?.failed !== undefined && record.failed.at >= failing.since
          ? record.failed.error
          : failing.error;
    const retry = failing ? { error: lastError ?? failing.error, attempts: failing.passes } : {};
    if (wanted === undefined) {
      const stored = this.uncertain.has(id) || (this.actual ? this.actual.has(id) : written !== undefined);
      return stored ? { state: 'stored', ...writtenFields, ...retry } : { state: 'absent' };
    }
    const fingerprint = this.fingerprintOf(wanted);
    const rejected = this.rejected.get(id);
    if (rejected?.fingerprint === fingerprint) {
      return { state: 'rejected', ...writtenFields, error: rejected.error };
    }
    const inSync =
      !this.uncertain.has(id) &&
      (this.actual ? this.actual.get(id)?.fingerprint === fingerprint : written?.fingerprint === fingerprint);
    if (inSync) {
      // Adopted from an earlier run: the stored bytes are those `wanted` would write.
      return written?.fingerprint === fingerprint
        ? { state: 'registered', ...writtenFields }
        : { state: 'registered', record: wanted };
    }
    if (failing) return { state: 'retrying', ...writtenFields, ...retry };
    return { state: 'pending', ...writtenFields };
  }

  private schedule() {
    if (this.stopped || this.standingBy) return;
    this.retry?.unsubscribe();
    this.retry = undefined;
    this.pokes$.next();
  }

  /**
   * Fingerprints are not cached across passes: they may depend on adapter state that changes under us (the
   * etcd lease id), and a pass fingerprints only the ids it looks at anyway.
   */
  private fingerprintOf(service: Service): string {
    return this.registry.fingerprint(service);
  }

  /** The service this registry should hold under `id`: only passing ones where health is not mirrored. */
  private wantedHere(id: string): Service | undefined {
    const service = this.options.desired().get(id);
    if (service === undefined || this.registry.mirrorsHealth || service.health === 'passing') return service;
    return undefined;
  }

  private async pass(): Promise<void> {
    try {
      await this.converge();
    } finally {
      this.current = undefined;
    }
  }

  private async converge(): Promise<void> {
    const { registry } = this;
    const passStarted = Date.now();
    if (this.standingBy) return;
    let actual = this.actual;
    try {
      if (actual === undefined) {
        const entries = await registry.list();
        const conflict = findNodeIdConflict(registry, entries);
        if (conflict) return this.halt(conflict);
        actual = new Map(entries.map((entry) => [entry.id, entry]));
        this.actual = actual;
        this.everything = true;
      }
    } catch (error) {
      if (registryErrorKind(error) === 'node-id-conflict') return this.halt(error as NodeIdConflictError);
      this.failed(error, 'list', passStarted);
      return;
    }
    // Take the work: changes made while this pass runs are marked for the next one.
    const ids = this.everything
      ? new Set([
          ...this.options.desired().keys(),
          ...actual.keys(),
          ...this.uncertain,
          // Visited so that prune() forgets what they recorded.
          ...this.writes.keys(),
          ...this.rejected.keys(),
        ])
      : new Set([...this.dirty, ...this.uncertain]);
    this.everything = false;
    this.dirty = new Set();
    const desired = this.options.desired();
    for (const id of ids) if (desired.has(id)) this.mine.add(id);
    const inventoryComplete = this.options.inventoryComplete();
    const keep = this.options.keep ?? (() => false);
    const now = Date.now();
    const fingerprints = new Map<Service, string>();
    const fingerprintOnce = (service: Service) => {
      let fingerprint = fingerprints.get(service);
      if (fingerprint === undefined) fingerprints.set(service, (fingerprint = this.fingerprintOf(service)));
      return fingerprint;
    };
    const plan = planChanges(
      ids,
      (id) => this.wantedHere(id),
      actual,
      fingerprintOnce,
      (entry) => !keep(entry.id) && (inventoryComplete || this.mine.has(entry.id)),
      this.uncertain,
    );
    const refusedForNow = (service: Service) => {
      const refusal = this.rejected.get(service.id);
      return (
        refusal !== undefined && refusal.fingerprint === fingerprintOnce(service) && now < refusal.retryAt
      );
    };
    const ops: RegistryOp[] = [
      ...plan.deregister.map((entry): RegistryOp => ({ type: 'deregister', entry })),
      ...plan.register
        .filter((service) => !refusedForNow(service))
        .map((service): RegistryOp => {
          const replaces = actual.get(service.id);
          return replaces ? { type: 'register', service, replaces } : { type: 'register', service };
        }),
    ];
    this.options.observer?.onPass?.(registry, ops.length);
    this.log.debug(
      { drift: ops.length, looked: ids.size, owned: actual.size, desired: this.options.desired().size },
      'reconcile pass',
    );
    let firstError: unknown;
    if (ops.length > 0) {
      // `apply` never rejects: each write's error is kept, and the first one fails the pass.
      const errors = await runPool(ops, this.options.concurrency ?? 16, (op) => this.apply(op));
      firstError = errors.find((error) => error !== undefined);
    }
    if (this.halted) return;
    if (this.standingBy) {
      // What this pass skipped is looked at again, from a fresh list, when this bridge leads again.
      this.actual = undefined;
      return;
    }
    this.prune(ids);
    this.scheduleRefusals();
    if (firstError === undefined) this.succeeded();
    else this.failed(firstError, 'write', passStarted);
  }

  /** Offer the earliest refused registration again when its time comes (one timer for all of them). */
  private scheduleRefusals() {
    this.refusalRetry?.unsubscribe();
    this.refusalRetry = undefined;
    if (this.rejected.size === 0 || this.stopped) return;
    let next = Infinity;
    for (const refusal of this.rejected.values()) next = Math.min(next, refusal.retryAt);
    this.refusalRetry = timer(Math.max(0, next - Date.now())).subscribe(() => {
      const due = [...this.rejected].filter(([, refusal]) => refusal.retryAt <= Date.now());
      this.changed(due.map(([id]) => id));
    });
  }

  /** Make one write; returns the error to retry the pass for, if any. */
  private async apply(op: RegistryOp): Promise<unknown> {
    const { registry } = this;
    const started = performance.now();
    const seconds = () => (performance.now() - started) / 1000;
    if (this.options.dryRun) {
      this.options.observer?.onOp?.(registry, op, 'dry-run', 0);
      this.applied(op);
      return undefined;
    }
    const id = op.type === 'register' ? op.service.id : op.entry.id;
    // A write of this pass met another engine's entry, or another bridge became the writer: the rest of the
    // pass is not written either.
    if (this.halted || this.standingBy) return undefined;
    try {
      if (op.type === 'register') await registry.register(op.service);
      else await registry.deregister(op.entry.id);
      this.applied(op);
      this.options.observer?.onOp?.(registry, op, 'ok', seconds());
      this.log.debug(
        op.type === 'register'
          ? { serviceId: id, container: op.service.container?.name, containerId: op.service.container?.id }
          : { serviceId: id },
        op.type === 'register' ? 'registered' : 'deregistered',
      );
      return undefined;
    } catch (error) {
      this.options.observer?.onOp?.(registry, op, 'error', seconds());
      const kind = registryErrorKind(error);
      if (kind === 'node-id-conflict') {
        this.halt(error as NodeIdConflictError);
        return undefined;
      }
      const record = this.writes.get(id);
      this.writes.set(id, { ...record, failed: { error: errorText(error), at: Date.now() } });
      if (kind === 'rejected' && op.type === 'register') {
        this.refused(op.service, error as RegistryError);
        return undefined;
      }
      // The write may or may not have landed: issue it again on the next pass, whatever it is by then.
      this.uncertain.add(id);
      if (op.type === 'register') this.mine.add(id);
      return error;
    }
  }

  /** Forget write outcomes and refusals of ids that are neither wanted nor stored: memory stays bounded. */
  private prune(ids: Iterable<string>) {
    const actual = this.actual;
    if (actual === undefined) return;
    const desired = this.options.desired();
    for (const id of ids) {
      if (desired.has(id) || actual.has(id) || this.uncertain.has(id)) continue;
      this.writes.delete(id);
      this.rejected.delete(id);
      this.mine.delete(id);
    }
  }

  /**
   * The registry refused a registration (a permission, an ACL, a quota): offered again with a slow backoff.
   * Logged once per streak of refusals, with the registry's own message.
   */
  private refused(service: Service, error: RegistryError) {
    const previous = this.rejected.get(service.id);
    const attempts = (previous?.attempts ?? 0) + 1;
    const delay = backoffDelay(attempts, this.options.refusalBackoff ?? refusalBackoff);
    const text = errorText(error);
    if (this.rejected.size === 0) {
      this.log.error(
        { serviceId: service.id, err: error, retryInMs: delay },
        `registration refused by the registry: ${text}; offered again with backoff and on every resync (no restart needed once fixed)`,
      );
    } else {
      this.log.debug({ serviceId: service.id, err: error, retryInMs: delay }, 'registration refused again');
    }
    this.rejected.set(service.id, {
      fingerprint: this.fingerprintOf(service),
      error: text,
      attempts,
      retryAt: Date.now() + delay,
    });
  }

  private applied(op: RegistryOp) {
    if (op.type === 'register') {
      const fingerprint = this.fingerprintOf(op.service);
      this.mine.add(op.service.id);
      this.uncertain.delete(op.service.id);
      if (this.rejected.delete(op.service.id)) {
        this.log.info({ serviceId: op.service.id }, 'registration accepted by the registry after refusals');
      }
      this.writes.set(op.service.id, { written: { service: op.service, fingerprint, at: Date.now() } });
      const engine = this.registry.engineId;
      this.actual?.set(op.service.id, {
        id: op.service.id,
        name: op.service.name,
        fingerprint,
        ...(engine !== undefined && { engine }),
      });
    } else {
      this.mine.delete(op.entry.id);
      this.uncertain.delete(op.entry.id);
      this.writes.delete(op.entry.id);
      this.actual?.delete(op.entry.id);
    }
  }

  /** Stop for good, writing nothing more: another host uses this node id. Said once. */
  private halt(error: NodeIdConflictError) {
    if (this.halted) return;
    this.halted = error;
    this.stopped = true;
    this.retry?.unsubscribe();
    this.log.error(
      { err: error, nodeId: error.nodeId, otherEngine: error.engine, entry: error.entry },
      'another Docker engine writes entries of this node id: leaving them alone and stopping',
    );
    this.options.observer?.onFatal?.(this.registry, error);
  }

  private succeeded() {
    if (this.failures > 0) this.log.info({ failedPasses: this.failures }, 'registry writes succeed again');
    this.failures = 0;
    this.failing = undefined;
    this.options.observer?.onReachable?.(this.registry, true);
  }

  /** Log an outage once, not once per retry, and try again with backoff. */
  private failed(error: unknown, stage: string, passStarted: number) {
    this.failures += 1;
    this.failing = {
      passes: this.failures,
      since: this.failing?.since ?? passStarted,
      error: errorText(error),
      stage,
    };
    const delay = backoffDelay(this.failures, this.options.backoff ?? defaultBackoff);
    const fields = { stage, err: error, retryInMs: delay };
    if (this.failures === 1) this.log.warn(fields, 'registry unavailable; retrying');
    else this.log.debug(fields, 'registry still unavailable');
    this.options.observer?.onReachable?.(this.registry, false, this.failing);
    if (this.stopped) return;
    this.retry = timer(delay).subscribe(() => this.schedule());
  }
}
