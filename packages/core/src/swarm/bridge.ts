import { filter, merge, Subject, Subscription, timer } from 'rxjs';
import type { BackoffOptions } from '../backoff.js';
import type { BridgeObserver, BridgeStatus, ExplainLookup } from '../bridge.js';
import { DesiredServices } from '../desired.js';
import type { ExplainSummary } from '../explain.js';
import { silentLogger, type Logger } from '../logger.js';
import { reconcilersFor, type Reconciler } from '../reconciler.js';
import type { ElectionOptions, Leadership, Registry } from '../registry.js';
import type { Service } from '../service.js';
import {
  deriveSwarmService,
  isTaskServed,
  swarmContext,
  swarmServiceId,
  taskServiceId,
  type SwarmContext,
  type SwarmDeriveOptions,
  type SwarmSnapshot,
} from './derive.js';
import { dockerCalls, type DockerCalls } from '../docker-calls.js';
import {
  boundedSwarmDocker,
  fetchSwarm,
  swarmHints,
  type SwarmDockerApi,
  type SwarmFetch,
  type SwarmLook,
} from './source.js';

export interface SwarmBridgeOptions extends SwarmDeriveOptions {
  /** A Swarm manager's engine. */
  readonly docker: SwarmDockerApi;
  readonly registries: readonly Registry[];
  readonly logger?: Logger;
  /** `--resync`: seconds between full reconciles against every registry; 0 = never. */
  readonly resync?: number;
  /**
   * `--cleanup`, kept for compatibility: once the cluster's first inventory is complete, this node id's
   * entries that no running task accounts for are removed, whoever wrote them, with or without it.
   */
  readonly cleanup?: boolean;
  /** How long one list of the manager may take (ms) before it is abandoned and retried. Default 10 s. */
  readonly dockerTimeoutMs?: number;
  readonly dryRun?: boolean;
  /** How often the whole cluster is listed (ms; 0: never); see `SwarmSourceOptions.pollMs`. */
  readonly pollMs?: number;
  readonly backoff?: BackoffOptions;
  readonly observer?: SwarmBridgeObserver;
  /**
   * One writer per cluster: every manager runs a Swarm bridge, and each registry elects the one that writes
   * (`Registry.elect`); the others watch and derive as well, and adopt the entries when they are elected.
   * Absent: this bridge writes unconditionally (one manager only, or a dry run).
   */
  readonly elect?: ElectionOptions;
}

export interface SwarmBridgeObserver extends BridgeObserver {
  /** This bridge became the writer for `registry` (true) or stopped being it (false). */
  onLeading?(registry: Registry, leading: boolean): void;
}

/** One Swarm service as last listed, and the sequence number of the fetch that listed it. */
interface TrackedService {
  readonly spec: unknown;
  readonly tasks: readonly unknown[];
  readonly seq: number;
  /** As derived from spec and tasks; the registries get these (unchanged ones keep their identity). */
  readonly services: readonly Service[];
  /** Signature of the warnings last logged, so a re-list does not repeat them. */
  readonly warned: string;
}

interface SettleTimer {
  readonly delay: number;
  /** When the service was first seen unsettled in this run of looks (ms since the epoch). */
  readonly since: number;
  timer?: Subscription;
  /** Asked for by an event: not cancelled when a look finds the service settled. */
  pinned: boolean;
}

/** First delay between looks at a service whose tasks are still starting or updating. */
const SETTLE_FIRST_MS = 500;
/**
 * For this long after a service turned unsettled it is listed every SETTLE_FIRST_MS, not backing off: Swarm
 * sends no task events, so a task that starts on another node is seen at the next look only, and a scale-up
 * should be visible within about half a second of its last task running. A service that stays unsettled
 * longer (an image that never pulls) backs off to the poll interval.
 */
const SETTLE_BRISK_MS = 30_000;

/**
 * Swarm mode: a manager's services, tasks and nodes → `deriveSwarmService` per service → the same
 * `DesiredServices` and `Reconciler`s as the container bridge. Level-triggered: events only say which service
 * to list again, a periodic inventory catches what no event reports (tasks on other nodes), and a service
 * whose tasks are still starting or updating is listed again, backing off, until it has settled.
 */
export class SwarmBridge {
  private readonly services = new Map<string, TrackedService>();
  /** The manager's lists, bounded. */
  private readonly calls: DockerCalls;
  private readonly docker: SwarmDockerApi;
  private readonly reconcilers: Reconciler[];
  /** Per registry, the election it holds when `elect` is given. */
  private readonly leaderships: Leadership[] = [];
  private readonly desiredServices: DesiredServices;
  private readonly log: Logger;
  private readonly subscription = new Subscription();
  private readonly looks$ = new Subject<SwarmLook>();
  /** Services with a follow-up look scheduled, with the delay used (doubles while unsettled). */
  private readonly settling = new Map<string, SettleTimer>();
  private context: SwarmContext = swarmContext([]);
  private connected = false;
  /** The last list failed: further failures are logged at debug level until one succeeds. */
  private listFailing = false;
  private firstInventoryDone = false;
  /** The sequence number of the last inventory applied; older per-service fetches are stale. */
  private inventorySeq = 0;

  constructor(private readonly options: SwarmBridgeOptions) {
    this.log = options.logger ?? silentLogger;
    this.calls = dockerCalls({
      timeoutMs: options.dockerTimeoutMs ?? 10_000,
      logger: this.log,
      ...(options.observer?.onDockerCall && { onCall: options.observer.onDockerCall.bind(options.observer) }),
    });
    this.docker = boundedSwarmDocker(options.docker, this.calls);
    if (options.elect) {
      for (const registry of options.registries.filter((r) => r.elect === undefined)) {
        this.log.warn(
          { backend: registry.backend, target: registry.target },
          'this adapter cannot elect one writer per cluster: this manager writes it unconditionally; run registrar --swarm on one manager only',
        );
      }
    }
    this.desiredServices = new DesiredServices((holder, other) =>
      this.log.warn(
        { serviceId: holder.id, task: other.container?.name, holder: holder.container?.name },
        'duplicate service id: already registered for another Swarm service; check SERVICE_ID',
      ),
    );
    this.reconcilers = reconcilersFor(options.registries, {
      desired: () => this.desiredServices.services,
      inventoryComplete: () => this.firstInventoryDone,
      dryRun: options.dryRun ?? false,
      logger: this.log,
      ...(options.backoff && { backoff: options.backoff }),
      ...(options.observer && { observer: options.observer }),
    });
  }

  start(): void {
    const hints$ = swarmHints({
      docker: this.docker,
      logger: this.log,
      ...(this.options.pollMs !== undefined && { pollMs: this.options.pollMs }),
      ...(this.options.backoff && { backoff: this.options.backoff }),
    });
    const hintedLooks$ = hints$.pipe(
      filter((hint): hint is SwarmLook => {
        // Swarm acts on a changed spec (scales, starts an update) just after the event: look once more then.
        if (hint.kind === 'service') this.lookAgainSoon(hint.id);
        if (hint.kind !== 'connection') return true;
        this.connected = hint.connected;
        this.options.observer?.onDockerConnection?.(hint.connected);
        return false;
      }),
    );
    this.subscription.add(() => this.looks$.complete());
    this.subscription.add(() => {
      for (const { timer } of this.settling.values()) timer?.unsubscribe();
    });
    this.subscription.add(
      fetchSwarm(merge(hintedLooks$, this.looks$), this.docker).subscribe((fetched) => this.onFetch(fetched)),
    );
    for (const reconciler of this.reconcilers) {
      this.subscription.add(reconciler.registry.lost$.subscribe((loss) => reconciler.lost(loss.reason)));
      this.subscription.add(
        reconciler.registry.events$.subscribe((event) => {
          if (event.type === 'recovered') reconciler.recovered();
        }),
      );
      if (this.options.elect && reconciler.registry.elect) this.follow(reconciler, this.options.elect);
      else reconciler.poke();
    }
    const resync = this.options.resync ?? 0;
    if (resync > 0) {
      this.subscription.add(timer(resync * 1000, resync * 1000).subscribe(() => this.resync()));
    }
  }

  /** Write `reconciler`'s registry only while this bridge is the one elected there. */
  private follow(reconciler: Reconciler, election: ElectionOptions) {
    const { registry } = reconciler;
    reconciler.standBy();
    const leadership = registry.elect!(election);
    this.leaderships.push(leadership);
    let leading = false;
    this.subscription.add(
      leadership.leading$.subscribe((now) => {
        if (now === leading) return;
        leading = now;
        this.log.info(
          { backend: registry.backend, target: registry.target, candidate: election.candidate },
          now
            ? 'elected the cluster writer: adopting the entries as they are'
            : 'another manager writes now; standing by',
        );
        this.options.observer?.onLeading?.(registry, now);
        if (now) reconciler.lead();
        else reconciler.standBy();
      }),
    );
  }

  /** Per registry, whether this bridge writes it now (always true without an election). */
  leading(): { readonly target: string; readonly leading: boolean }[] {
    return this.reconcilers.map((reconciler) => ({
      target: reconciler.registry.target,
      leading: reconciler.writing,
    }));
  }

  /** List the cluster and every registry again and converge; writes only the drift. */
  resync(): void {
    this.looks$.next({ kind: 'inventory' });
    for (const reconciler of this.reconcilers) reconciler.resync();
  }

  /** `containers` counts the tasks served. */
  status(): BridgeStatus {
    let tasks = 0;
    for (const tracked of this.services.values()) tasks += tracked.tasks.filter(isTaskServed).length;
    return {
      dockerConnected: this.connected,
      inventoryComplete: this.firstInventoryDone,
      containers: tasks,
      services: this.desiredServices.services.size,
      docker: this.calls.health(),
      unresolved: [],
      registries: this.reconcilers.map((reconciler) => reconciler.status()),
    };
  }

  /** `registrar explain` explains containers; Swarm mode has none of its own to explain. */
  explain(ref: string): ExplainLookup {
    void ref;
    return { kind: 'unknown' };
  }

  explainAll(): ExplainSummary[] {
    return [];
  }

  desired(): ReadonlyMap<string, Service> {
    return this.desiredServices.services;
  }

  /**
   * Stop watching the cluster, let passes in flight finish, then close every registry. With an election the
   * entries are the cluster's, not this manager's: they are never deregistered on the way out.
   */
  async stop(options: { deregister?: boolean } = {}): Promise<void> {
    const deregister = options.deregister === true && this.options.elect === undefined;
    this.subscription.unsubscribe();
    await Promise.all(this.reconcilers.map((r) => r.stop()));
    // Resign before closing: a successor takes over at once, and the entries stay for it to adopt.
    await Promise.all(
      this.leaderships.map((leadership) =>
        leadership.close().catch((error: unknown) => {
          this.log.warn({ err: error }, 'leaving the election failed; a successor waits for the TTL');
        }),
      ),
    );
    await Promise.all(
      this.options.registries.map((registry) =>
        registry.close({ deregister }).catch((error: unknown) => {
          this.log.warn({ target: registry.target, err: error }, 'closing registry failed');
        }),
      ),
    );
  }

  private onFetch(fetched: SwarmFetch) {
    if (fetched.kind !== 'error' && this.listFailing) {
      this.listFailing = false;
      this.log.info('swarm lists answer again');
    }
    switch (fetched.kind) {
      case 'error': {
        // The manager did not answer (lost quorum, restarting): keep what we know; the poll looks again.
        const fields = { err: fetched.error, look: fetched.look.kind };
        if (this.listFailing) this.log.debug(fields, 'swarm list failed; keeping the last state');
        else this.log.warn(fields, 'swarm list failed; keeping the last state');
        this.listFailing = true;
        if (fetched.look.kind === 'service') this.settleLater(fetched.look.id);
        return;
      }
      case 'nodes':
        this.setNodes(fetched.nodes);
        return;
      case 'service':
        // An inventory that began later already has newer data.
        if (fetched.seq < this.inventorySeq) return;
        this.track(fetched.id, fetched.service, fetched.tasks, fetched.seq);
        return;
      case 'inventory':
        this.applyInventory(fetched.seq, fetched.snapshot);
    }
  }

  private applyInventory(seq: number, snapshot: SwarmSnapshot) {
    this.inventorySeq = seq;
    this.setNodes(snapshot.nodes, false);
    const tasksOf = new Map<string, unknown[]>();
    for (const task of snapshot.tasks) {
      const id = taskServiceId(task);
      tasksOf.set(id, [...(tasksOf.get(id) ?? []), task]);
    }
    const listed = new Set<string>();
    for (const spec of snapshot.services) {
      const id = swarmServiceId(spec);
      if (id === '') continue;
      listed.add(id);
      // A service listed again after this inventory began is newer than what the inventory saw.
      if ((this.services.get(id)?.seq ?? 0) > seq) continue;
      this.track(id, spec, tasksOf.get(id) ?? [], seq);
    }
    for (const [id, tracked] of this.services) {
      if (!listed.has(id) && tracked.seq < seq) this.track(id, undefined, [], seq);
    }
    if (!this.firstInventoryDone) {
      this.firstInventoryDone = true;
      this.log.info(
        { services: this.services.size, entries: this.desiredServices.services.size },
        'swarm inventory complete',
      );
      for (const reconciler of this.reconcilers) reconciler.poke();
    }
  }

  /** New nodes: every service is derived again (node addresses, ready nodes). */
  private setNodes(nodes: readonly unknown[], rederive = true) {
    this.context = swarmContext(nodes);
    if (!rederive) return;
    for (const [id, tracked] of this.services) this.track(id, tracked.spec, tracked.tasks, tracked.seq);
  }

  /**
   * The one place a Swarm service's state changes: derives its entries, keeps the unchanged ones' identity,
   * and tells every reconciler which ids changed, so a pass costs O(this service).
   */
  private track(id: string, spec: unknown, tasks: readonly unknown[], seq: number) {
    const previous = this.services.get(id);
    let next: TrackedService | undefined;
    if (spec !== undefined) {
      const derivation = deriveSwarmService(spec, tasks, this.context, this.options);
      const warned = derivation.warnings.map((w) => `${w.key}:${w.message}`).join('\n');
      if (warned !== '' && warned !== previous?.warned) {
        for (const w of derivation.warnings) this.log.warn({ service: w.container, label: w.key }, w.message);
      }
      next = {
        spec,
        tasks,
        seq,
        services: keepIdentity(previous?.services ?? [], derivation.services),
        warned,
      };
      this.services.set(id, next);
    } else this.services.delete(id);
    const changed = this.desiredServices.update(id, previous?.services ?? [], next?.services ?? []);
    if (changed.size > 0) for (const reconciler of this.reconcilers) reconciler.changed(changed);
    if (next !== undefined && !settled(next)) this.settleLater(id);
    else this.stopSettling(id);
  }

  /** Look at a service again soon: its tasks are starting, stopping or being updated. */
  private settleLater(id: string) {
    const current = this.settling.get(id);
    if (current?.timer !== undefined) return;
    const since = current?.since ?? Date.now();
    const delay =
      current === undefined || Date.now() - since < SETTLE_BRISK_MS
        ? SETTLE_FIRST_MS
        : Math.min(current.delay * 2, this.maxSettleMs());
    this.schedule(id, delay, false, since);
  }

  private stopSettling(id: string) {
    const entry = this.settling.get(id);
    // A look asked for by an event still happens, settled or not.
    if (entry?.pinned === true && entry.timer !== undefined) return;
    entry?.timer?.unsubscribe();
    this.settling.delete(id);
  }

  /** One more look at a service shortly, however settled the look in flight finds it. */
  private lookAgainSoon(id: string) {
    const current = this.settling.get(id);
    if (current?.timer !== undefined) {
      current.pinned = true;
      return;
    }
    this.schedule(id, SETTLE_FIRST_MS, true, current?.since ?? Date.now());
  }

  private schedule(id: string, delay: number, pinned: boolean, since: number) {
    const entry: SettleTimer = { delay, pinned, since };
    entry.timer = timer(delay).subscribe(() => {
      entry.timer = undefined;
      entry.pinned = false;
      this.looks$.next({ kind: 'service', id });
    });
    this.settling.set(id, entry);
  }

  private maxSettleMs() {
    const poll = this.options.pollMs ?? 15_000;
    return poll > 0 ? Math.max(SETTLE_FIRST_MS, poll) : 15_000;
  }
}

/**
 * Whether a service has nothing in flight: every task Swarm wants running runs, and no rolling update is
 * under way (Swarm starts the next batch of an update without an event).
 */
function settled(tracked: TrackedService): boolean {
  const update = (tracked.spec as { UpdateStatus?: { State?: unknown } } | null)?.UpdateStatus?.State;
  if (update === 'updating' || update === 'rollback_started') return false;
  // Scaled, and Swarm has not yet started or stopped tasks to match.
  const replicas = (tracked.spec as { Spec?: { Mode?: { Replicated?: { Replicas?: unknown } } } } | null)
    ?.Spec?.Mode?.Replicated?.Replicas;
  const wanted = tracked.tasks.filter(
    (task) => (task as { DesiredState?: unknown } | null)?.DesiredState === 'running',
  );
  if (typeof replicas === 'number' && wanted.length !== replicas) return false;
  return tracked.tasks.every((task) => {
    const t = task as { DesiredState?: unknown; Status?: { State?: unknown } } | null;
    return t?.DesiredState !== 'running' || t.Status?.State === 'running';
  });
}

/** `next`, with each service equal to the previous one of its id replaced by that previous object. */
function keepIdentity(previous: readonly Service[], next: readonly Service[]): readonly Service[] {
  if (previous.length === 0) return next;
  const byId = new Map(previous.map((s) => [s.id, s]));
  let same = previous.length === next.length;
  const kept = next.map((service) => {
    const old = byId.get(service.id);
    if (old !== undefined && JSON.stringify(old) === JSON.stringify(service)) return old;
    same = false;
    return service;
  });
  return same ? previous : kept;
}

/** Start a Swarm bridge; `stop()` it to shut down. */
export function createSwarmBridge(options: SwarmBridgeOptions): SwarmBridge {
  const bridge = new SwarmBridge(options);
  bridge.start();
  return bridge;
}
