import { planChanges } from './diff.js';
import type { NodeIdConflictError } from './errors.js';
import type { RegistryEntry } from './registry.js';
import type { Service } from './service.js';
import { oneLine } from './text.js';

/**
 * What a reconciler knows of its registry, and the functions that fold what happens into it: which ids a pass
 * must look at, what it plans, what each write did, how the passes fail. No timers, no I/O, no logging: the
 * `Reconciler` (reconciler.ts) runs the passes and makes the effects these functions decide. Like the sources'
 * reducers, they update the state they are given in place: one reconciler holds it, and a registry of 10,000
 * entries must not be copied per change.
 */

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

/** Wanted services by state, for readiness and metrics. */
export type ServiceCounts = Readonly<
  Record<'registered' | 'pending' | 'retrying' | 'rejected' | 'withheld', number>
>;

/** One write the reconciler makes (or, with dry-run, would make). */
export type RegistryOp =
  | { readonly type: 'register'; readonly service: Service; readonly replaces?: RegistryEntry }
  | { readonly type: 'deregister'; readonly entry: RegistryEntry };

/** A registration the registry refused: when to offer it again, and why it was refused. */
interface Refusal {
  readonly fingerprint: string;
  readonly error: string;
  readonly attempts: number;
  readonly retryAt: number;
}

/** The last write of one id: what is stored as far as this process knows, and how the last attempt went. */
interface WriteRecord {
  readonly written?: { readonly service: Service; readonly fingerprint: string; readonly at: number };
  readonly failed?: { readonly error: string; readonly at: number };
}

export interface ReconcileState {
  /** What this node owns in the registry as far as we know; undefined = must be listed first. */
  actual: Map<string, RegistryEntry> | undefined;
  /** Ids the next pass must look at; `everything` asks for a full diff. */
  dirty: Set<string>;
  everything: boolean;
  /** Ids whose last write failed: whether the registry holds them is unknown, so their op is issued again. */
  readonly uncertain: Set<string>;
  /**
   * Ids this process registered (or tried to), or saw wanted: removed when no longer wanted, even before the
   * first inventory is complete.
   */
  readonly mine: Set<string>;
  /** Registrations the registry refused, by id: offered again at `retryAt`, on resync, or once changed. */
  readonly rejected: Map<string, Refusal>;
  /** Per id the outcome of the last write; only ids wanted or stored are kept. */
  readonly writes: Map<string, WriteRecord>;
  failing: RegistryFailing | undefined;
  failures: number;
  /** Another bridge writes this node id's entries (Swarm mode follower): no pass lists or writes. */
  standingBy: boolean;
  /** Set once another engine's entries of this node id were seen: nothing is written any more. */
  halted: NodeIdConflictError | undefined;
}

export const initialReconcileState = (): ReconcileState => ({
  actual: undefined,
  dirty: new Set(),
  everything: true,
  uncertain: new Set(),
  mine: new Set(),
  rejected: new Map(),
  writes: new Map(),
  failing: undefined,
  failures: 0,
  standingBy: false,
  halted: undefined,
});

/** What the functions read of the registry and the bridge (never written). */
export interface ReconcileView {
  readonly desired: ReadonlyMap<string, Service>;
  /** Whether the registry presents unhealthy services as such (else it holds passing ones only). */
  readonly mirrorsHealth: boolean;
  readonly fingerprint: (service: Service) => string;
}

export const errorText = (error: unknown) =>
  oneLine((error instanceof Error ? error.message : String(error)).trim(), 400);

/** The service this registry should hold under `id`: only passing ones where health is not mirrored. */
export function wantedHere(view: ReconcileView, id: string): Service | undefined {
  const service = view.desired.get(id);
  if (service === undefined || view.mirrorsHealth || service.health === 'passing') return service;
  return undefined;
}

/** Read what is stored again on the next pass; refused registrations are offered again. */
export function forgetStored(state: ReconcileState): void {
  state.actual = undefined;
  for (const [id, refusal] of state.rejected) state.rejected.set(id, { ...refusal, retryAt: 0 });
  state.everything = true;
}

/** The liveness was lost: nothing of ours is stored any more; the outcomes of failed writes are kept. */
export function livenessLost(state: ReconcileState): void {
  state.actual = new Map();
  state.uncertain.clear();
  for (const [id, record] of state.writes) {
    if (record.failed === undefined) state.writes.delete(id);
    else state.writes.set(id, { failed: record.failed });
  }
  state.everything = true;
}

/** The ids this pass looks at; changes marked from now on are the next pass's. */
export function takeWork(
  state: ReconcileState,
  actual: ReadonlyMap<string, RegistryEntry>,
  view: ReconcileView,
) {
  const ids = state.everything
    ? new Set([
        ...view.desired.keys(),
        ...actual.keys(),
        ...state.uncertain,
        // Visited so that prune() forgets what they recorded.
        ...state.writes.keys(),
        ...state.rejected.keys(),
      ])
    : new Set([...state.dirty, ...state.uncertain]);
  state.everything = false;
  state.dirty = new Set();
  for (const id of ids) if (view.desired.has(id)) state.mine.add(id);
  return ids;
}

/**
 * The writes that bring `ids` where they should be. Entries nothing wants are removed when this process wrote
 * or saw them wanted, or, once the inventory is complete, whoever wrote them; never those `keep` names. A
 * refused registration is planned again only once its time has come (or its definition changed).
 */
export function planOps(
  state: ReconcileState,
  ids: ReadonlySet<string>,
  actual: ReadonlyMap<string, RegistryEntry>,
  view: ReconcileView,
  context: {
    readonly inventoryComplete: boolean;
    readonly keep: (id: string) => boolean;
    readonly now: number;
  },
): RegistryOp[] {
  const fingerprints = new Map<Service, string>();
  const fingerprintOnce = (service: Service) => {
    let fingerprint = fingerprints.get(service);
    if (fingerprint === undefined) fingerprints.set(service, (fingerprint = view.fingerprint(service)));
    return fingerprint;
  };
  const plan = planChanges(
    ids,
    (id) => wantedHere(view, id),
    actual,
    fingerprintOnce,
    (entry) => !context.keep(entry.id) && (context.inventoryComplete || state.mine.has(entry.id)),
    state.uncertain,
  );
  const refusedForNow = (service: Service) => {
    const refusal = state.rejected.get(service.id);
    return (
      refusal !== undefined &&
      refusal.fingerprint === fingerprintOnce(service) &&
      context.now < refusal.retryAt
    );
  };
  return [
    ...plan.deregister.map((entry): RegistryOp => ({ type: 'deregister', entry })),
    ...plan.register
      .filter((service) => !refusedForNow(service))
      .map((service): RegistryOp => {
        const replaces = actual.get(service.id);
        return replaces ? { type: 'register', service, replaces } : { type: 'register', service };
      }),
  ];
}

/** A write landed. Returns whether it was a registration the registry had refused before. */
export function recordApplied(
  state: ReconcileState,
  op: RegistryOp,
  fingerprint: string,
  engine: string | undefined,
  now: number,
): boolean {
  if (op.type === 'deregister') {
    state.mine.delete(op.entry.id);
    state.uncertain.delete(op.entry.id);
    state.writes.delete(op.entry.id);
    state.actual?.delete(op.entry.id);
    return false;
  }
  const { service } = op;
  state.mine.add(service.id);
  state.uncertain.delete(service.id);
  const wasRefused = state.rejected.delete(service.id);
  state.writes.set(service.id, { written: { service, fingerprint, at: now } });
  state.actual?.set(service.id, {
    id: service.id,
    name: service.name,
    fingerprint,
    ...(engine !== undefined && { engine }),
  });
  return wasRefused;
}

/** A write failed; its outcome is recorded. */
export function recordFailedWrite(state: ReconcileState, id: string, error: unknown, now: number): void {
  const record = state.writes.get(id);
  state.writes.set(id, { ...record, failed: { error: errorText(error), at: now } });
}

/** The write may or may not have landed: issue it again on the next pass, whatever it is by then. */
export function markUncertain(state: ReconcileState, op: RegistryOp): void {
  const id = op.type === 'register' ? op.service.id : op.entry.id;
  state.uncertain.add(id);
  if (op.type === 'register') state.mine.add(id);
}

/**
 * The registry refused a registration: offer it again after `delayMs`. Returns whether this refusal starts a
 * streak (none was pending), which is when it is worth a log line.
 */
export function recordRefusal(
  state: ReconcileState,
  service: Service,
  fingerprint: string,
  error: unknown,
  retryAt: number,
): boolean {
  const first = state.rejected.size === 0;
  const previous = state.rejected.get(service.id);
  state.rejected.set(service.id, {
    fingerprint,
    error: errorText(error),
    attempts: (previous?.attempts ?? 0) + 1,
    retryAt,
  });
  return first;
}

/** How many times in a row `id`'s registration was refused (0: never). */
export const refusals = (state: ReconcileState, id: string) => state.rejected.get(id)?.attempts ?? 0;

/** When the earliest refused registration is due again; undefined when none is refused. */
export function nextRefusalAt(state: ReconcileState): number | undefined {
  let next: number | undefined;
  for (const refusal of state.rejected.values()) next = Math.min(next ?? Infinity, refusal.retryAt);
  return next;
}

/** The refused registrations whose time has come. */
export const dueRefusals = (state: ReconcileState, now: number) =>
  [...state.rejected].filter(([, refusal]) => refusal.retryAt <= now).map(([id]) => id);

/** Forget write outcomes and refusals of ids neither wanted nor stored: memory stays bounded. */
export function prune(
  state: ReconcileState,
  ids: Iterable<string>,
  desired: ReadonlyMap<string, Service>,
): void {
  const actual = state.actual;
  if (actual === undefined) return;
  for (const id of ids) {
    if (desired.has(id) || actual.has(id) || state.uncertain.has(id)) continue;
    state.writes.delete(id);
    state.rejected.delete(id);
    state.mine.delete(id);
  }
}

/** A pass succeeded; returns how many had failed in a row before it. */
export function passSucceeded(state: ReconcileState): number {
  const failures = state.failures;
  state.failures = 0;
  state.failing = undefined;
  return failures;
}

/** A pass failed at `stage`; returns the failures in a row, this one included. */
export function passFailed(
  state: ReconcileState,
  error: unknown,
  stage: string,
  passStarted: number,
): number {
  state.failures += 1;
  state.failing = {
    passes: state.failures,
    since: state.failing?.since ?? passStarted,
    error: errorText(error),
    stage,
  };
  return state.failures;
}

/**
 * Where `id` stands in this registry. `wanted` is the service the bridge wants stored there under that id
 * (undefined: none, e.g. an unhealthy container on a registry that does not mirror health).
 */
export function stateOf(
  state: ReconcileState,
  view: ReconcileView,
  id: string,
  wanted: Service | undefined,
): RegistrationState {
  const record = state.writes.get(id);
  const written = record?.written;
  const writtenFields = written ? { record: written.service, writtenAt: written.at } : {};
  const failing = state.failing;
  // The error of this id's own write if it failed in the current streak of failures, else the pass's.
  const lastError =
    failing === undefined
      ? undefined
      : record?.failed !== undefined && record.failed.at >= failing.since
        ? record.failed.error
        : failing.error;
  const retry = failing ? { error: lastError ?? failing.error, attempts: failing.passes } : {};
  if (wanted === undefined) {
    const stored = state.uncertain.has(id) || (state.actual ? state.actual.has(id) : written !== undefined);
    return stored ? { state: 'stored', ...writtenFields, ...retry } : { state: 'absent' };
  }
  const fingerprint = view.fingerprint(wanted);
  const rejected = state.rejected.get(id);
  if (rejected?.fingerprint === fingerprint) {
    return { state: 'rejected', ...writtenFields, error: rejected.error };
  }
  const inSync =
    !state.uncertain.has(id) &&
    (state.actual ? state.actual.get(id)?.fingerprint === fingerprint : written?.fingerprint === fingerprint);
  if (inSync) {
    // Adopted from an earlier run: the stored bytes are those `wanted` would write.
    return written?.fingerprint === fingerprint
      ? { state: 'registered', ...writtenFields }
      : { state: 'registered', record: wanted };
  }
  if (failing) return { state: 'retrying', ...writtenFields, ...retry };
  return { state: 'pending', ...writtenFields };
}

/** How the wanted services stand: O(desired services). */
export function serviceCounts(state: ReconcileState, view: ReconcileView): ServiceCounts {
  const counts = { registered: 0, pending: 0, retrying: 0, rejected: 0, withheld: 0 };
  for (const id of view.desired.keys()) {
    const wanted = wantedHere(view, id);
    if (wanted === undefined) counts.withheld += 1;
    else {
      const { state: at } = stateOf(state, view, id, wanted);
      if (at === 'registered' || at === 'pending' || at === 'retrying' || at === 'rejected') counts[at] += 1;
    }
  }
  return counts;
}
