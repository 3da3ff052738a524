import type { ContainerInspectInfo } from 'dockerode';
import { backoffDelay, defaultBackoff, type BackoffOptions } from '../../backoff.js';
import {
  containerStateOf,
  deriveServices,
  type ContainerState,
  type DeriveOptions,
  type Skip,
} from '../../derive.js';
import { explainContainer, matchContainer, type ExplainReport, type ExplainSummary } from '../../explain.js';
import type { LabelWarning, Service } from '../../service.js';
import { SIGINT, SIGTERM, signalName, signalNumber } from '../../signals.js';
import {
  stepBuilder,
  type ExplainContext,
  type ExplainLookup,
  type SourceInput,
  type Step,
  type StepBuilder,
  type UnresolvedContainer,
} from '../../source.js';
import { oneLine } from '../../text.js';
import type { DockerHint } from './events.js';
import type { Inspection, Look } from './inspect.js';

export type DeregisterMode = 'always' | 'on-success';

/** What the container source is asked to look at: one container, or the list of running ones. */
export type ContainerLook = Look | { readonly kind: 'list' };
/** What the engine answered: an inspect, or a container list (as an inventory hint). */
export type ContainerFetch = Inspection | { readonly kind: 'listed'; readonly hint: DockerHint };
export type ContainerInput = SourceInput<DockerHint, ContainerLook, ContainerFetch>;

export interface TrackOptions extends DeriveOptions {
  /** `--deregister on-success`: keep the services of a container that exited with a non-zero code. */
  readonly deregister?: DeregisterMode;
  /** Withdraw a container at its stop signal (default true). */
  readonly drain?: boolean;
  readonly backoff?: BackoffOptions;
}

interface Tracked {
  readonly name: string;
  /** As derived from the last inspect; served critical while the container drains. */
  readonly services: readonly Service[];
  /** The rest of the last derivation and what Docker said, for `registrar explain` (bounded by derive). */
  readonly skipped: readonly Skip[];
  readonly warnings: readonly LabelWarning[];
  readonly state: ContainerState;
  readonly derivedAt: number;
  /** Stopped with a non-zero exit code and kept by `--deregister on-success`. */
  readonly keptAfterExit?: boolean;
  /** Signature of the last warnings logged, so a re-inspect does not repeat them. */
  readonly warned: string;
  /** The signal `docker stop` sends this container first (its StopSignal, else SIGTERM). */
  readonly stopSignal: number;
  /** How long `docker stop` waits for it before SIGKILL (its StopTimeout, else Docker's 10 s; or no end). */
  readonly stopTimeoutMs: number;
  /** Set while the container is being stopped: its services are withdrawn until it exits or outlives this. */
  readonly draining?: { readonly signal: number; readonly until: number };
}

/** The container source's state: what it knows of each container, and where the inventory stands. */
export interface ContainerSourceState {
  readonly containers: Map<string, Tracked>;
  /** Running containers whose inspect keeps failing, by id. */
  readonly unresolved: Map<string, UnresolvedContainer>;
  /** Failed inspects in a row, by id. */
  readonly attempts: Map<string, number>;
  /** From the latest container list: the id segments each running container's services may use. */
  segments: ReadonlyMap<string, readonly string[]>;
  connected: boolean;
  /** Before the first complete inventory: the containers still to look at (undefined: none listed yet). */
  pending: Set<string> | undefined;
  inventoryComplete: boolean;
  /** An empty first list was asked again (a list that says nothing runs is not believed at once). */
  emptyConfirmed: boolean;
}

export const initialContainerState = (): ContainerSourceState => ({
  containers: new Map(),
  unresolved: new Map(),
  attempts: new Map(),
  segments: new Map(),
  connected: false,
  pending: undefined,
  inventoryComplete: false,
  emptyConfirmed: false,
});

/** Docker's default for `docker stop` without `-t` and without a container StopTimeout. */
const DEFAULT_STOP_TIMEOUT_S = 10;
/** The longest delay a Node timer takes; a longer stop window is treated as having no end. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Failed inspects in a row after which a container no longer holds back the inventory. */
const UNRESOLVED_AFTER = 3;
/** How long an empty first container list waits to be confirmed by a second one. */
const EMPTY_INVENTORY_CONFIRM_MS = 1_000;
/**
 * A health event without a status (Podman sends `health_status` before it stores the result): look again after
 * this, since an inspect at once may read the old state and no later event says otherwise.
 */
const UNNAMED_HEALTH_RELOOK_MS = 1_000;

/**
 * How long `docker stop` waits before SIGKILL, from the container's `StopTimeout` (untrusted): Docker's
 * default when unset or malformed, Infinity when negative (Docker then waits indefinitely) or too long to time.
 */
export function stopWindowMs(stopTimeout: unknown): number {
  if (typeof stopTimeout !== 'number' || !Number.isFinite(stopTimeout)) return DEFAULT_STOP_TIMEOUT_S * 1000;
  if (stopTimeout < 0) return Infinity;
  const ms = stopTimeout * 1000;
  return ms > MAX_TIMER_MS ? Infinity : ms;
}

/**
 * The container source's reducer: Docker's hints and answers folded into what each container offers.
 * Level-triggered: an event only says which container to look at; what it offers follows from the inspect.
 */
export function trackContainers(
  state: ContainerSourceState,
  input: ContainerInput,
  now: number,
  options: TrackOptions,
): Step<ContainerLook> {
  const step = stepBuilder<ContainerLook>();
  const context: Context = { state, step, now, options };
  switch (input.kind) {
    case 'hint':
      onHint(context, input.hint);
      break;
    case 'fetched':
      if ('kind' in input.fetched) onListed(context, input.fetched.hint);
      else onInspection(context, input.fetched);
      break;
    case 'due':
      step.look(input.look);
  }
  return step.step();
}

interface Context {
  readonly state: ContainerSourceState;
  readonly step: StepBuilder<ContainerLook>;
  readonly now: number;
  readonly options: TrackOptions;
}

function onHint(c: Context, hint: DockerHint) {
  const { state, step } = c;
  switch (hint.kind) {
    case 'connection':
      state.connected = hint.connected;
      return;
    case 'event':
      if (hint.action === 'health_status' && hint.health === undefined) {
        step.later({ id: hint.id, exitCode: undefined }, UNNAMED_HEALTH_RELOOK_MS);
      }
      // `kill` only announces a signal; a `die` follows if the process exits.
      if (hint.action === 'kill') {
        if (hint.signal !== undefined) drainOnSignal(c, hint.id, hint.signal);
        return;
      }
      if (hint.action === 'destroy') step.look({ id: hint.id, exitCode: undefined, gone: true });
      else step.look({ id: hint.id, exitCode: hint.action === 'die' ? (hint.exitCode ?? 0) : undefined });
      return;
    case 'inventory':
      if (hint.segments !== undefined) state.segments = hint.segments;
      if (!state.inventoryComplete && hint.ids.length === 0 && !state.emptyConfirmed) {
        // Before anything may be removed, a list that says nothing runs is asked once more.
        step.later({ kind: 'list' }, EMPTY_INVENTORY_CONFIRM_MS);
        return;
      }
      startInventory(c, hint.ids);
  }
}

/** A container list asked for by the bridge itself (a resync, the confirmation of an empty first list). */
function onListed(c: Context, hint: DockerHint) {
  if (hint.kind !== 'inventory') return;
  if (!c.state.inventoryComplete) c.state.emptyConfirmed = true;
  if (hint.segments !== undefined) c.state.segments = hint.segments;
  startInventory(c, hint.ids);
}

/**
 * Inspect every listed container, and every tracked one the list left out: a container only stops being
 * served when Docker itself says it is gone or stopped, so a list that comes back empty by mistake can never
 * wipe the registry.
 */
function startInventory(c: Context, ids: readonly string[]) {
  const { state } = c;
  const all = new Set([...ids, ...state.containers.keys()]);
  if (!state.inventoryComplete) {
    state.pending = new Set(all);
    if (all.size === 0) completeInventory(c);
  }
  for (const id of all) c.step.look({ id, exitCode: undefined });
}

function completeInventory(c: Context) {
  const { state, step } = c;
  state.pending = undefined;
  state.inventoryComplete = true;
  step.flags.inventoryComplete = true;
  let services = 0;
  for (const tracked of state.containers.values()) services += servedAs(tracked).length;
  step.info({ containers: state.containers.size, services }, 'docker inventory complete');
}

/** One container accounted for; the last of the first inventory completes it. */
function settleInventory(c: Context, id: string) {
  if (c.state.pending?.delete(id) && c.state.pending.size === 0) completeInventory(c);
}

function onInspection(c: Context, inspection: Inspection) {
  const { state, step, options } = c;
  const { id } = inspection;
  if (inspection.state === 'error') {
    // Docker did not answer: keep what we know and look again later, in the retry lane.
    const attempt = (state.attempts.get(id) ?? 0) + 1;
    state.attempts.set(id, attempt);
    const delay = backoffDelay(attempt, options.backoff ?? defaultBackoff);
    const error = oneLine(
      inspection.error instanceof Error ? inspection.error.message : String(inspection.error),
      300,
    );
    step.debug({ containerId: id, err: inspection.error, retryInMs: delay }, 'inspect failed');
    if (attempt >= UNRESOLVED_AFTER) {
      // It no longer holds back the inventory; its entries stay until an inspect says what it runs.
      if (!state.unresolved.has(id)) {
        step.warn(
          { containerId: id, attempts: attempt, err: inspection.error },
          'container cannot be inspected: its registry entries are kept as they are, and it is looked at again',
        );
      }
      state.unresolved.set(id, { id, error, attempts: attempt });
      settleInventory(c, id);
    }
    step.later({ id, exitCode: undefined, retry: true }, delay);
    return;
  }
  state.attempts.delete(id);
  if (state.unresolved.delete(id)) {
    step.info({ containerId: id }, 'container inspected again');
    // Its entries were kept aside from every diff: look at all of them again.
    step.flags.rediff = true;
  }
  if (inspection.state === 'gone') track(c, id, undefined);
  else if (inspection.state === 'stopped') stopped(c, id, inspection.exitCode);
  else update(c, id, inspection.info, inspection.listed === true);
  settleInventory(c, id);
}

/** The one place a container's tracked state changes; says what it offers now. */
function track(c: Context, id: string, next: Tracked | undefined) {
  const previous = c.state.containers.get(id);
  if (next === undefined) c.state.containers.delete(id);
  else c.state.containers.set(id, next);
  if (previous !== undefined || next !== undefined) c.step.owner(id, next ? servedAs(next) : []);
}

/**
 * `docker stop` begins with the container's stop signal: withdraw its services now, while the process still
 * serves what it has, rather than after it exits. Other signals (SIGHUP, SIGUSR1...) change nothing. If the
 * container outlives its stop timeout it is looked at again and, still running, served again.
 */
function drainOnSignal(c: Context, id: string, signal: number) {
  const { state, step, options } = c;
  const tracked = state.containers.get(id);
  if (tracked === undefined || tracked.draining) return;
  if (options.drain === false || (signal !== SIGTERM && signal !== SIGINT && signal !== tracked.stopSignal)) {
    step.debug(
      { container: tracked.name, signal: signalName(signal), drain: options.drain !== false },
      'container signalled; still served',
    );
    return;
  }
  const windowMs = tracked.stopTimeoutMs + 1_000;
  if (tracked.services.length > 0) {
    step.info(
      { container: tracked.name, signal: signalName(signal), services: tracked.services.length },
      'container stopping: withdrawing its services',
    );
  }
  track(c, id, { ...tracked, draining: { signal, until: c.now + windowMs } });
  // Docker waits indefinitely (StopTimeout -1): withdrawn until the container exits.
  if (Number.isFinite(windowMs)) step.later({ id, exitCode: undefined }, windowMs);
}

/** The container is not running. `--deregister on-success` keeps a failed container's services. */
function stopped(c: Context, id: string, exitCode: number) {
  const tracked = c.state.containers.get(id);
  if (c.options.deregister === 'on-success' && exitCode !== 0 && tracked !== undefined) {
    const state = { ...tracked.state, status: 'exited', running: false, paused: false, exitCode };
    track(c, id, { ...tracked, state, keptAfterExit: true });
    return;
  }
  track(c, id, undefined);
}

/** Apply a fresh inspect, or a list entry read as one (`listed`: it says nothing of the stop settings). */
function update(c: Context, id: string, info: ContainerInspectInfo, listed: boolean) {
  const { state, step, now, options } = c;
  const previous = state.containers.get(id);
  const docker = info.State;
  if (!docker?.Running) {
    stopped(c, id, docker?.Dead ? 0 : (docker?.ExitCode ?? 0));
    return;
  }
  const { services, warnings, skipped = [] } = deriveServices(info, options);
  const warned = warnings.map((w) => `${w.key}:${w.message}`).join('\n');
  if (warned !== '' && warned !== previous?.warned) {
    for (const w of warnings) step.warn({ container: w.container, label: w.key }, w.message);
  }
  const name = (info.Name ?? '').replace(/^\//, '');
  // Both are in Docker's ContainerConfig; @types/dockerode lists neither.
  const { StopSignal, StopTimeout } = (info.Config ?? {}) as { StopSignal?: unknown; StopTimeout?: unknown };
  // Still within its stop window: keep it withdrawn. Past it and still running: it survived, serve it.
  const draining = previous?.draining && now < previous.draining.until ? previous.draining : undefined;
  const next: Tracked = {
    name,
    services,
    skipped,
    warnings,
    state: containerStateOf(info),
    derivedAt: now,
    warned,
    // A list entry keeps what an earlier inspect said; Docker's defaults until one has.
    ...(listed && previous !== undefined
      ? { stopSignal: previous.stopSignal, stopTimeoutMs: previous.stopTimeoutMs }
      : {
          stopSignal: signalNumber(typeof StopSignal === 'string' ? StopSignal : undefined) ?? SIGTERM,
          stopTimeoutMs: stopWindowMs(StopTimeout),
        }),
    ...(draining && { draining }),
  };
  // An unchanged derivation keeps the previous service objects, so nothing downstream sees a change.
  const unchanged = previous !== undefined && sameServices(previous.services, services);
  track(c, id, unchanged ? { ...next, services: previous.services } : next);
  if (previous?.draining && !draining && services.length > 0) {
    step.info({ container: name }, 'container survived its stop signal: serving it again');
  }
}

function sameServices(a: readonly Service[], b: readonly Service[]): boolean {
  return a.length === b.length && JSON.stringify(a) === JSON.stringify(b);
}

const drained = new WeakMap<Tracked, readonly Service[]>();

/**
 * A container's services as the registries should see them: critical, with a note, while it drains. The same
 * `Tracked` always gives the same objects, so identity says whether a service changed.
 */
function servedAs(tracked: Tracked): readonly Service[] {
  const { draining } = tracked;
  if (draining === undefined) return tracked.services;
  let served = drained.get(tracked);
  if (served === undefined) {
    const healthOutput = `draining: Docker sent ${signalName(draining.signal)} to stop the container`;
    served = tracked.services.map((service) => ({ ...service, health: 'critical', healthOutput }));
    drained.set(tracked, served);
  }
  return served;
}

/** Whether `entryId` may belong to a running container that could not be inspected: never removed. */
export function isUnresolvedEntry(state: ContainerSourceState, nodeId: string, entryId: string): boolean {
  for (const id of state.unresolved.keys()) {
    for (const segment of state.segments.get(id) ?? []) {
      if (entryId.startsWith(`${nodeId}:${segment}:`)) return true;
    }
  }
  return false;
}

/**
 * Why each port of a tracked container is (not) registered, from the last derivation and every registry's
 * state; `ref` is a full id, a name or a unique id prefix (at least 4 hex digits). Read-only.
 */
export function explainTracked(
  state: ContainerSourceState,
  ref: string,
  context: ExplainContext,
  options: DeriveOptions,
): ExplainLookup {
  const match = matchContainer(
    ref,
    [...state.containers].map(([id, tracked]) => ({ id, name: tracked.name })),
  );
  if (match.kind === 'found') {
    return { kind: 'found', report: report(state, match.item.id, context, options) };
  }
  return match;
}

/** Every tracked container with a one-line verdict. */
export function explainAllTracked(
  state: ContainerSourceState,
  context: ExplainContext,
  options: DeriveOptions,
): ExplainSummary[] {
  return [...state.containers.keys()].map((id) => {
    const { container, verdict, summary } = report(state, id, context, options);
    return { id, name: container.name, verdict, summary };
  });
}

function report(
  state: ContainerSourceState,
  id: string,
  context: ExplainContext,
  options: DeriveOptions,
): ExplainReport {
  const tracked = state.containers.get(id);
  if (tracked === undefined) throw new Error(`container ${id} is not tracked`);
  return explainContainer({
    source: 'bridge',
    container: { id, name: tracked.name },
    state: tracked.state,
    derivation: {
      services: [...tracked.services],
      warnings: [...tracked.warnings],
      skipped: [...tracked.skipped],
    },
    services: servedAs(tracked),
    options,
    ...(tracked.draining && { draining: { signal: signalName(tracked.draining.signal) } }),
    registries: context.registries,
    holderOf: (serviceId) => context.holderOf(serviceId, id),
    derivedAt: tracked.derivedAt,
    ...(tracked.keptAfterExit && { keptAfterExit: true }),
  });
}
