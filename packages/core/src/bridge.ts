import type { ContainerInspectInfo } from 'dockerode';
import { merge, mergeMap, Subject, Subscription, timer } from 'rxjs';
import { backoffDelay, defaultBackoff, type BackoffOptions } from './backoff.js';
import {
  containerStateOf,
  deriveServices,
  type ContainerState,
  type DeriveOptions,
  type Skip,
} from './derive.js';
import { DesiredServices } from './desired.js';
import {
  boundedDocker,
  dockerCalls,
  type DockerCall,
  type DockerCallHealth,
  type DockerCallOutcome,
  type DockerCalls,
} from './docker-calls.js';
import { explainContainer, matchContainer, type ExplainReport, type ExplainSummary } from './explain.js';
import {
  dockerHints,
  inventoryHint,
  type DockerApi,
  type DockerHint,
  type EventAction,
} from './docker-source.js';
import { silentLogger, type Logger } from './logger.js';
import { inspectContainers, type Inspection, type Look } from './inspect.js';
import {
  reconcilersFor,
  type Reconciler,
  type ReconcilerObserver,
  type RegistryStatus,
} from './reconciler.js';
import type { Registry } from './registry.js';
import { oneLine } from './text.js';
import type { LabelWarning, Service } from './service.js';
import { SIGINT, SIGTERM, signalName, signalNumber } from './signals.js';

export type DeregisterMode = 'always' | 'on-success';

export interface BridgeOptions extends DeriveOptions {
  readonly docker: DockerApi;
  readonly registries: readonly Registry[];
  readonly logger?: Logger;
  /** `--resync`: seconds between full reconciles against Docker and every registry; 0 = never. */
  readonly resync?: number;
  /**
   * `--cleanup`, kept for compatibility: once the first inventory is complete, this node's entries whose
   * container is gone are removed whoever wrote them (an earlier run included), with or without it.
   */
  readonly cleanup?: boolean;
  /** `--deregister on-success`: keep the services of a container that exited with a non-zero code. */
  readonly deregister?: DeregisterMode;
  readonly dryRun?: boolean;
  /** Docker event stream stall check interval (ms); 0 disables. */
  readonly stallCheckMs?: number;
  readonly backoff?: BackoffOptions;
  readonly observer?: BridgeObserver;
  /**
   * Withdraw a container's services as soon as Docker sends it SIGTERM, SIGINT or its own StopSignal (the
   * start of `docker stop`), instead of when its process has exited. Default true (`--no-drain`: false).
   */
  readonly drain?: boolean;
  /** How long one Docker list or inspect may take (ms) before it is abandoned and retried. Default 10 s. */
  readonly dockerTimeoutMs?: number;
}

export interface BridgeObserver extends ReconcilerObserver {
  onDockerConnection?(connected: boolean): void;
  /** Docker event received (its action from a fixed set), with its lag (now − event time) in seconds. */
  onDockerEvent?(action: EventAction, lagSeconds: number): void;
  /** A Docker list or inspect call ended. */
  onDockerCall?(call: DockerCall, outcome: DockerCallOutcome, seconds: number): void;
}

/** A running container whose inspect keeps failing: its services are unknown, its entries are kept. */
export interface UnresolvedContainer {
  readonly id: string;
  readonly error: string;
  readonly attempts: number;
}

export interface BridgeStatus {
  readonly dockerConnected: boolean;
  readonly inventoryComplete: boolean;
  readonly containers: number;
  readonly services: number;
  /** Docker's list and inspect calls: the current streak of failures. */
  readonly docker: DockerCallHealth;
  readonly unresolved: readonly UnresolvedContainer[];
  /** Per registry, how its wanted services stand. */
  readonly registries: readonly RegistryStatus[];
}

/** Failed inspects in a row after which a container no longer holds back the inventory. */
const UNRESOLVED_AFTER = 3;
/** How long an empty first container list waits to be confirmed by a second one. */
const EMPTY_INVENTORY_CONFIRM_MS = 1_000;

interface Tracked {
  readonly name: string;
  /** As derived from the last inspect; `desired()` presents them critical while the container drains. */
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

/** Docker's default for `docker stop` without `-t` and without a container StopTimeout. */
const DEFAULT_STOP_TIMEOUT_S = 10;
/** The longest delay a Node timer takes; a longer stop window is treated as having no end. */
const MAX_TIMER_MS = 2 ** 31 - 1;

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
 * Podman (4.3) announces a health check's result before it records it: an inspect right after its bare
 * `health_status` event can read the previous state, and no other event follows. The container is looked at
 * again this much later.
 */
const UNNAMED_HEALTH_RELOOK_MS = 1_000;

/** What `/debug/containers/<ref>` answers. */
export type ExplainLookup =
  | { readonly kind: 'found'; readonly report: ExplainReport }
  | { readonly kind: 'unknown' }
  | { readonly kind: 'ambiguous'; readonly matches: readonly { id: string; name: string }[] };

/**
 * The bridge: Docker hints → per-container inspect (coalesced) → derived services → one reconciler per
 * registry. State is level-triggered: events only say which container to look at.
 */
export class Bridge {
  private readonly containers = new Map<string, Tracked>();
  private readonly reconcilers: Reconciler[];
  /** Docker's list and inspect calls, bounded; the event stream bounds its own start. */
  private readonly calls: DockerCalls;
  private readonly docker: DockerApi;
  /** Running containers whose inspect keeps failing, by id. */
  private readonly unresolved = new Map<string, UnresolvedContainer>();
  /** From the latest container list: the id segments each running container's services may use. */
  private segments: ReadonlyMap<string, readonly string[]> = new Map();
  private emptyInventoryConfirmed = false;
  private readonly log: Logger;
  private readonly subscription = new Subscription();
  private readonly desiredServices: DesiredServices;
  private dockerConnected = false;
  private firstInventoryDone = false;
  /** Ids of the inventory being confirmed; the first completed one unlocks removals. */
  private inventoryPending: Set<string> | undefined;
  private readonly retryAttempts = new Map<string, number>();
  /**
   * Looks the bridge asks for itself (inspect retries, the end of a stop window), merged with those Docker's
   * hints ask for. Completed on `stop()`.
   */
  private readonly looks$ = new Subject<Look>();
  /** Timers that will ask for a look. */
  private readonly pendingLooks = new Subscription();

  constructor(private readonly options: BridgeOptions) {
    this.log = options.logger ?? silentLogger;
    this.calls = dockerCalls({
      timeoutMs: options.dockerTimeoutMs ?? 10_000,
      logger: this.log,
      ...(options.observer?.onDockerCall && { onCall: options.observer.onDockerCall.bind(options.observer) }),
    });
    this.docker = boundedDocker(options.docker, this.calls);
    this.desiredServices = new DesiredServices((holder, other) =>
      this.log.warn(
        { serviceId: holder.id, container: other.container?.name, holder: holder.container?.name },
        'duplicate service id: already registered for another container; check SERVICE_ID',
      ),
    );
    this.reconcilers = reconcilersFor(options.registries, {
      desired: () => this.desiredServices.services,
      inventoryComplete: () => this.firstInventoryDone,
      keep: (id) => this.isUnresolvedEntry(id),
      dryRun: options.dryRun ?? false,
      logger: this.log,
      ...(options.backoff && { backoff: options.backoff }),
      ...(options.observer && { observer: options.observer }),
    });
  }

  start(): void {
    const hints$ = dockerHints({
      docker: this.docker,
      logger: this.log,
      ...(this.options.backoff && { backoff: this.options.backoff }),
      ...(this.options.stallCheckMs !== undefined && { stallCheckMs: this.options.stallCheckMs }),
    });
    const hintedLooks$ = hints$.pipe(mergeMap((hint) => this.onHint(hint)));
    this.subscription.add(this.pendingLooks);
    this.subscription.add(() => this.looks$.complete());
    this.subscription.add(
      inspectContainers(merge(hintedLooks$, this.looks$), this.docker, {
        tracked: (id) => this.containers.has(id),
      }).subscribe((inspection) => this.onInspection(inspection)),
    );
    for (const reconciler of this.reconcilers) {
      this.subscription.add(reconciler.registry.lost$.subscribe((loss) => reconciler.lost(loss.reason)));
      this.subscription.add(
        reconciler.registry.events$.subscribe((event) => {
          if (event.type === 'recovered') reconciler.recovered();
        }),
      );
      // Read what this node already owns, so adoption needs no writes when nothing changed.
      reconciler.poke();
    }
    const resync = this.options.resync ?? 0;
    if (resync > 0) {
      this.subscription.add(timer(resync * 1000, resync * 1000).subscribe(() => this.resync()));
    }
  }

  /** Re-read Docker and every registry and converge; writes only the drift. */
  resync(): void {
    void this.inventory();
    for (const reconciler of this.reconcilers) reconciler.resync();
  }

  status(): BridgeStatus {
    return {
      dockerConnected: this.dockerConnected,
      inventoryComplete: this.firstInventoryDone,
      containers: this.containers.size,
      services: this.desiredServices.services.size,
      docker: this.calls.health(),
      unresolved: [...this.unresolved.values()],
      registries: this.reconcilers.map((reconciler) => reconciler.status()),
    };
  }

  /**
   * Why each port of a tracked container is (not) registered, from the last derivation and every registry's
   * state; `ref` is a full id, a name or a unique id prefix (at least 4 hex digits). Read-only.
   */
  explain(ref: string): ExplainLookup {
    const match = matchContainer(
      ref,
      [...this.containers].map(([id, tracked]) => ({ id, name: tracked.name })),
    );
    if (match.kind === 'found') return { kind: 'found', report: this.report(match.item.id) };
    return match;
  }

  /** Every tracked container with a one-line verdict. */
  explainAll(): ExplainSummary[] {
    return [...this.containers.keys()].map((id) => {
      const { container, verdict, summary } = this.report(id);
      return { id, name: container.name, verdict, summary };
    });
  }

  private report(id: string): ExplainReport {
    const tracked = this.containers.get(id);
    if (tracked === undefined) throw new Error(`container ${id} is not tracked`);
    const desired = this.desiredServices.services;
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
      options: this.options,
      ...(tracked.draining && { draining: { signal: signalName(tracked.draining.signal) } }),
      registries: this.reconcilers.map((reconciler) => ({
        backend: reconciler.registry.backend,
        target: reconciler.registry.target,
        mirrorsHealth: reconciler.registry.mirrorsHealth,
        dryRun: reconciler.dryRun,
        ...(reconciler.failingState && { failing: reconciler.failingState }),
        stateOf: (serviceId, wanted) => reconciler.stateOf(serviceId, wanted),
      })),
      holderOf: (serviceId) => {
        const holder = desired.get(serviceId);
        return holder?.container !== undefined && holder.container.id !== id
          ? holder.container.name
          : undefined;
      },
      derivedAt: tracked.derivedAt,
      ...(tracked.keptAfterExit && { keptAfterExit: true }),
    });
  }

  /** Stop watching Docker, let passes in flight finish, then close every registry. */
  async stop(options: { deregister?: boolean } = {}): Promise<void> {
    this.subscription.unsubscribe();
    await Promise.all(this.reconcilers.map((r) => r.stop()));
    await Promise.all(
      this.options.registries.map((registry) =>
        registry.close(options).catch((error: unknown) => {
          this.log.warn({ target: registry.target, err: error }, 'closing registry failed');
        }),
      ),
    );
  }

  /** Desired services of this node, all containers together. */
  desired(): ReadonlyMap<string, Service> {
    return this.desiredServices.services;
  }

  /** Act on one Docker hint; returns the containers it says to look at. */
  private onHint(hint: DockerHint): Look[] {
    switch (hint.kind) {
      case 'connection':
        this.dockerConnected = hint.connected;
        this.options.observer?.onDockerConnection?.(hint.connected);
        return [];
      case 'event':
        this.options.observer?.onDockerEvent?.(
          hint.action,
          Math.max(0, Date.now() / 1000 - hint.timeNano / 1e9),
        );
        if (hint.action === 'health_status' && hint.health === undefined) {
          this.lookLater(hint.id, UNNAMED_HEALTH_RELOOK_MS);
        }
        // `kill` only announces a signal; a `die` follows if the process exits.
        if (hint.action === 'kill') {
          if (hint.signal !== undefined) this.drainOnSignal(hint.id, hint.signal);
          return [];
        }
        if (hint.action === 'destroy') return [{ id: hint.id, exitCode: undefined, gone: true }];
        return [{ id: hint.id, exitCode: hint.action === 'die' ? (hint.exitCode ?? 0) : undefined }];
      case 'inventory':
        if (hint.segments !== undefined) this.segments = hint.segments;
        if (!this.firstInventoryDone && hint.ids.length === 0 && !this.emptyInventoryConfirmed) {
          // Before anything may be removed, a list that says nothing runs is asked once more.
          this.lookLater(undefined, EMPTY_INVENTORY_CONFIRM_MS);
          return [];
        }
        return this.startInventory(hint.ids);
    }
  }

  /** Re-list Docker's running containers (periodic resync, the confirmation of an empty first list). */
  private async inventory() {
    let hint: DockerHint;
    try {
      hint = inventoryHint(await this.docker.listContainers());
    } catch {
      // Logged by the bounded calls; the next resync or reconnect lists again.
      return;
    }
    if (hint.kind !== 'inventory') return;
    if (!this.firstInventoryDone) this.emptyInventoryConfirmed = true;
    if (hint.segments !== undefined) this.segments = hint.segments;
    for (const look of this.startInventory(hint.ids)) this.looks$.next(look);
  }

  /**
   * Inspect every listed container, and every tracked one the list left out: a container only stops being
   * served when Docker itself says it is gone or stopped, so a list that comes back empty by mistake can
   * never wipe the registry.
   */
  private startInventory(ids: readonly string[]): Look[] {
    const all = new Set([...ids, ...this.containers.keys()]);
    if (!this.firstInventoryDone) {
      this.inventoryPending = new Set(all);
      if (all.size === 0) this.completeInventory();
    }
    return [...all].map((id) => ({ id, exitCode: undefined }));
  }

  /** Look at a container again after `delayMs`; no id: list them all again. */
  private lookLater(id: string | undefined, delayMs: number, retry = false) {
    this.pendingLooks.add(
      timer(delayMs).subscribe(() => {
        if (id === undefined) void this.inventory();
        else this.looks$.next({ id, exitCode: undefined, ...(retry && { retry }) });
      }),
    );
  }

  /** Whether `entryId` may belong to a running container that could not be inspected: never removed. */
  private isUnresolvedEntry(entryId: string): boolean {
    for (const id of this.unresolved.keys()) {
      for (const segment of this.segments.get(id) ?? []) {
        if (entryId.startsWith(`${this.options.nodeId}:${segment}:`)) return true;
      }
    }
    return false;
  }

  private completeInventory() {
    this.inventoryPending = undefined;
    this.firstInventoryDone = true;
    this.log.info(
      { containers: this.containers.size, services: this.desiredServices.services.size },
      'docker inventory complete',
    );
    for (const reconciler of this.reconcilers) reconciler.poke();
  }

  private onInspection(inspection: Inspection) {
    const { id } = inspection;
    if (inspection.state === 'error') {
      // Docker did not answer: keep what we know and look again later.
      const attempt = (this.retryAttempts.get(id) ?? 0) + 1;
      this.retryAttempts.set(id, attempt);
      const delay = backoffDelay(attempt, this.options.backoff ?? defaultBackoff);
      const error = oneLine(
        inspection.error instanceof Error ? inspection.error.message : String(inspection.error),
        300,
      );
      this.log.debug({ containerId: id, err: inspection.error, retryInMs: delay }, 'inspect failed');
      if (attempt >= UNRESOLVED_AFTER) {
        // It no longer holds back the inventory; its entries stay until an inspect says what it runs.
        if (!this.unresolved.has(id)) {
          this.log.warn(
            { containerId: id, attempts: attempt, err: inspection.error },
            'container cannot be inspected: its registry entries are kept as they are, and it is looked at again',
          );
        }
        this.unresolved.set(id, { id, error, attempts: attempt });
        if (this.inventoryPending?.delete(id) && this.inventoryPending.size === 0) this.completeInventory();
      }
      this.lookLater(id, delay, true);
      return;
    }
    this.retryAttempts.delete(id);
    if (this.unresolved.delete(id)) {
      this.log.info({ containerId: id }, 'container inspected again');
      // Its entries were kept aside from every diff: look at all of them again.
      for (const reconciler of this.reconcilers) reconciler.poke();
    }
    if (inspection.state === 'gone') this.track(id, undefined);
    else if (inspection.state === 'stopped') this.stopped(id, inspection.exitCode);
    else this.update(id, inspection.info);
    if (this.inventoryPending?.delete(id) && this.inventoryPending.size === 0) this.completeInventory();
  }

  /**
   * The one place a container's tracked state changes: updates the desired services and tells every
   * reconciler which service ids changed, so a pass costs O(this container), not O(all services).
   */
  private track(id: string, next: Tracked | undefined) {
    const previous = this.containers.get(id);
    if (next === undefined) this.containers.delete(id);
    else this.containers.set(id, next);
    const changed = this.desiredServices.update(
      id,
      previous ? servedAs(previous) : [],
      next ? servedAs(next) : [],
    );
    if (changed.size === 0) return;
    for (const reconciler of this.reconcilers) reconciler.changed(changed);
  }

  /**
   * `docker stop` begins with the container's stop signal: withdraw its services now, while the process still
   * serves what it has, rather than after it exits. Other signals (SIGHUP, SIGUSR1...) change nothing. If the
   * container outlives its stop timeout it is looked at again and, still running, served again.
   */
  private drainOnSignal(id: string, signal: number) {
    const tracked = this.containers.get(id);
    if (tracked === undefined || tracked.draining) return;
    if (
      this.options.drain === false ||
      (signal !== SIGTERM && signal !== SIGINT && signal !== tracked.stopSignal)
    ) {
      this.log.debug(
        { container: tracked.name, signal: signalName(signal), drain: this.options.drain !== false },
        'container signalled; still served',
      );
      return;
    }
    const windowMs = tracked.stopTimeoutMs + 1_000;
    if (tracked.services.length > 0) {
      this.log.info(
        { container: tracked.name, signal: signalName(signal), services: tracked.services.length },
        'container stopping: withdrawing its services',
      );
    }
    this.track(id, { ...tracked, draining: { signal, until: Date.now() + windowMs } });
    // Docker waits indefinitely (StopTimeout -1): withdrawn until the container exits.
    if (Number.isFinite(windowMs)) this.lookLater(id, windowMs);
  }

  /** The container is not running. `--deregister on-success` keeps a failed container's services. */
  private stopped(id: string, exitCode: number) {
    const tracked = this.containers.get(id);
    if (this.options.deregister === 'on-success' && exitCode !== 0 && tracked !== undefined) {
      const state = { ...tracked.state, status: 'exited', running: false, paused: false, exitCode };
      this.track(id, { ...tracked, state, keptAfterExit: true });
      return;
    }
    this.track(id, undefined);
  }

  /** Apply a fresh inspect. */
  private update(id: string, info: ContainerInspectInfo) {
    const previous = this.containers.get(id);
    const state = info.State;
    if (!state?.Running) {
      this.stopped(id, state?.Dead ? 0 : (state?.ExitCode ?? 0));
      return;
    }
    const { services, warnings, skipped = [] } = deriveServices(info, this.options);
    const warned = warnings.map((w) => `${w.key}:${w.message}`).join('\n');
    if (warned !== '' && warned !== previous?.warned) {
      for (const w of warnings) this.log.warn({ container: w.container, label: w.key }, w.message);
    }
    const name = (info.Name ?? '').replace(/^\//, '');
    // Both are in Docker's ContainerConfig; @types/dockerode lists neither.
    const { StopSignal, StopTimeout } = (info.Config ?? {}) as {
      StopSignal?: unknown;
      StopTimeout?: unknown;
    };
    // Still within its stop window: keep it withdrawn. Past it and still running: it survived, serve it.
    const draining =
      previous?.draining && Date.now() < previous.draining.until ? previous.draining : undefined;
    const next: Tracked = {
      name,
      services,
      skipped,
      warnings,
      state: containerStateOf(info),
      derivedAt: Date.now(),
      warned,
      stopSignal: signalNumber(typeof StopSignal === 'string' ? StopSignal : undefined) ?? SIGTERM,
      stopTimeoutMs: stopWindowMs(StopTimeout),
      ...(draining && { draining }),
    };
    // An unchanged derivation keeps the previous service objects, so nothing downstream sees a change.
    const unchanged = previous !== undefined && sameServices(previous.services, services);
    this.track(id, unchanged ? { ...next, services: previous.services } : next);
    if (previous?.draining && !draining && services.length > 0) {
      this.log.info({ container: name }, 'container survived its stop signal: serving it again');
    }
  }
}

function sameServices(a: readonly Service[], b: readonly Service[]): boolean {
  return a.length === b.length && JSON.stringify(a) === JSON.stringify(b);
}

const drained = new WeakMap<Tracked, readonly Service[]>();

/**
 * A container's services as the registries should see them: critical, with a note, while it drains. The
 * same `Tracked` always gives the same objects, so identity says whether a service changed.
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

/** Start a bridge; `stop()` it to shut down. */
export function createBridge(options: BridgeOptions): Bridge {
  const bridge = new Bridge(options);
  bridge.start();
  return bridge;
}
