/**
 * The registry's liveness: one bridge service per node whose TTL check this adapter passes every
 * `refreshMs`; each registered service aliases it (see `definition.ts`), so one request per interval keeps
 * them all alive, whatever their number. An agent that forgot the bridge forgot our services too: that is
 * reported on `lost$`.
 */
import type { LivenessLoss, Logger, RegistryEvent } from '@registrar/core';
import { formatGoDuration } from '@registrar/core/kit';
import { Subject } from 'rxjs';
import { pathId, type ConsulClient } from './client.js';
import { META_ENGINE, META_NODE, META_ROLE } from './definition.js';
import type { ConsulElection } from './election.js';

export interface BridgeCheckOptions {
  readonly client: ConsulClient;
  readonly logger: Logger;
  readonly nodeId: string;
  readonly engineId: string | undefined;
  /** Name of the bridge service; its id is `<bridgeName>:<nodeId>`. */
  readonly bridgeName: string;
  /** Seconds the check lives without a pass. */
  readonly ttl: number;
  readonly refreshMs: number;
  /** Seconds a service stays registered after the check went critical. */
  readonly deregisterAfter: number;
  /** The election joined, if any: while it does not lead, the check is only passed, never registered. */
  readonly election: () => ConsulElection | undefined;
  /** The agent forgot the bridge, hence every service of ours: called before the bridge is registered again. */
  readonly forgotten: () => void;
  /** After each pass of a writer's heartbeat (not a follower's): what else rides on the interval. */
  readonly passed: () => Promise<void>;
}

export interface BridgeCheck {
  readonly id: string;
  readonly checkId: string;
  /** Names everything a successor must agree on to adopt the check as it is (the agent returns no TTL). */
  readonly notes: string;
  readonly lost$: Subject<LivenessLoss>;
  /** Every failed pass; then `recovered` at the next pass, or `liveness-lost` if the agent forgot us. */
  readonly events$: Subject<RegistryEvent>;
  /** Register the bridge (or, `adopt`, pass the check a predecessor left) once, and start the heartbeat. */
  ensure(adopt?: boolean): Promise<void>;
  /** Start the heartbeat without registering (an election's follower keeps the leader's check alive). */
  start(): void;
  /** No pass from now on; `close` then completes the streams. */
  stop(): void;
  close(): void;
}

export function createBridgeCheck(options: BridgeCheckOptions): BridgeCheck {
  const { client, logger, nodeId, engineId, bridgeName, ttl, refreshMs, deregisterAfter } = options;
  const id = `${bridgeName}:${nodeId}`;
  const checkId = `service:${id}`;
  const notes = `Passed every ${formatGoDuration(refreshMs)} by the registrar bridge of node ${nodeId}; TTL ${formatGoDuration(ttl * 1000)}, deregistered ${formatGoDuration(deregisterAfter * 1000)} after it goes critical`;
  const lost$ = new Subject<LivenessLoss>();
  const events$ = new Subject<RegistryEvent>();
  let registered: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let failing = false;

  const pass = (what: string, allow404: boolean) =>
    client.request('PUT', `/v1/agent/check/pass/${pathId(checkId)}`, {
      ...(allow404 && { allow404 }),
      what,
    });

  const register = async (): Promise<void> => {
    await client.request('PUT', '/v1/agent/service/register', {
      what: `register bridge service ${id}`,
      body: {
        ID: id,
        Name: bridgeName,
        Tags: [],
        Meta: {
          [META_NODE]: nodeId,
          ...(engineId !== undefined && { [META_ENGINE]: engineId }),
          [META_ROLE]: 'bridge',
        },
        Check: {
          Name: 'registrar heartbeat',
          Notes: notes,
          TTL: formatGoDuration(ttl * 1000),
          Status: 'passing',
          DeregisterCriticalServiceAfter: formatGoDuration(deregisterAfter * 1000),
        },
      },
      query: { 'replace-existing-checks': 'true' },
    });
    // A re-registered check keeps its previous status (it may have expired while we were down): pass it now.
    await pass(`pass ${checkId}`, false);
  };

  /**
   * A successor adopting the previous leader's bridge service (same node id, same agent, same definition):
   * passing its check is all it takes; registering it again would be a write for nothing.
   */
  const adopt = async (): Promise<void> => {
    const res = await pass(`pass ${checkId}`, true);
    if (res.status === 404) await register();
  };

  const ensure = (adopting = false): Promise<void> => {
    registered ??= (adopting ? adopt() : register()).then(
      () => {
        logger.info({ bridge: id, target: client.target }, 'registered Consul bridge service');
        schedule();
      },
      (err: unknown) => {
        registered = undefined;
        throw err;
      },
    );
    return registered;
  };

  const schedule = (): void => {
    if (stopped || timer) return;
    timer = setTimeout(() => {
      timer = undefined;
      void heartbeat().finally(schedule);
    }, refreshMs);
  };

  /**
   * A candidate that does not lead keeps the leader's services alive, as etcd's candidates keep the shared
   * lease alive: one pass of the bridge check per interval, only when the leader's session is bound to the
   * same agent (else that agent's bridge service is a stale one of ours, left to expire). A 404 is the
   * leader's business (it re-registers); nothing is written and nothing reported.
   */
  const followerPass = async (election: ConsulElection): Promise<void> => {
    if (!election.leaderOnOurAgent) return;
    try {
      await pass(`heartbeat ${checkId} (following)`, true);
    } catch (err) {
      logger.debug({ err, bridge: id }, 'Consul heartbeat while following failed');
    }
  };

  const heartbeat = async (): Promise<void> => {
    const election = options.election();
    // Until it has listed (adopted) as leader, even the elected one only passes the check.
    if (election && !(election.leading && registered)) return followerPass(election);
    try {
      const res = await pass(`heartbeat ${checkId}`, true);
      if (stopped) return;
      if (res.status === 404) {
        // The agent forgot our bridge (restart without state, or it reaped us): assume it forgot everything.
        options.forgotten();
        await register();
        logger.warn({ bridge: id }, 'Consul agent lost the bridge service; re-registered it');
        const reason = `Consul agent at ${client.target} no longer knew ${id} (agent restarted or reaped it)`;
        events$.next({ type: 'liveness-lost', reason });
        lost$.next({ reason });
      } else {
        if (failing) events$.next({ type: 'recovered' });
        await options.passed();
      }
      if (failing) logger.info({ bridge: id }, 'Consul heartbeat recovered');
      failing = false;
    } catch (err) {
      // Log the first failure of a streak only; the next tick retries.
      if (!failing) logger.error({ err, bridge: id }, `Consul heartbeat failed: ${(err as Error).message}`);
      failing = true;
      events$.next({ type: 'heartbeat-failed', error: err });
    }
  };

  return {
    id,
    checkId,
    notes,
    lost$,
    events$,
    ensure,
    start: schedule,
    stop() {
      stopped = true;
      clearTimeout(timer);
      timer = undefined;
    },
    close() {
      lost$.complete();
      events$.complete();
    },
  };
}
