import { BehaviorSubject, filter, firstValueFrom, type Observable, type Subscription } from 'rxjs';
import { consoleLogger } from './console-logger.js';
import { ConfigError, RegistryRejectedError } from './errors.js';
import type { Logger } from './logger.js';
import { Reconciler } from './reconciler.js';
import type { Registry } from './registry.js';
import type { Service } from './service.js';
import { serviceFromRecord, type ServiceRecord } from './service-record.js';

export interface RegisterOptions {
  /** Aborting it deregisters the service, as `close()` does (before it is written: the call rejects). */
  readonly signal?: AbortSignal;
  /** Default: the console logger (one line per event on standard error). */
  readonly logger?: Logger;
}

/** Where a registration stands, for gating an application's own readiness on it. */
export type RegistrationStatus =
  /** Not written yet (the first write is in flight or queued). */
  | { readonly state: 'registering' }
  /** Stored in the registry, held alive by the adapter's lease, session or TTL check. */
  | { readonly state: 'registered' }
  /** The registry lost its liveness (lease revoked or expired, session expired, agent forgot it): registering again. */
  | { readonly state: 'lost'; readonly reason: string }
  /** Writes fail (the registry is unreachable): retried with backoff; `attempts` failed in a row. */
  | { readonly state: 'retrying'; readonly error: string; readonly attempts: number }
  /** Deregistered by `close()`, the signal or dispose; nothing more happens. */
  | { readonly state: 'closed' };

/** One service kept registered until `close()`; see `registerService`. */
export interface Registration extends AsyncDisposable {
  /** The id it is stored under: `<nodeId>:<name>:<port>` unless the record gave one. */
  readonly id: string;
  /** The current status. */
  readonly status: RegistrationStatus;
  /** The current status on subscribe, then every change; completes after `closed`. */
  readonly status$: Observable<RegistrationStatus>;
  /** Deregister and stop re-registering; resolves once the entry is gone. Idempotent. */
  close(): Promise<void>;
}

/** How long `close()` keeps trying to remove the entry from a registry that fails. */
const CLOSE_TIMEOUT_MS = 10_000;

/** Ids taken through `registerService`, per registry: two registrations of one id would undo each other. */
const claimed = new WeakMap<Registry, Set<string>>();

/**
 * Register `record` in `registry` and keep it there: resolves once it is written; after any loss of liveness
 * (a revoked or expired lease, an expired session, an agent that forgot it) it is written again, with backoff
 * while the registry is unreachable. `close()`, aborting `options.signal` or leaving an `await using` block
 * deregisters it. Invalid input (not an IP address, a port outside 1–65535, a name the registry's layout
 * cannot hold) is refused with a `ConfigError` whose `field` names what is wrong.
 *
 * While the registry is unreachable the returned promise waits; bound it with e.g.
 * `{ signal: AbortSignal.timeout(10_000) }`. A registry that refuses the write (ACL, validation) rejects it
 * with that `RegistryRejectedError`.
 */
export async function registerService(
  registry: Registry,
  record: ServiceRecord,
  options: RegisterOptions = {},
): Promise<Registration> {
  const { signal } = options;
  signal?.throwIfAborted();
  const service = serviceFromRecord(record, registry.nodeId);
  const problem = registry.check?.(service);
  if (problem) {
    throw new ConfigError(`invalid service ${problem.field}: ${problem.message} (${registry.backend})`, {
      field: problem.field,
    });
  }
  const ids = claimed.get(registry) ?? new Set<string>();
  claimed.set(registry, ids);
  if (ids.has(service.id)) {
    throw new ConfigError(
      `service id "${service.id}" is registered already through this registry: close that registration first or give another id`,
      { field: 'id' },
    );
  }
  ids.add(service.id);
  const registration = new ServiceRegistration(registry, service, options.logger ?? consoleLogger, () =>
    ids.delete(service.id),
  );
  try {
    await registration.written(signal);
  } catch (error) {
    await registration.close().catch(() => undefined);
    throw error;
  }
  registration.closeOn(signal);
  return registration;
}

/**
 * One service held by a reconciler of its own: the bridge's mechanism for writing, retrying with backoff and
 * re-registering after `lost$`, with a desired set of one.
 */
class ServiceRegistration implements Registration {
  readonly id: string;
  private readonly desired: Map<string, Service>;
  private readonly reconciler: Reconciler;
  private readonly subscription: Subscription;
  private readonly state = new BehaviorSubject<RegistrationStatus>({ state: 'registering' });
  private readonly log: Logger;
  private closing: Promise<void> | undefined;
  private unlisten: (() => void) | undefined;
  /** The registry refused the write: why (the registration waits for nothing more). */
  private refused: string | undefined;
  /** While closing: called by the pass after which our entry is gone. */
  private removal: (() => void) | undefined;

  constructor(
    private readonly registry: Registry,
    private readonly service: Service,
    logger: Logger,
    private readonly release: () => void,
  ) {
    this.id = service.id;
    this.desired = new Map([[service.id, service]]);
    this.log = logger.child({ serviceId: service.id });
    this.reconciler = new Reconciler({
      registry,
      desired: () => this.desired,
      // Never "complete": this reconciler owns one id, and removes only what it wrote itself, so registrations
      // sharing the registry (and the node id) leave each other's entries alone.
      inventoryComplete: () => false,
      logger: this.log,
      observer: {
        onReachable: () => this.passed(),
        onFatal: (_registry, error) => this.refuse(error.message),
      },
    });
    this.subscription = registry.lost$.subscribe((loss) => {
      if (this.closing) return;
      this.state.next({ state: 'lost', reason: loss.reason });
      this.reconciler.lost(loss.reason);
    });
    this.reconciler.changed([service.id]);
  }

  get status(): RegistrationStatus {
    return this.state.value;
  }

  get status$(): Observable<RegistrationStatus> {
    return this.state.asObservable();
  }

  /** Resolves once written; rejects when refused or aborted first. */
  async written(signal: AbortSignal | undefined): Promise<void> {
    const settled = firstValueFrom(
      this.state.pipe(filter((s) => s.state === 'registered' || s.state === 'closed')),
    );
    const aborted = new Promise<never>((_resolve, reject) => {
      if (!signal) return;
      const onAbort = () => reject(signal.reason as Error);
      signal.addEventListener('abort', onAbort, { once: true });
      void settled.finally(() => signal.removeEventListener('abort', onAbort));
    });
    const outcome = await Promise.race([settled, aborted]);
    if (outcome.state === 'closed') {
      throw new RegistryRejectedError(
        `${this.registry.backend} refused ${this.id}: ${this.refused ?? 'closed before it was written'}`,
        this.registry.backend,
      );
    }
  }

  closeOn(signal: AbortSignal | undefined): void {
    if (!signal) return;
    const onAbort = () =>
      void this.close().catch((error: unknown) =>
        this.log.warn({ err: error }, 'deregister on abort failed'),
      );
    signal.addEventListener('abort', onAbort, { once: true });
    this.unlisten = () => signal.removeEventListener('abort', onAbort);
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** After every pass: what the reconciler knows about our id. */
  private passed() {
    if (this.removal) {
      if (this.reconciler.stateOf(this.id, undefined).state === 'absent') this.removal();
      return;
    }
    if (this.closing || this.refused !== undefined) return;
    const now = this.reconciler.stateOf(this.id, this.service);
    const before = this.state.value;
    if (now.state === 'registered' && before.state !== 'registered') {
      if (before.state !== 'registering') this.log.info({ after: before.state }, 'service registered again');
      this.state.next({ state: 'registered' });
    } else if (now.state === 'retrying') {
      this.state.next({
        state: 'retrying',
        error: now.error ?? 'unknown error',
        attempts: now.attempts ?? 1,
      });
    } else if (now.state === 'rejected') {
      this.refuse(now.error ?? 'rejected');
    }
  }

  /** The registry refuses this service for good: stop, and let `written()` reject. */
  private refuse(reason: string) {
    if (this.refused !== undefined) return;
    this.refused = reason;
    void this.close();
  }

  private async shutdown(): Promise<void> {
    this.unlisten?.();
    this.subscription.unsubscribe();
    this.desired.clear();
    let failure: string | undefined;
    if (this.refused === undefined) {
      failure = await this.removed();
    }
    await this.reconciler.stop();
    this.release();
    this.state.next({ state: 'closed' });
    this.state.complete();
    if (failure !== undefined) {
      throw new RegistryRejectedError(
        `could not deregister ${this.id} within ${CLOSE_TIMEOUT_MS / 1000} s (${failure}); it stays until the registry's liveness ends`,
        this.registry.backend,
      );
    }
  }

  /** Ask the reconciler to remove our entry and wait for the pass that did; the last error if not in time. */
  private removed(): Promise<string | undefined> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.removal = undefined;
        resolve(this.reconciler.stateOf(this.id, undefined).error ?? 'no answer');
      }, CLOSE_TIMEOUT_MS);
      this.removal = () => {
        this.removal = undefined;
        clearTimeout(timer);
        resolve(undefined);
      };
      this.reconciler.changed([this.id]);
    });
  }
}
