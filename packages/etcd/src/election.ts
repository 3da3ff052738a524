import type { ElectionOptions, Leadership, Logger } from '@registrar/core';
import { backoffDelay, defaultBackoff } from '@registrar/core/kit';
import type { Campaign, Election, Etcd3 } from 'etcd3';
import { EventEmitter } from 'node:events';
import { BehaviorSubject, distinctUntilChanged, type Observable } from 'rxjs';
import type { LeaseKeeper } from './liveness.js';

/** What a candidate announces in its election key (etcd3's campaign value). */
interface Proclamation {
  readonly candidate: string;
  /** The lease the leader's keys hang on; every candidate keeps it alive. */
  readonly lease?: string;
}

export interface EtcdLeadershipOptions {
  readonly client: Etcd3;
  /** The lease keeper of the registry whose writer is elected. */
  readonly lease: LeaseKeeper;
  /** Election name: etcd3 keeps the candidates under `election/<name>/`. */
  readonly name: string;
  /** Seconds: the campaign lease's TTL, so a dead leader is succeeded within it. */
  readonly ttl: number;
  readonly logger: Logger;
}

const parse = (value: string | undefined): Proclamation | undefined => {
  try {
    const parsed = JSON.parse(value ?? '') as Partial<Proclamation> | null;
    return typeof parsed?.candidate === 'string' ? (parsed as Proclamation) : undefined;
  } catch {
    return undefined;
  }
};

/**
 * The etcd3 `Lease` behind a campaign (a private field): its `keepaliveSucceeded` events tell a leader that
 * its campaign key still stands. Asserted, so that an etcd3 upgrade that moves it fails loudly.
 */
export function campaignLease(campaign: Campaign): EventEmitter {
  const lease = (campaign as unknown as { lease?: unknown }).lease;
  if (!(lease instanceof EventEmitter)) {
    throw new Error('etcd3 Campaign has no `lease` EventEmitter: this etcd3 version is not supported');
  }
  return lease as EventEmitter;
}

/**
 * One writer per cluster on etcd, with etcd3's own election recipe (a campaign key on a lease per candidate,
 * the oldest leads). The keys the leader writes hang on one more lease, the cluster's: the leader proclaims
 * its id and every candidate keeps it alive by id, so the keys outlive a leader that dies and its successor
 * finds them on the very lease it holds: its fingerprints match and it writes nothing.
 *
 * A leader steps down by itself when its campaign lease had no successful keepalive for 2/3 of the TTL:
 * etcd may drop that lease at one TTL and elect the next candidate, and etcd3 would only say so after 2×TTL.
 */
export class EtcdLeadership implements Leadership {
  private readonly leading = new BehaviorSubject(false);
  readonly leading$: Observable<boolean> = this.leading.pipe(distinctUntilChanged());
  private readonly election: Election;
  private campaign: Campaign | undefined;
  /** The lease the last leader announced, as last read. */
  private announced: string | undefined;
  private closed = false;
  private failures = 0;
  private retry: NodeJS.Timeout | undefined;
  private follow: NodeJS.Timeout | undefined;
  private deadline: NodeJS.Timeout | undefined;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly options: EtcdLeadershipOptions & ElectionOptions,
    /** Called once this leadership is closed, so that the registry may elect again. */
    private readonly onClosed: () => void = () => undefined,
  ) {
    this.election = options.client.election(options.name, options.ttl);
    // A new lease of ours (the first grant, or one after the old was lost) is announced while we lead.
    const held = options.lease.held$.subscribe((id) => {
      if (this.leading.value) void this.proclaim(id);
    });
    this.unsubscribe = () => held.unsubscribe();
    this.run();
    void this.followLeader();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.retry);
    clearTimeout(this.follow);
    clearTimeout(this.deadline);
    this.unsubscribe();
    this.leading.next(false);
    this.leading.complete();
    const campaign = this.campaign;
    this.campaign = undefined;
    try {
      // Revoking the campaign lease deletes our key: the next candidate is elected at once.
      await campaign?.resign();
    } finally {
      this.onClosed();
    }
  }

  private run() {
    if (this.closed) return;
    const campaign = this.election.campaign(
      JSON.stringify({ candidate: this.options.candidate } satisfies Proclamation),
    );
    this.campaign = campaign;
    campaignLease(campaign).on('keepaliveSucceeded', () => {
      if (this.campaign === campaign && this.leading.value) this.armDeadline(campaign);
    });
    campaign.on('elected', () => {
      if (this.campaign !== campaign || this.closed) return;
      this.failures = 0;
      this.armDeadline(campaign);
      void this.takeOver(campaign);
    });
    campaign.on('error', (error: unknown) => {
      if (this.campaign !== campaign) return;
      this.options.logger.warn({ err: error }, 'etcd election campaign failed; campaigning again');
      this.stepDown(campaign);
    });
  }

  /**
   * Elected: announce the lease the keys hang on. The lease the last leader announced is ours already (we
   * kept it alive), so the reconciler's list finds the keys on it and adopts them as they are.
   */
  private async takeOver(campaign: Campaign) {
    const { lease, logger, candidate } = this.options;
    const announced = this.announced;
    if (announced !== undefined && lease.id !== announced) await lease.adopt(announced).catch(() => false);
    if (this.campaign !== campaign || this.closed) return;
    logger.info({ candidate, lease: lease.id }, 'elected in etcd');
    this.leading.next(true);
    // No lease yet (a fresh cluster): the first write grants one, and `held$` announces it.
    if (lease.id !== undefined) await this.proclaim(lease.id);
  }

  private async proclaim(id: string) {
    const campaign = this.campaign;
    if (!campaign) return;
    try {
      await campaign.proclaim(
        JSON.stringify({ candidate: this.options.candidate, lease: id } satisfies Proclamation),
      );
    } catch (error) {
      if (this.campaign !== campaign) return;
      this.options.logger.warn(
        { err: error },
        'etcd election: announcing the lease failed; campaigning again',
      );
      this.stepDown(campaign);
    }
  }

  /** No longer (sure to be) the leader: stop writing now, leave this campaign and start another later. */
  private stepDown(campaign: Campaign) {
    if (this.campaign !== campaign) return;
    clearTimeout(this.deadline);
    this.campaign = undefined;
    this.leading.next(false);
    void campaign.resign().catch(() => undefined);
    if (this.closed) return;
    this.failures += 1;
    this.retry = setTimeout(() => this.run(), backoffDelay(this.failures, defaultBackoff));
  }

  private armDeadline(campaign: Campaign) {
    clearTimeout(this.deadline);
    this.deadline = setTimeout(
      () => {
        this.options.logger.warn(
          { ttl: this.options.ttl },
          'etcd election: no keepalive of the campaign lease for 2/3 of its TTL; stepping down',
        );
        this.stepDown(campaign);
      },
      (this.options.ttl * 1000 * 2) / 3,
    );
  }

  /**
   * Read the leader's announcement every TTL/3 and keep the lease it names alive. A range read, not etcd3's
   * ElectionObserver: when several candidates' keys arrive in one watch batch, the observer takes the last
   * of them for the leader and then watches the wrong key.
   */
  private async followLeader() {
    if (this.closed) return;
    try {
      const id = parse(await this.election.leader())?.lease;
      if (id !== undefined && !this.leading.value && !this.closed) {
        this.announced = id;
        if (!(await this.options.lease.adopt(id))) {
          this.options.logger.debug({ lease: id }, 'the lease the etcd leader announced is gone');
        }
      }
    } catch (error) {
      this.options.logger.debug({ err: error }, 'reading the etcd election leader failed; trying again');
    }
    if (!this.closed) this.follow = setTimeout(() => void this.followLeader(), (this.options.ttl * 1000) / 3);
  }
}
