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
  const { client, logger, key, candidate, sessionTtlMs, renewMs, retryMs, waitMs, check } = settings;
  const kvPath = `/v1/kv/${pathKey(key)}`;
  const checkId = `service:${check.serviceId}`;
  const passPath = `/v1/agent/check/pass/${pathId(checkId)}`;
  // Whether the agent should know our check (registered, and no 404 since).
  let checkRegistered = false;
  let everRegistered = false;
  let lastPassed = 0;
  let passLogged = 0;
  let passTimer: NodeJS.Timeout | undefined;
  const leading$ = new BehaviorSubject(false);
  let session: Session | undefined;
  let lastRenewed = 0;
  let renewLogged = 0;
  let renewTimer: NodeJS.Timeout | undefined;
  let closed = false;
  // Cancels what the campaign waits for (a blocking read, a retry pause) when the session is lost or on close.
  let abort = new AbortController();
  // The node of the last lock holder seen: kept while the lock is free between two leaders.
  let leaderNode: string | undefined;
  let holderSeen: { id: string; node: string | undefined } | undefined;
  let failing = false;

  const setLeading = (now: boolean): void => {
    if (leading$.value !== now) leading$.next(now);
  };

  const interrupt = (): void => {
    abort.abort();
    abort = new AbortController();
  };

  const dropSession = (reason: string): void => {
    const lost = session;
    if (!lost) return;
    session = undefined;
    clearTimeout(renewTimer);
    renewTimer = undefined;
    clearTimeout(passTimer);
    passTimer = undefined;
    if (leading$.value) logger.warn({ key, candidate, reason }, `lost the Consul election lock: ${reason}`);
    setLeading(false);
    interrupt();
    // Best effort: a session we gave up on but Consul still holds would keep the lock until its TTL.
    void client
      .request('PUT', `/v1/session/destroy/${lost.id}`, { what: 'destroy lost session' })
      .catch(() => undefined);
  };

  const renew = async (): Promise<void> => {
    const current = session;
    if (!current || closed) return;
    try {
      const res = await client.request('PUT', `/v1/session/renew/${current.id}`, {
        allow404: true,
        what: 'renew election session',
        permission: 'session:write',
      });
      if (session !== current) return;
      if (res.status === 404) return dropSession('the session expired (Consul invalidated it)');
      lastRenewed = Date.now();
    } catch (err) {
      if (session !== current) return;
      // Once per streak: the renewal after the last success tells.
      if (lastRenewed >= renewLogged) {
        renewLogged = Date.now();
        logger.warn({ err, key }, `renewing the Consul election session failed: ${(err as Error).message}`);
      }
      // Past the TTL Consul may have invalidated it and elected another: at most one leader, so step down.
      if (Date.now() - lastRenewed >= sessionTtlMs)
        return dropSession('no renewal got through within the TTL');
    } finally {
      // Also called out of turn (after a failed campaign step): one timer, never two loops.
      clearTimeout(renewTimer);
      if (session === current && !closed) renewTimer = setTimeout(() => void renew(), renewMs);
    }
  };

  const registerCheck = async (): Promise<void> => {
    await client.request('PUT', '/v1/agent/service/register', {
      body: {
        ID: check.serviceId,
        Name: check.serviceName,
        Tags: [],
        Meta: check.meta,
        Check: {
          CheckID: checkId,
          Name: 'registrar election candidate',
          Notes: `Passed every ${formatGoDuration(check.passMs)} by candidate ${candidate} of ${key}; its election sessions end when this goes critical`,
          TTL: formatGoDuration(check.ttlMs),
          Status: 'passing',
          DeregisterCriticalServiceAfter: formatGoDuration(check.deregisterAfterMs),
        },
      },
      what: `register election check ${checkId}`,
      permission: `service:write on ${check.serviceName}`,
    });
    checkRegistered = true;
    everRegistered = true;
  };

  const passRequest = () =>
    client.request('PUT', passPath, {
      allow404: true,
      what: `pass election check ${checkId}`,
      permission: `service:write on ${check.serviceName}`,
    });

  /** Consul refuses a session whose check is missing or critical: register it, or pass it, first. */
  const readyCheck = async (): Promise<void> => {
    if (checkRegistered && (await passRequest()).status !== 404) return;
    // Never registered, or the agent forgot it (restarted without its state): a new check, passing.
    await registerCheck();
  };

  const passCheck = async (): Promise<void> => {
    const current = session;
    if (!current || closed) return;
    try {
      const res = await passRequest();
      if (session !== current) return;
      if (res.status === 404) {
        // Consul invalidates a session whose check was deregistered; the campaign registers it again.
        checkRegistered = false;
        return dropSession('the agent no longer knows the election check');
      }
      lastPassed = Date.now();
    } catch (err) {
      if (session !== current) return;
      if (lastPassed >= passLogged) {
        passLogged = Date.now();
        logger.warn({ err, key }, `passing the Consul election check failed: ${(err as Error).message}`);
      }
      // Past its TTL the check is critical and Consul invalidated the session: step down.
      if (Date.now() - lastPassed >= check.ttlMs)
        return dropSession('no pass of the election check got through within its TTL');
    } finally {
      clearTimeout(passTimer);
      if (session === current && !closed) passTimer = setTimeout(() => void passCheck(), check.passMs);
    }
  };

  const createSession = async (): Promise<Session> => {
    await readyCheck();
    const res = await client.request('PUT', '/v1/session/create', {
      body: {
        Name: `registrar election ${key} (${candidate})`,
        TTL: formatGoDuration(sessionTtlMs),
        LockDelay: '0s',
        Behavior: 'release',
        // `Checks` (rather than the newer NodeChecks/ServiceChecks) works with every Consul version; listing it
        // replaces the default, so serfHealth is named too.
        Checks: ['serfHealth', checkId],
      },
      what: 'create election session',
      permission: 'session:write',
    });
    const id = (client.parse(res, 'create election session') as { ID?: string }).ID;
    if (!id) throw new Error(`Consul answered session create without an ID: ${res.text.slice(0, 80)}`);
    const node = (await nodeOf(id)) ?? '';
    return { id, node };
  };

  const nodeOf = async (sessionId: string): Promise<string | undefined> => {
    const res = await client.request('GET', `/v1/session/info/${sessionId}`, {
      what: 'read election session',
      permission: 'session:read',
    });
    const [info] = client.parse(res, 'read election session') as { Node?: string }[];
    return info?.Node;
  };

  /** Pause `ms`, or less when interrupted. */
  const pause = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const { signal } = abort;
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done);
    });

  const campaign = async (): Promise<void> => {
    let index = 0;
    let refused = false;
    while (!closed) {
      // Aborted when the session is lost: that request's failure is no error, the loop starts over.
      const { signal } = abort;
      try {
        if (!session) {
          session = await createSession();
          lastRenewed = Date.now();
          lastPassed = lastRenewed;
          renewTimer = setTimeout(() => void renew(), renewMs);
          passTimer = setTimeout(() => void passCheck(), check.passMs);
          index = 0;
        }
        const mine = session;
        const res = await client.request('GET', kvPath, {
          allow404: true,
          ...(index > 0 && { query: { index: String(index), wait: formatGoDuration(waitMs) } }),
          timeoutMs: waitMs + 15_000,
          signal,
          what: `read election key ${key}`,
          permission: 'key:read',
        });
        if (closed || session !== mine) continue;
        // Consul's rule: an index that went backwards starts over from 0.
        index = (res.index ?? 0) >= index ? (res.index ?? 0) : 0;
        const holder =
          res.status === 404 ? undefined : (client.parse(res, 'read election key') as KvEntry[])[0]?.Session;
        if (failing) logger.info({ key }, 'Consul election answers again');
        failing = false;
        if (holder === mine.id) {
          leaderNode = mine.node;
          setLeading(true);
          continue;
        }
        // The key no longer names our session: we are not the leader, whatever comes next.
        setLeading(false);
        if (holder === undefined) {
          // Refused last time although free: a lock-delay (not ours, ours is 0s); give it time.
          if (refused) await pause(retryMs);
          const acquired = await client.request('PUT', kvPath, {
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
        if (holderSeen?.id !== holder) holderSeen = { id: holder, node: await nodeOf(holder) };
        if (holderSeen.node !== undefined) leaderNode = holderSeen.node;
      } catch (err) {
        if (closed) break;
        if (signal.aborted) continue;
        if (!failing) logger.warn({ err, key }, `Consul election: ${(err as Error).message}; retrying`);
        failing = true;
        index = 0;
        // The failure may be our session's (an acquire with an invalidated session is a 500): check it now.
        if (session) await renew();
        await pause(retryMs);
      }
    }
  };

  const running = campaign();

  return {
    leading$: leading$.asObservable(),
    get leading() {
      return leading$.value;
    },
    get leaderOnOurAgent() {
      return leading$.value || (leaderNode !== undefined && leaderNode === session?.node);
    },
    async close(): Promise<void> {
      if (closed) return running;
      closed = true;
      clearTimeout(renewTimer);
      clearTimeout(passTimer);
      interrupt();
      await running;
      // A session the campaign created while we were closing armed its renewal after the clear above.
      clearTimeout(renewTimer);
      clearTimeout(passTimer);
      const mine = session;
      session = undefined;
      const wasLeading = leading$.value;
      setLeading(false);
      leading$.complete();
      try {
        if (!mine) return;
        // Resign: release the lock, so a follower blocked on the key acquires it at once, then end the session.
        if (wasLeading) {
          await client.request('PUT', kvPath, {
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
        if (everRegistered) {
          await client.request('PUT', `/v1/agent/service/deregister/${pathId(check.serviceId)}`, {
            allow404: true,
            what: `deregister election check ${checkId}`,
            permission: `service:write on ${check.serviceName}`,
          });
        }
      }
    },
  };
}
