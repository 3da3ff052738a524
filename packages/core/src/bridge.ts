import {
  asapScheduler,
  filter,
  map,
  merge,
  mergeMap,
  NEVER,
  observeOn,
  Subject,
  Subscription,
  takeUntil,
  timer,
} from 'rxjs';
import type { BackoffOptions } from './backoff.js';
import { desiredSet, updateDesired } from './desired.js';
import type { DockerCall, DockerCallHealth, DockerCallOutcome } from './docker-calls.js';
import type { EventAction } from './engine-events.js';
import type { ExplainRegistry, ExplainSummary } from './explain.js';
import { silentLogger, type Logger } from './logger.js';
import {
  reconcilersFor,
  type Reconciler,
  type ReconcilerObserver,
  type RegistryStatus,
} from './reconciler.js';
import type { ElectionOptions, Leadership, Registry } from './registry.js';
import type { Service } from './service.js';
import type {
  ExplainContext,
  ExplainLookup,
  Source,
  SourceInput,
  Step,
  UnresolvedContainer,
} from './source.js';

export type { ExplainLookup, UnresolvedContainer } from './source.js';

/** Hooks for metrics and dry-run output; all optional. */
export interface BridgeObserver extends ReconcilerObserver {
  onDockerConnection?(connected: boolean): void;
  /** Docker event received (its action from a fixed set), with its lag (now − event time) in seconds. */
  onDockerEvent?(action: EventAction, lagSeconds: number): void;
  /** A Docker list or inspect call ended. */
  onDockerCall?(call: DockerCall, outcome: DockerCallOutcome, seconds: number): void;
  /** This bridge became the writer for `registry` (true) or stopped being it (false). */
  onLeading?(registry: Registry, leading: boolean): void;
}

export interface BridgeStatus {
  readonly dockerConnected: boolean;
  readonly inventoryComplete: boolean;
  /** Containers (Swarm mode: tasks) served. */
  readonly containers: number;
  readonly services: number;
  /** Docker's list and inspect calls: the current streak of failures. */
  readonly docker: DockerCallHealth;
  readonly unresolved: readonly UnresolvedContainer[];
  /** Per registry, how its wanted services stand. */
  readonly registries: readonly RegistryStatus[];
}

/** What the shared tail needs besides a source: the same for every source. */
export interface TailOptions {
  readonly registries: readonly Registry[];
  readonly logger?: Logger;
  /** `--resync`: seconds between full reconciles against the engine and every registry; 0 = never. */
  readonly resync?: number;
  /**
   * `--cleanup`, kept for compatibility: once the first inventory is complete, this node's entries that
   * nothing accounts for are removed whoever wrote them, with or without it.
   */
  readonly cleanup?: boolean;
  readonly dryRun?: boolean;
  readonly backoff?: BackoffOptions;
  readonly observer?: BridgeObserver;
  /**
   * One writer per cluster (Swarm mode): every bridge sharing the node id joins each registry's election
   * (`Registry.elect`) and writes only while elected; absent, this bridge writes unconditionally.
   */
  readonly elect?: ElectionOptions;
  /** What the source's owners are, for the duplicate id warning: `container` or `Swarm service`. */
  readonly ownerNoun?: string;
}

/** A running bridge: one source, its desired set, one reconciler per registry. */
export interface Bridge {
  /** O(registries × services): for a probe or a scrape, not for every write. */
  status(): BridgeStatus;
  /** Whether the first complete inventory is in (what `status().inventoryComplete` says), in O(1). */
  inventoryComplete(): boolean;
  /** Re-read the engine and every registry and converge; writes only the drift. */
  resync(): void;
  /** Why each port of a tracked container is (not) registered (`registrar explain`). Read-only. */
  explain(ref: string): ExplainLookup;
  /** Every tracked container with a one-line verdict. */
  explainAll(): ExplainSummary[];
  /** Desired services of this node, all owners together. */
  desired(): ReadonlyMap<string, Service>;
  /** Per registry, whether this bridge writes it now (always true without an election). */
  leading(): { readonly target: string; readonly leading: boolean }[];
  /**
   * Stop watching the engine, let passes in flight finish, then close every registry; with `deregister`
   * remove this node's entries first (never in an election: the entries are the cluster's).
   */
  stop(options?: { deregister?: boolean }): Promise<void>;
}

/**
 * The shared tail, and the one runner: the source's hints and fetched answers are folded into its state by
 * its reducer, one input at a time, and each step's effects made here — owners into the desired set, changed
 * ids to every reconciler, looks to the fetch stage, later looks as timers that feed back as `due` inputs, log
 * lines to the logger. This function owns the only feedback bus (looks, timers) of the pipeline.
 */
export function startBridge<State, Hint, Look, Fetched>(
  source: Source<State, Hint, Look, Fetched>,
  options: TailOptions,
): Bridge {
  const log = options.logger ?? silentLogger;
  const state = source.initial();
  const desired = desiredSet();
  let inventoryComplete = false;
  const reconcilers = reconcilersFor(options.registries, {
    desired: () => desired.services,
    inventoryComplete: () => inventoryComplete,
    ...(source.keep && { keep: (id: string) => source.keep!(state, id) }),
    dryRun: options.dryRun ?? false,
    logger: log,
    ...(options.backoff && { backoff: options.backoff }),
    ...(options.observer && { observer: options.observer }),
  });
  const leaderships: Leadership[] = [];
  const subscription = new Subscription();
  const looks$ = new Subject<Look>();
  const later$ = new Subject<{ readonly look: Look; readonly delayMs: number; readonly key?: string }>();
  const cancel$ = new Subject<string>();
  const noun = options.ownerNoun ?? 'container';

  const onDuplicate = (holder: Service, other: Service) =>
    log.warn(
      {
        serviceId: holder.id,
        [noun === 'container' ? 'container' : 'task']: other.container?.name,
        holder: holder.container?.name,
      },
      `duplicate service id: already registered for another ${noun}; check SERVICE_ID`,
    );

  const apply = (step: Step<Look>) => {
    for (const line of step.logs ?? []) log[line.level](line.fields, line.msg);
    if (step.owners !== undefined) {
      const changed = new Set<string>();
      for (const [owner, services] of step.owners) {
        for (const id of updateDesired(desired, owner, services, onDuplicate)) changed.add(id);
      }
      if (changed.size > 0) for (const reconciler of reconcilers) reconciler.changed(changed);
    }
    if (step.inventoryComplete) inventoryComplete = true;
    if (step.inventoryComplete || step.rediff) for (const reconciler of reconcilers) reconciler.poke();
    for (const key of step.cancel ?? []) cancel$.next(key);
    for (const later of step.later ?? []) later$.next(later);
    for (const look of step.looks ?? []) looks$.next(look);
  };
  const reduce = (input: SourceInput<Hint, Look, Fetched>) => apply(source.reduce(state, input, Date.now()));

  // A later look with a key replaces the one pending under that key; `cancel` drops it.
  const due$ = later$.pipe(
    mergeMap(({ look, delayMs, key }) =>
      timer(delayMs).pipe(
        takeUntil(
          key === undefined
            ? NEVER
            : merge(cancel$, later$.pipe(map((next) => next.key))).pipe(filter((k) => k === key)),
        ),
        map((): SourceInput<Hint, Look, Fetched> => ({
          kind: 'due',
          look,
          ...(key !== undefined && { key }),
        })),
      ),
    ),
  );
  subscription.add(() => {
    looks$.complete();
    later$.complete();
  });
  subscription.add(due$.subscribe(reduce));
  // Looks reach the fetch stage on the next microtask: a step's effects never re-enter the reducer.
  subscription.add(
    source
      .fetch(looks$.pipe(observeOn(asapScheduler)), () => state)
      .subscribe((fetched) => reduce({ kind: 'fetched', fetched })),
  );
  subscription.add(source.hints().subscribe((hint) => reduce({ kind: 'hint', hint })));

  for (const reconciler of reconcilers) {
    subscription.add(reconciler.registry.lost$.subscribe((loss) => reconciler.lost(loss.reason)));
    subscription.add(
      reconciler.registry.events$.subscribe((event) => {
        if (event.type === 'recovered') reconciler.recovered();
      }),
    );
    if (options.elect && reconciler.registry.elect) follow(reconciler, options.elect);
    // Read what this node already owns, so adoption needs no writes when nothing changed.
    else reconciler.poke();
  }
  if (options.elect) {
    for (const registry of options.registries.filter((r) => r.elect === undefined)) {
      log.warn(
        { backend: registry.backend, target: registry.target },
        'this adapter cannot elect one writer per cluster: this manager writes it unconditionally; run registrar --swarm on one manager only',
      );
    }
  }

  /** Write `reconciler`'s registry only while this bridge is the one elected there. */
  function follow(reconciler: Reconciler, election: ElectionOptions) {
    const { registry } = reconciler;
    reconciler.standBy();
    const leadership = registry.elect!(election);
    leaderships.push(leadership);
    let leading = false;
    subscription.add(
      leadership.leading$.subscribe((now) => {
        if (now === leading) return;
        leading = now;
        log.info(
          { backend: registry.backend, target: registry.target, candidate: election.candidate },
          now
            ? 'elected the cluster writer: adopting the entries as they are'
            : 'another manager writes now; standing by',
        );
        options.observer?.onLeading?.(registry, now);
        if (now) reconciler.lead();
        else reconciler.standBy();
      }),
    );
  }

  const resync = () => {
    looks$.next(source.resyncLook);
    for (const reconciler of reconcilers) reconciler.resync();
  };
  const every = (options.resync ?? 0) * 1000;
  if (every > 0) subscription.add(timer(every, every).subscribe(resync));

  const explainContext = (): ExplainContext => ({
    registries: reconcilers.map((reconciler): ExplainRegistry => ({
      backend: reconciler.registry.backend,
      target: reconciler.registry.target,
      mirrorsHealth: reconciler.registry.mirrorsHealth,
      dryRun: reconciler.dryRun,
      ...(reconciler.failingState && { failing: reconciler.failingState }),
      stateOf: (serviceId, wanted) => reconciler.stateOf(serviceId, wanted),
    })),
    holderOf: (serviceId, containerId) => {
      const holder = desired.services.get(serviceId);
      return holder?.container !== undefined && holder.container.id !== containerId
        ? holder.container.name
        : undefined;
    },
  });

  return {
    status: () => {
      const own = source.status(state);
      return {
        dockerConnected: own.connected,
        inventoryComplete: own.inventoryComplete,
        containers: own.containers,
        services: desired.services.size,
        docker: own.docker,
        unresolved: own.unresolved,
        registries: reconcilers.map((reconciler) => reconciler.status()),
      };
    },
    inventoryComplete: () => inventoryComplete,
    resync,
    explain: (ref) => source.explain?.(state, ref, explainContext()) ?? { kind: 'unknown' },
    explainAll: () => source.explainAll?.(state, explainContext()) ?? [],
    desired: () => desired.services,
    leading: () =>
      reconcilers.map((reconciler) => ({ target: reconciler.registry.target, leading: reconciler.writing })),
    async stop(stopOptions = {}) {
      const deregister = stopOptions.deregister === true && options.elect === undefined;
      subscription.unsubscribe();
      await Promise.all(reconcilers.map((reconciler) => reconciler.stop()));
      // Resign before closing: a successor takes over at once, and the entries stay for it to adopt.
      await Promise.all(
        leaderships.map((leadership) =>
          leadership.close().catch((error: unknown) => {
            log.warn({ err: error }, 'leaving the election failed; a successor waits for the TTL');
          }),
        ),
      );
      await Promise.all(
        options.registries.map((registry) =>
          registry.close({ deregister }).catch((error: unknown) => {
            log.warn({ target: registry.target, err: error }, 'closing registry failed');
          }),
        ),
      );
    },
  };
}
