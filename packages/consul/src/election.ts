import { formatGoDuration } from '@registrar/core/kit';
import type { Leadership, Logger } from '@registrar/core';
import { BehaviorSubject } from 'rxjs';
import { pathId, type ConsulClient } from './client.js';

export interface ElectionSettings {
  client: ConsulClient;
  logger: Logger;
  /** The lock key, e.g. `registrar/election/<node id>`. */
  key: string;
  candidate: string;
  /** The session's TTL: Consul invalidates it between 1× and 2× this after the last renewal. */
  sessionTtlMs: number;
  /** How often the session is renewed (one request each time). */
  renewMs: number;
  /** Pause after a failed request before the campaign tries again. */
  retryMs: number;
  /** `?wait=` of the blocking read on the key. */
  waitMs: number;
  /** The candidate's own TTL check, which its sessions list (see `CandidateCheck`). */
  check: CandidateCheck;
}

/**
 * A service of this candidate process alone, whose TTL check the candidate passes every `passMs`. Its sessions
 * list that check (besides `serfHealth`): when the process dies the check goes critical `ttlMs` later and Consul
 * invalidates the session at once, releasing the lock, instead of waiting up to twice the session TTL (at least
 * 10 s). A check of a service of its own rather than of the node: a critical node check would fail the health of
 * every service on the node, and aliases of the bridge check would follow.
 */
export interface CandidateCheck {
  /** Unique per candidate process: a restarted candidate passing its predecessor's check would keep its session. */
  serviceId: string;
  serviceName: string;
  meta: Record<string, string>;
  ttlMs: number;
  passMs: number;
  /** A killed candidate's service is reaped this long after its check went critical (Consul: at least 1m). */
  deregisterAfterMs: number;
}

/** What the registry needs to know of an election besides `leading$`. */
export interface ConsulElection extends Leadership {
  /** Whether this candidate holds the lock now. */
  readonly leading: boolean;
  /**
   * Whether the leader's session lives on the agent this candidate talks to: then the leader's services are
   * on that agent too, and a follower keeps them alive by passing the bridge check (see docs/swarm.md).
   */
  readonly leaderOnOurAgent: boolean;
}

interface Session {
  id: string;
  /** The agent node the session is bound to (the agent that created it). */
  node: string;
}

interface KvEntry {
  Session?: string;
}

const pathKey = (key: string): string => key.split('/').map(encodeURIComponent).join('/');

/**
 * Consul's leader-election recipe: a session with a TTL (renewed every `renewMs`) and `LockDelay: 0s`, so a
 * successor is not held off for Consul's default 15 s; `?acquire=` on the key, the holder leads; the others
 * block on the key and try again when it has no `Session`. Each session also lists the candidate's own TTL
 * check (see `CandidateCheck`), so a dead candidate's lock is released within the check's TTL. A lost session
 * (renew 404, no renewal within the TTL, the check unknown to the agent or not passed within its TTL) ends
 * leadership at once, and the campaign starts over with a new session.
 */
export function createConsulElection(settings: ElectionSettings): ConsulElection {
  return new Campaign(settings);
}

class Campaign implements ConsulElection {
  private readonly kvPath: string;
  private readonly checkId: string;
  private readonly passPath: string;
  // Whether the agent should know our check (registered, and no 404 since).
  private checkRegistered = false;
  private everRegistered = false;
  private lastPassed = 0;
  private passLogged = 0;
  private passTimer: NodeJS.Timeout | undefined;
  private readonly leadingSubject = new BehaviorSubject(false);
  readonly leading$ = this.leadingSubject.asObservable();
  private session: Session | undefined;
  private lastRenewed = 0;
  private renewLogged = 0;
  private renewTimer: NodeJS.Timeout | undefined;
  private closed = false;
  // Cancels what the campaign waits for (a blocking read, a retry pause) when the session is lost or on close.
  private abort = new AbortController();
  // The node of the last lock holder seen: kept while the lock is free between two leaders.
  private leaderNode: string | undefined;
  private holderSeen: { id: string; node: string | undefined } | undefined;
  private failing = false;
  private readonly running: Promise<void>;

  constructor(private readonly settings: ElectionSettings) {
    this.kvPath = `/v1/kv/${pathKey(settings.key)}`;
    this.checkId = `service:${settings.check.serviceId}`;
    this.passPath = `/v1/agent/check/pass/${pathId(this.checkId)}`;
    this.running = this.campaign();
  }

  get leading(): boolean {
    return this.leadingSubject.value;
  }

  get leaderOnOurAgent(): boolean {
    return (
      this.leadingSubject.value || (this.leaderNode !== undefined && this.leaderNode === this.session?.node)
    );
  }

  private setLeading(now: boolean): void {
    if (this.leadingSubject.value !== now) this.leadingSubject.next(now);
  }

  private interrupt(): void {
    this.abort.abort();
    this.abort = new AbortController();
  }

  private dropSession(reason: string): void {
    const { client, logger, key, candidate } = this.settings;
    const lost = this.session;
    if (!lost) return;
    this.session = undefined;
    clearTimeout(this.renewTimer);
    this.renewTimer = undefined;
    clearTimeout(this.passTimer);
    this.passTimer = undefined;
    if (this.leadingSubject.value)
      logger.warn({ key, candidate, reason }, `lost the Consul election lock: ${reason}`);
    this.setLeading(false);
    this.interrupt();
    // Best effort: a session we gave up on but Consul still holds would keep the lock until its TTL.
    void client
      .request('PUT', `/v1/session/destroy/${lost.id}`, { what: 'destroy lost session' })
      .catch(() => undefined);
  }

  private async renew(): Promise<void> {
    const { client, logger, key, sessionTtlMs, renewMs } = this.settings;
    const current = this.session;
    if (!current || this.closed) return;
    try {
      const res = await client.request('PUT', `/v1/session/renew/${current.id}`, {
        allow404: true,
        what: 'renew election session',
        permission: 'session:write',
      });
      if (this.session !== current) return;
      if (res.status === 404) return this.dropSession('the session expired (Consul invalidated it)');
      this.lastRenewed = Date.now();
    } catch (err) {
      if (this.session !== current) return;
      // Once per streak: the renewal after the last success tells.
      if (this.lastRenewed >= this.renewLogged) {
        this.renewLogged = Date.now();
        logger.warn({ err, key }, `renewing the Consul election session failed: ${(err as Error).message}`);
      }
      // Past the TTL Consul may have invalidated it and elected another: at most one leader, so step down.
      if (Date.now() - this.lastRenewed >= sessionTtlMs)
        return this.dropSession('no renewal got through within the TTL');
    } finally {
      // Also called out of turn (after a failed campaign step): one timer, never two loops.
      clearTimeout(this.renewTimer);
      if (this.session === current && !this.closed)
        this.renewTimer = setTimeout(() => void this.renew(), renewMs);
    }
  }

  private async registerCheck(): Promise<void> {
    const { client, key, candidate, check } = this.settings;
    await client.request('PUT', '/v1/agent/service/register', {
      body: {
        ID: check.serviceId,
        Name: check.serviceName,
        Tags: [],
        Meta: check.meta,
        Check: {
          CheckID: this.checkId,
          Name: 'registrar election candidate',
          Notes: `Passed every ${formatGoDuration(check.passMs)} by candidate ${candidate} of ${key}; its election sessions end when this goes critical`,
          TTL: formatGoDuration(check.ttlMs),
          Status: 'passing',
          DeregisterCriticalServiceAfter: formatGoDuration(check.deregisterAfterMs),
        },
      },
      what: `register election check ${this.checkId}`,
      permission: `service:write on ${check.serviceName}`,
    });
    this.checkRegistered = true;
    this.everRegistered = true;
  }

  private passRequest() {
    return this.settings.client.request('PUT', this.passPath, {
      allow404: true,
      what: `pass election check ${this.checkId}`,
      permission: `service:write on ${this.settings.check.serviceName}`,
    });
  }

  /** Consul refuses a session whose check is missing or critical: register it, or pass it, first. */
  private async readyCheck(): Promise<void> {
    if (this.checkRegistered && (await this.passRequest()).status !== 404) return;
    // Never registered, or the agent forgot it (restarted without its state): a new check, passing.
    await this.registerCheck();
  }

  private async passCheck(): Promise<void> {
    const { logger, key, check } = this.settings;
    const current = this.session;
    if (!current || this.closed) return;
    try {
      const res = await this.passRequest();
      if (this.session !== current) return;
      if (res.status === 404) {
        // Consul invalidates a session whose check was deregistered; the campaign registers it again.
        this.checkRegistered = false;
        return this.dropSession('the agent no longer knows the election check');
      }
      this.lastPassed = Date.now();
    } catch (err) {
      if (this.session !== current) return;
      if (this.lastPassed >= this.passLogged) {
        this.passLogged = Date.now();
        logger.warn({ err, key }, `passing the Consul election check failed: ${(err as Error).message}`);
      }
      // Past its TTL the check is critical and Consul invalidated the session: step down.
      if (Date.now() - this.lastPassed >= check.ttlMs)
        return this.dropSession('no pass of the election check got through within its TTL');
    } finally {
      clearTimeout(this.passTimer);
      if (this.session === current && !this.closed)
        this.passTimer = setTimeout(() => void this.passCheck(), check.passMs);
    }
  }

  private async createSession(): Promise<Session> {
    const { client, key, candidate, sessionTtlMs } = this.settings;
    await this.readyCheck();
    const res = await client.request('PUT', '/v1/session/create', {
      body: {
        Name: `registrar election ${key} (${candidate})`,
        TTL: formatGoDuration(sessionTtlMs),
        LockDelay: '0s',
        Behavior: 'release',
        // `Checks` (rather than the newer NodeChecks/ServiceChecks) works with every Consul version; listing it
        // replaces the default, so serfHealth is named too.
        Checks: ['serfHealth', this.checkId],
      },
      what: 'create election session',
      permission: 'session:write',
    });
    const id = (client.parse(res, 'create election session') as { ID?: string }).ID;
    if (!id) throw new Error(`Consul answered session create without an ID: ${res.text.slice(0, 80)}`);
    const node = (await this.nodeOf(id)) ?? '';
    return { id, node };
  }

  private async nodeOf(sessionId: string): Promise<string | undefined> {
    const { client } = this.settings;
    const res = await client.request('GET', `/v1/session/info/${sessionId}`, {
      what: 'read election session',
      permission: 'session:read',
    });
    const [info] = client.parse(res, 'read election session') as { Node?: string }[];
    return info?.Node;
  }

  /** Pause `ms`, or less when interrupted. */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const { signal } = this.abort;
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done);
    });
  }

  /** A session of our own, with its renewal and its check's passes armed. */
  private async startSession(): Promise<Session> {
    const { renewMs, check } = this.settings;
    const session = await this.createSession();
    this.session = session;
    this.lastRenewed = Date.now();
    this.lastPassed = this.lastRenewed;
    this.renewTimer = setTimeout(() => void this.renew(), renewMs);
    this.passTimer = setTimeout(() => void this.passCheck(), check.passMs);
    return session;
  }

  private async campaign(): Promise<void> {
    const { client, logger, key, candidate, retryMs, waitMs } = this.settings;
    let index = 0;
    let refused = false;
    while (!this.closed) {
      // Aborted when the session is lost: that request's failure is no error, the loop starts over.
      const { signal } = this.abort;
      try {
        let mine = this.session;
        if (!mine) {
          mine = await this.startSession();
          index = 0;
        }
        const res = await client.request('GET', this.kvPath, {
          allow404: true,
          ...(index > 0 && { query: { index: String(index), wait: formatGoDuration(waitMs) } }),
          timeoutMs: waitMs + 15_000,
          signal,
          what: `read election key ${key}`,
          permission: 'key:read',
        });
        if (this.closed || this.session !== mine) continue;
        // Consul's rule: an index that went backwards starts over from 0.
        index = (res.index ?? 0) >= index ? (res.index ?? 0) : 0;
        const holder =
          res.status === 404 ? undefined : (client.parse(res, 'read election key') as KvEntry[])[0]?.Session;
        if (this.failing) logger.info({ key }, 'Consul election answers again');
        this.failing = false;
        if (holder === mine.id) {
          this.leaderNode = mine.node;
          this.setLeading(true);
          continue;
        }
        // The key no longer names our session: we are not the leader, whatever comes next.
        this.setLeading(false);
        if (holder === undefined) {
          // Refused last time although free: a lock-delay (not ours, ours is 0s); give it time.
          if (refused) await this.pause(retryMs);
          const acquired = await client.request('PUT', this.kvPath, {
            query: { acquire: mine.id },
            body: { candidate },
            what: `acquire election key ${key}`,
            permission: 'key:write',
          });
          // Refused: usually another candidate was quicker. Read the key again at once, without blocking.
          refused = client.parse(acquired, 'acquire election key') !== true;
          if (refused) index = 0;
          continue;
        }
        refused = false;
        if (this.holderSeen?.id !== holder) this.holderSeen = { id: holder, node: await this.nodeOf(holder) };
        if (this.holderSeen.node !== undefined) this.leaderNode = this.holderSeen.node;
      } catch (err) {
        if (this.closed) break;
        if (signal.aborted) continue;
        if (!this.failing) logger.warn({ err, key }, `Consul election: ${(err as Error).message}; retrying`);
        this.failing = true;
        index = 0;
        // The failure may be our session's (an acquire with an invalidated session is a 500): check it now.
        if (this.session) await this.renew();
        await this.pause(retryMs);
      }
    }
  }

  async close(): Promise<void> {
    const { client, key, candidate, check } = this.settings;
    if (this.closed) return this.running;
    this.closed = true;
    clearTimeout(this.renewTimer);
    clearTimeout(this.passTimer);
    this.interrupt();
    await this.running;
    // A session the campaign created while we were closing armed its renewal after the clear above.
    clearTimeout(this.renewTimer);
    clearTimeout(this.passTimer);
    const mine = this.session;
    this.session = undefined;
    const wasLeading = this.leadingSubject.value;
    this.setLeading(false);
    this.leadingSubject.complete();
    try {
      if (!mine) return;
      // Resign: release the lock, so a follower blocked on the key acquires it at once, then end the session.
      if (wasLeading) {
        await client.request('PUT', this.kvPath, {
          query: { release: mine.id },
          body: { candidate },
          what: `release election key ${key}`,
          permission: 'key:write',
        });
      }
      await client.request('PUT', `/v1/session/destroy/${mine.id}`, {
        what: 'destroy election session',
        permission: 'session:write',
      });
    } finally {
      // Last, the session being gone: the candidate's service and check (a killed candidate's are reaped).
      if (this.everRegistered) {
        await client.request('PUT', `/v1/agent/service/deregister/${pathId(check.serviceId)}`, {
          allow404: true,
          what: `deregister election check ${this.checkId}`,
          permission: `service:write on ${check.serviceName}`,
        });
      }
    }
  }
}
