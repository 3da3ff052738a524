import type { LivenessLoss, Logger, RegistryEvent } from '@registrar/core';
import { RegistryRejectedError, registryErrorKind } from '@registrar/core';
import { readStateFile, removeStateFile, writeStateFile } from '@registrar/core/kit';
import type { Etcd3, ILeaseKeepAliveResponse } from 'etcd3';
import { castGrpcError } from 'etcd3';
import { Subject } from 'rxjs';
import { etcdCall } from './call.js';
import { backend, toRegistryError } from './errors.js';

/** After a failed keepalive, the next one is sent this soon (or at the interval, if shorter). */
const KEEPALIVE_RETRY_MS = 250;

interface HeldLease {
  readonly id: string;
  /** TTL etcd granted (it raises grants below its minimum). */
  readonly ttlMs: number;
  keepaliveTimer?: NodeJS.Timeout;
  /** Fires when no keepalive succeeded for a whole TTL: etcd has dropped the lease by then. */
  deadlineTimer?: NodeJS.Timeout;
}

export interface LeaseKeeperOptions {
  readonly client: Etcd3;
  /** Seconds. */
  readonly ttl: number;
  /** Milliseconds between keepalives. */
  readonly keepaliveMs: number;
  /** Milliseconds any one call may take. */
  readonly timeoutMs: number;
  readonly logger: Logger;
  /**
   * Where the lease id is kept between runs: a restarted process keeps that lease alive instead of granting
   * one, so the keys attached to it need no write. Read once, at the first grant.
   */
  readonly stateFile?: string;
}

/**
 * One etcd lease, granted lazily and kept alive by our own timer rather than etcd3's `Lease` class: its
 * keepalive interval is fixed at TTL/3, it survives `client.close()`, and it reports a loss only after 2×TTL
 * without contact, while we must know after one TTL. A single keepalive per interval, whatever the number of
 * keys attached.
 */
export class LeaseKeeper {
  readonly lost$ = new Subject<LivenessLoss>();
  /** Each failed keepalive, then `recovered` at the next success or `liveness-lost` with the lease. */
  readonly events$ = new Subject<RegistryEvent>();
  /** The id of every lease this keeper starts to hold: granted, resumed or adopted. */
  readonly held$ = new Subject<string>();
  private held: HeldLease | undefined;
  private granting: Promise<HeldLease> | undefined;
  private closed = false;
  /** A keepalive failed and none succeeded since (nor was the lease declared lost). */
  private failing = false;

  /** Lease id an earlier run saved, tried once at the first grant. */
  private saved: string | undefined;

  constructor(private readonly options: LeaseKeeperOptions) {
    if (options.stateFile) this.saved = loadState(options.stateFile);
  }

  /** The lease keys are put with right now, if any. */
  get id(): string | undefined {
    return this.held?.id;
  }

  /** The TTL etcd granted the current lease (it raises grants below its minimum), in seconds. */
  get grantedTtl(): number | undefined {
    return this.held && this.held.ttlMs / 1000;
  }

  /** The current lease, granting one when there is none. Concurrent callers share one grant. */
  async acquire(): Promise<string> {
    if (this.closed) throw new RegistryRejectedError('etcd adapter is closed', backend);
    if (this.held) return this.held.id;
    this.granting ??= this.grant().finally(() => (this.granting = undefined));
    return (await this.granting).id;
  }

  /** Declares `id` lost (unless it already was): the next `acquire` grants a fresh lease. */
  lose(id: string, reason: string): void {
    const lease = this.held;
    if (!lease || lease.id !== id) return;
    this.stop(lease);
    this.held = undefined;
    this.failing = false;
    this.options.logger.warn({ lease: id, reason }, 'etcd lease lost; entries must be registered again');
    this.events$.next({ type: 'liveness-lost', reason });
    this.lost$.next({ reason });
  }

  /** Stops the keepalive; with `revoke` also deletes the lease and with it every key attached. */
  async close(revoke: boolean): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // A grant still in flight finishes into `held` or fails; either way nothing is left running after it.
    await this.granting?.catch(() => undefined);
    const lease = this.held;
    this.held = undefined;
    if (lease) this.stop(lease);
    this.lost$.complete();
    this.events$.complete();
    this.held$.complete();
    if (revoke && lease) {
      await this.revoke(lease.id);
      if (this.options.stateFile) removeStateFile(this.options.stateFile);
    }
  }

  /**
   * Keep another process's lease `id` alive as this keeper's own (the cluster's shared lease in Swarm mode:
   * every candidate keeps the leader's lease alive, so its keys outlive the leader). A lease of our own held
   * until now is let go without a revoke. False when etcd no longer knows `id` (or grants it another TTL).
   */
  async adopt(id: string): Promise<boolean> {
    if (this.closed) return false;
    if (this.held?.id === id) return true;
    await this.granting?.catch(() => undefined);
    const adopted = await this.resume(id);
    if (adopted === undefined || this.closed) return false;
    if (this.held?.id === id) return true;
    if (this.held) this.stop(this.held);
    this.failing = false;
    this.options.logger.debug({ lease: id }, 'etcd lease adopted: kept alive by this process too');
    this.hold(adopted);
    return true;
  }

  /** Whether a lease id from an earlier run waits to be resumed at the first `acquire`. */
  get resumable(): boolean {
    return this.saved !== undefined;
  }

  /** The lease an earlier run left, if etcd still holds it with our TTL; it is then ours. */
  private async resume(id: string): Promise<HeldLease | undefined> {
    try {
      const response = await this.keepaliveOnce(id);
      // TTL 0: expired or revoked. Another TTL: --ttl changed since; keys get the new one instead.
      if (Number(response.TTL) !== this.options.ttl) return undefined;
      return { id, ttlMs: Number(response.TTL) * 1000 };
    } catch (error) {
      if (registryErrorKind(error) === 'liveness-lost') return undefined;
      throw error;
    }
  }

  private async grant(): Promise<HeldLease> {
    const saved = this.saved;
    if (saved !== undefined) {
      const resumed = await this.resume(saved);
      this.saved = undefined;
      if (resumed && !this.closed) {
        this.options.logger.info(
          { lease: saved },
          'etcd lease resumed from the state file: keys kept as they are',
        );
        return this.hold(resumed);
      }
    }
    const { client, ttl, timeoutMs } = this.options;
    // A grant cut off by its deadline may have landed: that lease, kept alive by nobody, expires after the TTL.
    const response = await etcdCall(
      'lease grant',
      timeoutMs,
      (options) => client.leaseClient.leaseGrant({ TTL: ttl }, options),
      this.options.logger,
    );
    const lease: HeldLease = { id: response.ID, ttlMs: Number(response.TTL) * 1000 };
    if (this.closed) {
      // close() ran while we waited: do not leave a lease nobody keeps.
      await this.revoke(lease.id).catch(() => undefined);
      throw new RegistryRejectedError('etcd adapter is closed', backend);
    }
    this.options.logger.debug({ lease: lease.id, ttl: response.TTL }, 'etcd lease granted');
    if (this.options.stateFile) {
      try {
        writeStateFile(this.options.stateFile, { lease: lease.id });
      } catch (error) {
        this.options.logger.warn(
          { err: error, stateFile: this.options.stateFile },
          'cannot write the etcd state file; a restart will put every key again',
        );
      }
    }
    return this.hold(lease);
  }

  private hold(lease: HeldLease): HeldLease {
    this.held = lease;
    this.armDeadline(lease);
    this.scheduleKeepalive(lease);
    this.held$.next(lease.id);
    return lease;
  }

  private async revoke(id: string): Promise<void> {
    const { client, timeoutMs } = this.options;
    try {
      await etcdCall(
        'lease revoke',
        timeoutMs,
        (options) => client.leaseClient.leaseRevoke({ ID: id }, options),
        this.options.logger,
      );
    } catch (error) {
      // Already gone, keys with it (perhaps by an attempt cut off by its deadline).
      if (registryErrorKind(error) === 'liveness-lost') return;
      throw error;
    }
  }

  private stop(lease: HeldLease) {
    clearTimeout(lease.keepaliveTimer);
    clearTimeout(lease.deadlineTimer);
  }

  private armDeadline(lease: HeldLease) {
    clearTimeout(lease.deadlineTimer);
    lease.deadlineTimer = setTimeout(
      () => this.lose(lease.id, `no successful keepalive for ${lease.ttlMs / 1000} s (the lease TTL)`),
      lease.ttlMs,
    );
  }

  private scheduleKeepalive(lease: HeldLease, afterMs = this.options.keepaliveMs) {
    lease.keepaliveTimer = setTimeout(() => void this.keepalive(lease), afterMs);
  }

  private async keepalive(lease: HeldLease) {
    if (this.held !== lease) return;
    try {
      const response = await this.keepaliveOnce(lease.id);
      if (this.held !== lease) return;
      // etcd answers TTL 0 for a lease it no longer knows (expired or revoked behind our back).
      if (response.TTL === '0') return this.lose(lease.id, 'etcd no longer knows the lease');
      this.armDeadline(lease);
      if (this.failing) {
        this.failing = false;
        this.events$.next({ type: 'recovered' });
      }
    } catch (error) {
      if (this.held !== lease) return;
      if (registryErrorKind(error) === 'liveness-lost')
        return this.lose(lease.id, 'etcd no longer knows the lease');
      // Unreachable etcd: keep trying; the deadline timer decides when the lease must be considered gone.
      this.options.logger.debug({ lease: lease.id, err: error }, 'etcd keepalive failed');
      this.failing = true;
      this.events$.next({ type: 'heartbeat-failed', error: toRegistryError(error, 'lease keepalive') });
      // Again soon, not a whole interval later: a cluster electing a new leader answers again within a
      // second or two, and the lease must be renewed before its TTL runs out here.
      return this.scheduleKeepalive(lease, Math.min(this.options.keepaliveMs, KEEPALIVE_RETRY_MS));
    }
    this.scheduleKeepalive(lease);
  }

  /**
   * One request on a short-lived keepalive stream, within the call timeout (at most the keepalive interval),
   * tried again on another member when one fails or does not answer (`etcdCall`): etcd3 sends a stream to
   * one host and never elsewhere, and a dead member must not cost keepalives until the lease runs out.
   */
  private keepaliveOnce(id: string): Promise<ILeaseKeepAliveResponse> {
    const { client, timeoutMs } = this.options;
    const limit = Math.min(timeoutMs, this.options.keepaliveMs);
    const exchange = async (options: { deadline: number }) => {
      const stream = await client.leaseClient.leaseKeepAlive(options);
      return new Promise<ILeaseKeepAliveResponse>((resolve, reject) => {
        stream.on('data', (response) => {
          stream.end();
          resolve(response);
        });
        stream.on('error', (error) => reject(castGrpcError(error)));
        stream.write({ ID: id });
      });
    };
    return etcdCall('lease keepalive', limit, exchange, this.options.logger);
  }
}

/** The lease id saved in `file`, if it holds a valid one. */
function loadState(file: string): string | undefined {
  const lease = (readStateFile(file) as { lease?: unknown } | undefined)?.lease;
  return typeof lease === 'string' && /^\d+$/.test(lease) ? lease : undefined;
}
