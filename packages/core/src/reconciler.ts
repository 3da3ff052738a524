import { defer, Subject, Subscription, timer } from 'rxjs';
import { backoffDelay, defaultBackoff, type BackoffOptions } from './backoff.js';
import { runPool } from './kit/pool.js';
import { NodeIdConflictError, registryErrorKind } from './errors.js';
import { coalesceWhileBusy } from './operators.js';
import type { Logger } from './logger.js';
import {
  dueRefusals,
  errorText,
  forgetStored,
  initialReconcileState,
  livenessLost,
  markUncertain,
  nextRefusalAt,
  passFailed,
  passSucceeded,
  planOps,
  prune,
  recordApplied,
  recordFailedWrite,
  recordRefusal,
  refusals,
  serviceCounts,
  stateOf,
  takeWork,
  type ReconcileState,
  type ReconcileView,
  type RegistrationState,
  type RegistryFailing,
  type RegistryOp,
  type ServiceCounts,
} from './reconcile-state.js';
import type { Registry, RegistryEntry } from './registry.js';
import type { Service } from './service.js';

export type { RegistrationState, RegistryFailing, RegistryOp } from './reconcile-state.js';

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
  readonly services: ServiceCounts;
}

/** Backoff between offers of a refused registration: a permission or ACL can be fixed without a restart. */
export const refusalBackoff: BackoffOptions = { initialMs: 2_000, maxMs: 60_000, jitter: 0.2 };

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
 * Converges one registry to the desired set: runs the passes that `reconcile-state.ts` plans, makes their
 * writes, and the timers (retries, refused registrations) its functions ask for. Work is proportional to what
 * changed: `changed(ids)` marks ids and the next pass looks at those alone; a full diff of everything desired
 * against everything owned runs only at start, on `resync()`, after the liveness was lost, and on a bare
 * `poke()`. A failed write marks its id uncertain and is retried with backoff without re-listing the
 * registry; an unchanged registry gets no writes at all. Passes never overlap: changes arriving during one
 * coalesce into one more.
 */
export class Reconciler {
  readonly registry: Registry;
  private readonly state: ReconcileState = initialReconcileState();
  /** Stopped (or halted): no pass is scheduled any more. */
  private stopped = false;
  /** The pass in flight, for `settled()` and `stop()`. */
  private current: Promise<void> | undefined;
  /** Ask for a pass; passes are run one at a time by the subscription below. */
  private readonly passes$ = new Subject<void>();
  private readonly subscription = new Subscription();
  /** The timers that ask for a pass later: after a failed one, and when a refused registration is due. */
  private retry: Subscription | undefined;
  private refusalRetry: Subscription | undefined;
  private readonly log: Logger;
  private readonly view: ReconcileView;

  constructor(private readonly options: ReconcilerOptions) {
    const { registry } = options;
    this.registry = registry;
    this.log = options.logger.child({ backend: registry.backend, target: registry.target });
    this.view = {
      get desired() {
        return options.desired();
      },
      mirrorsHealth: registry.mirrorsHealth,
      // Not cached across passes: it may depend on adapter state that changes under us (the etcd lease id).
      fingerprint: (service) => registry.fingerprint(service),
    };
    this.subscription.add(
      this.passes$
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
    this.state.everything = true;
    this.schedule();
  }

  /** These service ids changed (appeared, changed or went away): converge them soon. */
  changed(ids: Iterable<string>): void {
    for (const id of ids) this.state.dirty.add(id);
    this.schedule();
  }

  /**
   * Forget what we believe is stored and read it back from the registry on the next pass; refused
   * registrations are offered again.
   */
  resync(): void {
    forgetStored(this.state);
    this.schedule();
  }

  /** The adapter lost its lease/session: nothing of ours is stored any more. */
  lost(reason: string): void {
    this.log.warn({ reason }, 'registry liveness lost; registering everything again');
    this.options.observer?.onLost?.(this.registry);
    livenessLost(this.state);
    this.schedule();
  }

  /**
   * The adapter is in touch with the registry again (reconnected, failed over to another member): a pass
   * that failed meanwhile is retried now rather than after its backoff, which by then may be seconds.
   */
  recovered(): void {
    if (this.state.failures > 0 && this.retry) this.schedule();
  }

  /**
   * Another bridge is the writer: list nothing, write nothing (a write in flight finishes; the rest of its
   * pass is dropped), until `lead()`.
   */
  standBy(): void {
    this.state.standingBy = true;
    this.retry?.unsubscribe();
    this.retry = undefined;
  }

  /**
   * This bridge is the writer now: list the registry and diff everything. Entries the previous writer left
   * that match what is wanted are adopted as they are; those nothing wants any more are removed.
   */
  lead(): void {
    this.state.standingBy = false;
    passSucceeded(this.state);
    this.resync();
  }

  /** Whether this reconciler writes (false while standing by for another writer). */
  get writing(): boolean {
    return !this.state.standingBy && !this.state.halted;
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
    return this.state.failing;
  }

  get dryRun(): boolean {
    return this.options.dryRun ?? false;
  }

  /** How this registry's wanted services stand: O(desired services). */
  status(): RegistryStatus {
    return {
      backend: this.registry.backend,
      target: this.registry.target,
      writing: this.writing,
      ...(this.state.failing && { failing: this.state.failing }),
      services: serviceCounts(this.state, this.view),
    };
  }

  /**
   * Where `id` stands in this registry. `wanted` is the service the bridge wants stored there under that id
   * (undefined: none, e.g. an unhealthy container on a registry that does not mirror health). Read-only.
   */
  stateOf(id: string, wanted: Service | undefined): RegistrationState {
    return stateOf(this.state, this.view, id, wanted);
  }

  private schedule() {
    if (this.stopped || this.state.standingBy) return;
    this.retry?.unsubscribe();
    this.retry = undefined;
    this.passes$.next();
  }

  private async pass(): Promise<void> {
    try {
      await this.converge();
    } finally {
      this.current = undefined;
    }
  }

  private async converge(): Promise<void> {
    const { registry, state } = this;
    const passStarted = Date.now();
    if (state.standingBy) return;
    let actual = state.actual;
    try {
      if (actual === undefined) {
        const entries = await registry.list();
        const conflict = findNodeIdConflict(registry, entries);
        if (conflict) return this.halt(conflict);
        actual = new Map(entries.map((entry) => [entry.id, entry]));
        state.actual = actual;
        state.everything = true;
      }
    } catch (error) {
      if (registryErrorKind(error) === 'node-id-conflict') return this.halt(error as NodeIdConflictError);
      this.failed(error, 'list', passStarted);
      return;
    }
    const ids = takeWork(state, actual, this.view);
    const ops = planOps(state, ids, actual, this.view, {
      inventoryComplete: this.options.inventoryComplete(),
      keep: this.options.keep ?? (() => false),
      now: Date.now(),
    });
    this.options.observer?.onPass?.(registry, ops.length);
    this.log.debug(
      { drift: ops.length, looked: ids.size, owned: actual.size, desired: this.view.desired.size },
      'reconcile pass',
    );
    // Neither way rejects: each write's error is kept, and the first one fails the pass.
    const errors = await this.write(ops);
    const firstError = errors.find((error) => error !== undefined);
    if (state.halted) return;
    if (state.standingBy) {
      // What this pass skipped is looked at again, from a fresh list, when this bridge leads again.
      state.actual = undefined;
      return;
    }
    prune(state, ids, this.view.desired);
    this.scheduleRefusals();
    if (firstError === undefined) this.succeeded();
    else this.failed(firstError, 'write', passStarted);
  }

  /** Offer the earliest refused registration again when its time comes (one timer for all of them). */
  private scheduleRefusals() {
    this.refusalRetry?.unsubscribe();
    this.refusalRetry = undefined;
    const next = nextRefusalAt(this.state);
    if (next === undefined || this.stopped) return;
    this.refusalRetry = timer(Math.max(0, next - Date.now())).subscribe(() =>
      this.changed(dueRefusals(this.state, Date.now())),
    );
  }

  /**
   * Make a pass's writes; returns, per write, the error to retry the pass for, if any. Several go as the
   * registry's batches when it has them (etcd txns, ZooKeeper multis: one round trip and one fsync for many
   * writes), each write with its own outcome; otherwise, and for a lone write, one call each, `concurrency`
   * in flight.
   */
  private async write(ops: readonly RegistryOp[]): Promise<unknown[]> {
    const { registry, state } = this;
    if (this.options.dryRun) {
      for (const op of ops) {
        this.options.observer?.onOp?.(registry, op, 'dry-run', 0);
        this.applied(op);
      }
      return [];
    }
    if (ops.length < 2 || !registry.applyBatch) {
      return runPool(ops, this.options.concurrency ?? 16, async (op) => {
        // A write of this pass met another engine's entry, or another bridge became the writer: the rest of
        // the pass is not written either.
        if (state.halted || state.standingBy) return undefined;
        const started = performance.now();
        const error = await (
          op.type === 'register' ? registry.register(op.service) : registry.deregister(op.entry.id)
        ).then(
          () => undefined,
          (error: unknown) => error ?? new Error('write failed'),
        );
        return this.outcome(op, error, (performance.now() - started) / 1000);
      });
    }
    const started = performance.now();
    const writes = ops.map((op) =>
      op.type === 'register'
        ? { type: 'register' as const, service: op.service }
        : { type: 'deregister' as const, id: op.entry.id },
    );
    // The contract settles each write on its own; an adapter that rejects anyway fails them all.
    const results = await registry
      .applyBatch(writes)
      .catch((error: unknown) => writes.map(() => ({ ok: false as const, error: error as Error })));
    const seconds = (performance.now() - started) / 1000;
    return ops.map((op, index) => {
      const result = results[index];
      return this.outcome(op, result?.ok === false ? result.error : undefined, seconds);
    });
  }

  /** Book one write's outcome (`error` undefined: done); returns the error to retry the pass for, if any. */
  private outcome(op: RegistryOp, error: unknown, seconds: number): unknown {
    const { registry, state } = this;
    const id = op.type === 'register' ? op.service.id : op.entry.id;
    if (error === undefined) {
      this.applied(op);
      this.options.observer?.onOp?.(registry, op, 'ok', seconds);
      this.log.debug(
        op.type === 'register'
          ? { serviceId: id, container: op.service.container?.name, containerId: op.service.container?.id }
          : { serviceId: id },
        op.type === 'register' ? 'registered' : 'deregistered',
      );
      return undefined;
    }
    this.options.observer?.onOp?.(registry, op, 'error', seconds);
    const kind = registryErrorKind(error);
    if (kind === 'node-id-conflict') {
      this.halt(error as NodeIdConflictError);
      return undefined;
    }
    recordFailedWrite(state, id, error, Date.now());
    if (kind === 'rejected' && op.type === 'register') {
      this.refused(op.service, error);
      return undefined;
    }
    markUncertain(state, op);
    return error;
  }

  /**
   * The registry refused a registration (a permission, an ACL, a quota): offered again with a slow backoff.
   * Logged once per streak of refusals, with the registry's own message.
   */
  private refused(service: Service, error: unknown) {
    const delay = backoffDelay(
      refusals(this.state, service.id) + 1,
      this.options.refusalBackoff ?? refusalBackoff,
    );
    const first = recordRefusal(
      this.state,
      service,
      this.view.fingerprint(service),
      error,
      Date.now() + delay,
    );
    if (first) {
      this.log.error(
        { serviceId: service.id, err: error, retryInMs: delay },
        `registration refused by the registry: ${errorText(error)}; offered again with backoff and on every resync (no restart needed once fixed)`,
      );
    } else {
      this.log.debug({ serviceId: service.id, err: error, retryInMs: delay }, 'registration refused again');
    }
  }

  private applied(op: RegistryOp) {
    const fingerprint = op.type === 'register' ? this.view.fingerprint(op.service) : '';
    if (
      recordApplied(this.state, op, fingerprint, this.registry.engineId, Date.now()) &&
      op.type === 'register'
    ) {
      this.log.info({ serviceId: op.service.id }, 'registration accepted by the registry after refusals');
    }
  }

  /** Stop for good, writing nothing more: another host uses this node id. Said once. */
  private halt(error: NodeIdConflictError) {
    if (this.state.halted) return;
    this.state.halted = error;
    this.stopped = true;
    this.retry?.unsubscribe();
    this.log.error(
      { err: error, nodeId: error.nodeId, otherEngine: error.engine, entry: error.entry },
      'another Docker engine writes entries of this node id: leaving them alone and stopping',
    );
    this.options.observer?.onFatal?.(this.registry, error);
  }

  private succeeded() {
    const failures = passSucceeded(this.state);
    if (failures > 0) this.log.info({ failedPasses: failures }, 'registry writes succeed again');
    this.options.observer?.onReachable?.(this.registry, true);
  }

  /** Log an outage once, not once per retry, and try again with backoff. */
  private failed(error: unknown, stage: string, passStarted: number) {
    const failures = passFailed(this.state, error, stage, passStarted);
    const delay = backoffDelay(failures, this.options.backoff ?? defaultBackoff);
    const fields = { stage, err: error, retryInMs: delay };
    if (failures === 1) this.log.warn(fields, 'registry unavailable; retrying');
    else this.log.debug(fields, 'registry still unavailable');
    this.options.observer?.onReachable?.(this.registry, false, this.state.failing);
    if (this.stopped) return;
    this.retry = timer(delay).subscribe(() => this.schedule());
  }
}
