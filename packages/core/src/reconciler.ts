import { backoffDelay, defaultBackoff, type BackoffOptions } from './backoff.js';
import { planReconcile } from './diff.js';
import { RegistryError } from './errors.js';
import type { Logger } from './logger.js';
import type { Registry, RegistryEntry } from './registry.js';
import type { Service } from './service.js';

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
  /** Reachability as seen by the last call to the registry. */
  onReachable?(registry: Registry, reachable: boolean): void;
}

export interface ReconcilerOptions {
  readonly registry: Registry;
  /** Current desired services of this node, keyed by id. */
  readonly desired: () => ReadonlyMap<string, Service>;
  /** True once the first complete Docker inventory is in: only then may entries we did not write be removed. */
  readonly inventoryComplete: () => boolean;
  /** `--cleanup`: remove this node's entries whose container is gone, even ones an earlier run wrote. */
  readonly cleanup: boolean;
  /** Print instead of writing. */
  readonly dryRun?: boolean;
  readonly logger: Logger;
  readonly backoff?: BackoffOptions;
  /** Writes in flight at once per registry. */
  readonly concurrency?: number;
  readonly observer?: ReconcilerObserver;
}

/**
 * Converges one registry to the desired set, level-triggered: `poke()` after any change, and every pass diffs
 * the whole desired set against what this node owns there, so a failed write is healed by the next pass
 * (retried with backoff) and an unchanged registry gets no writes at all.
 */
export class Reconciler {
  readonly registry: Registry;
  /** What this node owns in the registry as far as we know; undefined = must be listed first. */
  private actual: Map<string, RegistryEntry> | undefined;
  /** Ids this process registered: those we may remove without `--cleanup`. */
  private readonly mine = new Set<string>();
  /** Registrations the registry refused, by id → fingerprint: not retried until the service changes. */
  private readonly rejected = new Map<string, string>();
  private running: Promise<void> | undefined;
  private again = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private stopped = false;
  private readonly log: Logger;

  constructor(private readonly options: ReconcilerOptions) {
    this.registry = options.registry;
    this.log = options.logger.child({ backend: this.registry.backend, target: this.registry.target });
  }

  /** Something changed: converge soon (coalesced with a pass in progress). */
  poke(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.running = this.pass().finally(() => {
      this.running = undefined;
      if (this.again) {
        this.again = false;
        this.poke();
      }
    });
  }

  /** Forget what we believe is stored and read it back from the registry on the next pass. */
  resync(): void {
    this.actual = undefined;
    this.poke();
  }

  /** The adapter lost its lease/session: nothing of ours is stored any more. */
  lost(reason: string): void {
    this.log.warn({ reason }, 'registry liveness lost; registering everything again');
    this.options.observer?.onLost?.(this.registry);
    this.actual = new Map();
    this.poke();
  }

  /** Resolves when no pass is running or queued (retries scheduled for later do not count). */
  async settled(): Promise<void> {
    while (this.running) await this.running;
  }

  /** Wait for the pass in progress, then stop scheduling new ones. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    await this.running;
  }

  /** Number of entries this node is known to own in the registry. */
  get ownedCount(): number {
    return this.actual?.size ?? 0;
  }

  private async pass(): Promise<void> {
    const { registry } = this;
    let actual = this.actual;
    try {
      if (actual === undefined) {
        actual = new Map((await registry.list()).map((entry) => [entry.id, entry]));
        this.actual = actual;
      }
    } catch (error) {
      this.failed(error, 'list');
      return;
    }
    const desired = this.desiredForRegistry();
    const cleanup = this.options.cleanup && this.options.inventoryComplete();
    const plan = planReconcile(
      desired,
      actual,
      (service) => registry.fingerprint(service),
      (entry) => this.mine.has(entry.id) || cleanup,
    );
    const ops: RegistryOp[] = [
      ...plan.deregister.map((entry): RegistryOp => ({ type: 'deregister', entry })),
      ...plan.register
        .filter((service) => this.rejected.get(service.id) !== registry.fingerprint(service))
        .map((service): RegistryOp => {
          const replaces = actual.get(service.id);
          return replaces ? { type: 'register', service, replaces } : { type: 'register', service };
        }),
    ];
    this.options.observer?.onPass?.(registry, ops.length);
    this.log.debug({ drift: ops.length, owned: actual.size, desired: desired.size }, 'reconcile pass');
    if (ops.length === 0) {
      this.succeeded();
      return;
    }
    let firstError: unknown;
    await runPool(ops, this.options.concurrency ?? 16, async (op) => {
      const started = performance.now();
      const seconds = () => (performance.now() - started) / 1000;
      if (this.options.dryRun) {
        this.options.observer?.onOp?.(registry, op, 'dry-run', 0);
        this.applied(op);
        return;
      }
      try {
        if (op.type === 'register') await registry.register(op.service);
        else await registry.deregister(op.entry.id);
        this.applied(op);
        this.options.observer?.onOp?.(registry, op, 'ok', seconds());
        this.log.debug(
          op.type === 'register'
            ? {
                serviceId: op.service.id,
                container: op.service.container.name,
                containerId: op.service.container.id,
              }
            : { serviceId: op.entry.id },
          op.type === 'register' ? 'registered' : 'deregistered',
        );
      } catch (error) {
        this.options.observer?.onOp?.(registry, op, 'error', seconds());
        if (error instanceof RegistryError && !error.retryable) {
          const id = op.type === 'register' ? op.service.id : op.entry.id;
          this.log.error({ serviceId: id, err: error }, `${op.type} rejected by the registry`);
          if (op.type === 'register') {
            this.rejected.set(id, registry.fingerprint(op.service));
            return;
          }
        }
        firstError ??= error;
      }
    });
    if (firstError === undefined) this.succeeded();
    else this.failed(firstError, 'write');
  }

  private desiredForRegistry(): ReadonlyMap<string, Service> {
    const desired = this.options.desired();
    if (this.registry.mirrorsHealth) return desired;
    const passing = new Map<string, Service>();
    for (const [id, service] of desired) if (service.health === 'passing') passing.set(id, service);
    return passing;
  }

  private applied(op: RegistryOp) {
    if (op.type === 'register') {
      this.mine.add(op.service.id);
      this.rejected.delete(op.service.id);
      this.actual?.set(op.service.id, {
        id: op.service.id,
        name: op.service.name,
        fingerprint: this.registry.fingerprint(op.service),
      });
    } else {
      this.mine.delete(op.entry.id);
      this.actual?.delete(op.entry.id);
    }
  }

  private succeeded() {
    if (this.failures > 0) this.log.info({ failedPasses: this.failures }, 'registry writes succeed again');
    this.failures = 0;
    this.options.observer?.onReachable?.(this.registry, true);
  }

  /** Log an outage once, not once per retry, and try again with backoff. */
  private failed(error: unknown, stage: string) {
    this.failures += 1;
    const delay = backoffDelay(this.failures, this.options.backoff ?? defaultBackoff);
    const fields = { stage, err: error, retryInMs: delay };
    if (this.failures === 1) this.log.warn(fields, 'registry unavailable; retrying');
    else this.log.debug(fields, 'registry still unavailable');
    this.options.observer?.onReachable?.(this.registry, false);
    // After a failed write we no longer know what is stored; read it back before the next diff.
    this.actual = undefined;
    if (this.stopped) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.poke();
    }, delay);
  }
}

/** Run `task` over `items` with at most `limit` in flight; never rejects (tasks handle their errors). */
async function runPool<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await task(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
