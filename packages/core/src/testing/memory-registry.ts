import { Subject, type Observable } from 'rxjs';
import { RegistryConnectionError, RegistryRejectedError } from '../errors.js';
import type { LivenessLoss, Registry, RegistryEntry, RegistryEvent } from '../registry.js';
import type { Service } from '../service.js';

export interface MemoryRegistryOptions {
  /** Default `n1`. */
  readonly nodeId?: string;
  /** The engine ID it records with every entry; default none. */
  readonly engineId?: string;
  /** Default false: like etcd and ZooKeeper, only passing services are held. */
  readonly mirrorsHealth?: boolean;
  /** Default `memory`. */
  readonly backend?: string;
}

/** One call the registry answered, in order, for asserting what a caller did. */
export interface RegistryCall {
  readonly method: 'register' | 'deregister' | 'list' | 'close';
  /** The service id, for `register` and `deregister`. */
  readonly id?: string;
  /** `close({ deregister })`. */
  readonly deregister?: boolean;
  /** The message of the error the call failed with. */
  readonly error?: string;
}

/**
 * A `Registry` held in memory, for tests and benchmarks: it stores what is registered, records every call,
 * and can be told to fail writes, be unreachable, refuse ids, and lose or recover its liveness.
 */
export class MemoryRegistry implements Registry {
  readonly backend: string;
  readonly target: string;
  readonly nodeId: string;
  /** The writer's engine ID (see `Registry.engineId`); unset: no engine is recorded or checked. */
  engineId: string | undefined;
  readonly mirrorsHealth: boolean;
  readonly lost$: Observable<LivenessLoss>;
  readonly events$: Observable<RegistryEvent>;
  /** What the registry holds, by service id. Tests may seed it (entries of an earlier run). */
  readonly entries = new Map<string, RegistryEntry>();
  /** The service last registered under each id it holds. */
  readonly services = new Map<string, Service>();
  readonly calls: RegistryCall[] = [];
  /** Every call fails as if the server could not be reached. */
  down = false;
  /** Ids whose registration the registry refuses (a `RegistryRejectedError`, not worth retrying). */
  readonly rejected = new Set<string>();
  /** Part of every fingerprint; a liveness loss moves it, as a new lease or session would. */
  epoch = 1;
  closed = false;
  private failingWrites = 0;
  private readonly lost = new Subject<LivenessLoss>();
  private readonly events = new Subject<RegistryEvent>();

  constructor(options: MemoryRegistryOptions = {}) {
    this.nodeId = options.nodeId ?? 'n1';
    this.engineId = options.engineId;
    this.mirrorsHealth = options.mirrorsHealth ?? false;
    this.backend = options.backend ?? 'memory';
    this.target = `${this.backend}://${this.nodeId}`;
    this.lost$ = this.lost.asObservable();
    this.events$ = this.events.asObservable();
  }

  /** Calls to `register` and `deregister`, failed ones included. */
  get writes(): number {
    return this.calls.filter((c) => c.method === 'register' || c.method === 'deregister').length;
  }

  /** The ids it holds, sorted. */
  ids(): string[] {
    return [...this.entries.keys()].sort();
  }

  /** The next `count` writes fail with a connection error (then writes succeed again). */
  failWrites(count = 1): void {
    this.failingWrites = count;
  }

  /** Every entry is gone at once (a lease expired, a session ended): reported on `lost$` and `events$`. */
  loseLiveness(reason = 'liveness lost'): void {
    this.entries.clear();
    this.services.clear();
    this.epoch += 1;
    this.events.next({ type: 'liveness-lost', reason });
    this.lost.next({ reason });
  }

  /** One heartbeat failed; the entries may still be alive. */
  heartbeatFailed(error: unknown = new RegistryConnectionError('heartbeat failed', this.backend)): void {
    this.events.next({ type: 'heartbeat-failed', error });
  }

  /** Heartbeats succeed again. */
  recovered(): void {
    this.events.next({ type: 'recovered' });
  }

  fingerprint(service: Service): string {
    return `${this.epoch}|${JSON.stringify(service)}`;
  }

  register(service: Service): Promise<void> {
    return this.answer({ method: 'register', id: service.id }, () => {
      this.failIfFailingWrite();
      if (this.rejected.has(service.id)) {
        throw new RegistryRejectedError(`refused ${service.id}: permission denied`, this.backend);
      }
      const { id, name } = service;
      const engine = this.engineId === undefined ? {} : { engine: this.engineId };
      this.entries.set(id, { id, name, fingerprint: this.fingerprint(service), ...engine });
      this.services.set(id, service);
    });
  }

  deregister(id: string): Promise<void> {
    return this.answer({ method: 'deregister', id }, () => {
      this.failIfFailingWrite();
      this.entries.delete(id);
      this.services.delete(id);
    });
  }

  list(): Promise<RegistryEntry[]> {
    return this.answer({ method: 'list' }, () => [...this.entries.values()]);
  }

  close(options: { deregister?: boolean } = {}): Promise<void> {
    const deregister = options.deregister ?? false;
    this.calls.push({ method: 'close', deregister });
    if (deregister) {
      this.entries.clear();
      this.services.clear();
    }
    // Nothing completes: a test may start another bridge on the same registry, as a restart would.
    this.closed = true;
    return Promise.resolve();
  }

  private failIfFailingWrite() {
    if (this.failingWrites > 0) {
      this.failingWrites -= 1;
      throw new RegistryConnectionError(`${this.backend} write failed: ECONNRESET`, this.backend);
    }
  }

  /** Runs a call asynchronously, as a real adapter answers, and records it with its outcome. */
  private async answer<T>(call: RegistryCall, body: () => T): Promise<T> {
    await Promise.resolve();
    try {
      if (this.down) {
        throw new RegistryConnectionError(`${this.backend} registry unreachable: ECONNREFUSED`, this.backend);
      }
      const result = body();
      this.calls.push(call);
      return result;
    } catch (error) {
      this.calls.push({ ...call, error: (error as Error).message });
      throw error;
    }
  }
}
