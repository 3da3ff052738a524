import { randomBytes } from 'node:crypto';
import { ConfigError, consoleLogger, NodeIdConflictError, RegistryRejectedError } from '@registrar/core';
import { endpointProblem, formatGoDuration, renamedOption } from '@registrar/core/kit';
import type {
  ElectionOptions,
  Leadership,
  LivenessLoss,
  Logger,
  Registry,
  RegistryEntry,
  RegistryEvent,
  Service,
  ServiceProblem,
} from '@registrar/core';
import { Subject } from 'rxjs';
import { agentOf, ConsulClient } from './client.js';
import type { ConsulTlsOptions } from './client.js';
import { createConsulElection } from './election.js';
import type { ConsulElection } from './election.js';
import {
  META_ENGINE,
  META_NODE,
  META_ROLE,
  buildDefinition,
  defKeyOf,
  dualStackOf,
  fingerprintOf,
} from './definition.js';
import type { BuiltDefinition } from './definition.js';

export interface ConsulRegistryOptions {
  /** The node id whose services this adapter owns (recorded in each service's `registrar-node` meta). */
  nodeId: string;
  /**
   * The Docker engine ID recorded in each service's `registrar-engine` meta (and the bridge service's), so
   * that a bridge of another host using the same node id on this agent never touches them.
   */
  engineId?: string;
  /**
   * The agent, as one `host:port` (port 8500, or 8501 with `tls`) or `http(s)://host:port`: services are
   * registered with one agent, the node's own. Default `127.0.0.1:8500`.
   */
  hosts?: readonly string[];
  /** @deprecated Renamed `hosts` (the same for every adapter): `url: u` is `hosts: [u]`. Goes in the next release. */
  url?: string | URL;
  /** ACL token sent as `X-Consul-Token`; never logged. */
  token?: string;
  /** CA and client certificate for `https://` agents. */
  tls?: ConsulTlsOptions;
  /** Consul Enterprise namespace and admin partition, passed as `?ns=` / `?partition=` on every call. */
  namespace?: string;
  partition?: string;
  /** Seconds the bridge's TTL check lives without a heartbeat. Default 30. */
  ttl?: number;
  /** Seconds between heartbeats. Default ttl/3. */
  ttlRefresh?: number;
  /**
   * Seconds a service stays registered after its liveness went critical (DeregisterCriticalServiceAfter).
   * Consul clamps it to at least 1m. Default 60.
   */
  deregisterAfter?: number;
  /**
   * Seconds of TTL on each service's "container health" check, whose status is set on health transitions.
   * Refreshed by the heartbeat loop when half of it has passed. Default 30 days.
   */
  healthTtl?: number;
  /** Name of the per-node bridge service. Default `registrar`. */
  bridgeName?: string;
  /**
   * Never write (`--dry-run`): `list()` does not register and pass the bridge service, so services a previous
   * run left are not kept alive either.
   */
  readOnly?: boolean;
  /**
   * Where `elect()` holds its lock: the key is `<electionPrefix><nodeId>`. Default `registrar/election/`.
   */
  electionPrefix?: string;
  /**
   * Seconds of TTL of the election's session (renewed every third of it). Default `ttl`, raised to Consul's
   * `session_ttl_min` of 10 s; lower only against an agent configured for it.
   */
  electionTtl?: number;
  /** Per-request timeout in milliseconds. Default 10000. */
  timeoutMs?: number;
  /** @deprecated Renamed `timeoutMs` (the same for every adapter); this name goes in the next release. */
  requestTimeoutMs?: number;
  /** Default: core's console logger (one line per event on standard error). */
  logger?: Logger;
  /** A ready HTTP client (`fetch`-compatible) to use instead of creating one; not closed by `close()`. */
  fetch?: (
    url: string,
    init: { method: string; headers: Record<string, string>; body?: string; signal: AbortSignal },
  ) => Promise<{ status: number; text(): Promise<string> }>;
}

interface AgentService {
  ID: string;
  Service: string;
  Address?: string;
  Port?: number;
  TaggedAddresses?: Record<string, { Address?: string; Port?: number } | null> | null;
  Tags?: string[] | null;
  Meta?: Record<string, string> | null;
  Weights?: { Passing: number; Warning: number } | null;
  EnableTagOverride?: boolean;
}

interface AgentCheck {
  CheckID: string;
  Notes?: string;
  Status: string;
  Output?: string;
  ServiceID?: string;
}

interface Known {
  defKey: string;
  /** The engine the agent's copy records, if any. */
  engine?: string | undefined;
  status: string;
  output: string;
  /** When the health check's TTL timer was last restarted by us. */
  healthWrittenAt: number;
}

const BACKEND = 'consul';

// IDs go into the path; `:` is legal there and keeps logs readable.
const pathId = (id: string): string => encodeURIComponent(id).replace(/%3A/gi, ':');

/**
 * Consul agent adapter. One bridge service per node carries a TTL check that this adapter passes every
 * `ttlRefresh`; each registered service has an alias check on it (with DeregisterCriticalServiceAfter) and a
 * check mirroring the container's Docker health. Heartbeat cost: one request per interval, whatever the
 * number of services.
 */
export function createConsulRegistry(options: ConsulRegistryOptions): Registry {
  const { nodeId } = options;
  if (!nodeId)
    throw new ConfigError('createConsulRegistry: nodeId is required; pass the node id to register as');
  const logger = options.logger ?? consoleLogger;
  const ttl = options.ttl ?? 30;
  const refreshMs = (options.ttlRefresh ?? ttl / 3) * 1000;
  const deregisterAfter = options.deregisterAfter ?? 60;
  const healthTtl = options.healthTtl ?? 30 * 24 * 3600;
  const bridgeName = options.bridgeName ?? 'registrar';
  const bridgeId = `${bridgeName}:${nodeId}`;
  const bridgeCheckId = `service:${bridgeId}`;
  const { engineId } = options;
  const settings = { nodeId, engineId, bridgeId, deregisterAfter, healthTtl };
  /** Recorded by another Docker engine under our node id: never ours to change or remove. */
  const foreign = (engine: string | undefined): engine is string =>
    engine !== undefined && engineId !== undefined && engine !== engineId;
  const client = new ConsulClient({
    baseUrl: agentOf('consul registry', options),
    timeoutMs: renamedOption<number>('consul registry', options, 'timeoutMs', 'requestTimeoutMs') ?? 10_000,
    ...(options.token !== undefined && { token: options.token }),
    ...(options.tls !== undefined && { tls: options.tls }),
    ...(options.namespace !== undefined && { namespace: options.namespace }),
    ...(options.partition !== undefined && { partition: options.partition }),
    ...(options.fetch !== undefined && { fetch: options.fetch }),
  });
  const lost$ = new Subject<LivenessLoss>();
  // Every failed TTL pass; then `recovered` at the next pass, or `liveness-lost` if the agent forgot us.
  const events$ = new Subject<RegistryEvent>();
  // What we believe the agent holds for our services; `complete` when it was read in full by list().
  const known = new Map<string, Known>();
  let complete = false;
  const warned = new Set<string>();
  let bridge: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  let heartbeatFailing = false;
  // The election joined by elect(), if any: while it does not lead, this adapter writes nothing.
  let election: ConsulElection | undefined;
  // Names everything a successor must agree on to adopt the bridge check as it is (the agent returns no TTL).
  const bridgeNotes = `Passed every ${formatGoDuration(refreshMs)} by the registrar bridge of node ${nodeId}; TTL ${formatGoDuration(ttl * 1000)}, deregistered ${formatGoDuration(deregisterAfter * 1000)} after it goes critical`;

  const checkIdHealth = (id: string): string => `service:${id}:2`;

  const build = (service: Service, warn: boolean): BuiltDefinition => {
    const built = buildDefinition(service, settings);
    if (warn) {
      // A library record with a problem never gets here (check() refused it): these are a container's labels.
      const container = service.container?.name ?? service.id;
      for (const w of built.warnings) {
        const key = `${container}\0${w.key}\0${w.message}`;
        if (warned.has(key)) continue;
        warned.add(key);
        logger.warn(
          { container, label: w.key, service: service.id },
          `container ${container}: ${w.key}: ${w.message}`,
        );
      }
    }
    return built;
  };

  const registerBridge = async (): Promise<void> => {
    await client.request('PUT', '/v1/agent/service/register', {
      what: `register bridge service ${bridgeId}`,
      body: {
        ID: bridgeId,
        Name: bridgeName,
        Tags: [],
        Meta: {
          [META_NODE]: nodeId,
          ...(engineId !== undefined && { [META_ENGINE]: engineId }),
          [META_ROLE]: 'bridge',
        },
        Check: {
          Name: 'registrar heartbeat',
          Notes: bridgeNotes,
          TTL: formatGoDuration(ttl * 1000),
          Status: 'passing',
          DeregisterCriticalServiceAfter: formatGoDuration(deregisterAfter * 1000),
        },
      },
      query: { 'replace-existing-checks': 'true' },
    });
    // A re-registered check keeps its previous status (it may have expired while we were down): pass it now.
    await client.request('PUT', `/v1/agent/check/pass/${pathId(bridgeCheckId)}`, {
      what: `pass ${bridgeCheckId}`,
    });
  };

  /**
   * A successor adopting the previous leader's bridge service (same node id, same agent, same definition):
   * passing its check is all it takes; registering it again would be a write for nothing.
   */
  const adoptBridge = async (): Promise<void> => {
    const res = await client.request('PUT', `/v1/agent/check/pass/${pathId(bridgeCheckId)}`, {
      allow404: true,
      what: `pass ${bridgeCheckId}`,
    });
    if (res.status === 404) await registerBridge();
  };

  const ensureBridge = (adopt = false): Promise<void> => {
    bridge ??= (adopt ? adoptBridge() : registerBridge()).then(
      () => {
        logger.info({ bridge: bridgeId, target: client.target }, 'registered Consul bridge service');
        schedule();
      },
      (err: unknown) => {
        bridge = undefined;
        throw err;
      },
    );
    return bridge;
  };

  const schedule = (): void => {
    if (closed || timer) return;
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
  const followerPass = async (): Promise<void> => {
    if (!election?.leaderOnOurAgent) return;
    try {
      await client.request('PUT', `/v1/agent/check/pass/${pathId(bridgeCheckId)}`, {
        allow404: true,
        what: `heartbeat ${bridgeCheckId} (following)`,
      });
    } catch (err) {
      logger.debug({ err, bridge: bridgeId }, 'Consul heartbeat while following failed');
    }
  };

  const heartbeat = async (): Promise<void> => {
    // Until it has listed (adopted) as leader, even the elected one only passes the check.
    if (election && !(election.leading && bridge)) return followerPass();
    try {
      const res = await client.request('PUT', `/v1/agent/check/pass/${pathId(bridgeCheckId)}`, {
        allow404: true,
        what: `heartbeat ${bridgeCheckId}`,
      });
      if (closed) return;
      if (res.status === 404) {
        // The agent forgot our bridge (restart without state, or it reaped us): assume it forgot everything.
        known.clear();
        complete = false;
        await registerBridge();
        logger.warn({ bridge: bridgeId }, 'Consul agent lost the bridge service; re-registered it');
        const reason = `Consul agent at ${client.target} no longer knew ${bridgeId} (agent restarted or reaped it)`;
        events$.next({ type: 'liveness-lost', reason });
        lost$.next({ reason });
      } else {
        if (heartbeatFailing) events$.next({ type: 'recovered' });
        await refreshHealthChecks();
      }
      if (heartbeatFailing) logger.info({ bridge: bridgeId }, 'Consul heartbeat recovered');
      heartbeatFailing = false;
    } catch (err) {
      // Log the first failure of a streak only; the next tick retries.
      if (!heartbeatFailing)
        logger.error({ err, bridge: bridgeId }, `Consul heartbeat failed: ${(err as Error).message}`);
      heartbeatFailing = true;
      events$.next({ type: 'heartbeat-failed', error: err });
    }
  };

  const updateHealth = async (id: string, status: string, output: string): Promise<boolean> => {
    const res = await client.request('PUT', `/v1/agent/check/update/${pathId(checkIdHealth(id))}`, {
      body: { Status: status, Output: output },
      allow404: true,
      what: `update health of ${id}`,
    });
    return res.status !== 404;
  };

  /** Restart health TTL timers that are half gone: amortized, practically never within one interval. */
  const refreshHealthChecks = async (): Promise<void> => {
    const due = Date.now() - (healthTtl * 1000) / 2;
    for (const [id, k] of known) {
      if (k.healthWrittenAt > due || closed) continue;
      if (await updateHealth(id, k.status, k.output)) k.healthWrittenAt = Date.now();
    }
  };

  /** `statusSet`: the agent ends up with the wanted health without a check update. */
  const fullRegister = async (built: BuiltDefinition, statusSet: boolean): Promise<void> => {
    const { registration, health } = built;
    await client.request('PUT', '/v1/agent/service/register', {
      body: registration,
      query: { 'replace-existing-checks': 'true' },
      what: `register ${registration.ID}`,
    });
    if (!statusSet) await updateHealth(registration.ID, health.status, health.output);
  };

  const registry: Registry = {
    backend: BACKEND,
    target: client.target,
    nodeId,
    ...(engineId !== undefined && { engineId }),
    mirrorsHealth: true,
    lost$: lost$.asObservable(),
    events$: events$.asObservable(),

    describeLiveness: () =>
      `TTL check of ${bridgeId}, ${ttl} s; services deregistered ${deregisterAfter} s after it goes critical (Consul raises this to at least 60 s)`,

    check(service: Service): ServiceProblem | undefined {
      const endpoint = endpointProblem(service);
      if (endpoint || service.container) return endpoint;
      if (service.id === bridgeId) return { field: 'id', message: `id ${bridgeId} is the bridge service's` };
      // A container's labels are adapted with a warning; a record given to registerService is refused instead.
      const [warning] = buildDefinition(service, settings).warnings;
      return warning && { field: warning.field, message: warning.message };
    },

    fingerprint(service: Service): string {
      const built = build(service, false);
      return fingerprintOf(built.defKey, built.health);
    },

    async register(service: Service): Promise<void> {
      const unusable = endpointProblem(service);
      if (unusable) throw new RegistryRejectedError(`service ${service.id}: ${unusable.message}`, BACKEND);
      if (service.id === bridgeId)
        throw new RegistryRejectedError(`service id ${bridgeId} is reserved for the bridge`, BACKEND);
      const k = known.get(service.id);
      // As of our last list: a service registered since by the other engine is not seen until the next one.
      if (foreign(k?.engine)) {
        throw new NodeIdConflictError(client.target, nodeId, k.engine, BACKEND, service.id);
      }
      const built = build(service, true);
      await ensureBridge();
      const { status, output } = built.health;
      let done = false;
      if (k && k.defKey === built.defKey && (k.status !== status || k.output !== output)) {
        // Only the health moved: one check update, no re-registration (watches on the service stay quiet).
        done = await updateHealth(service.id, status, output);
      }
      // A new service gets its status from the registration; an existing one keeps the status the agent holds,
      // which needs an update only when it differs. A registration carries no output, so any output is set.
      const fresh = complete && !k;
      const unchanged = k !== undefined && k.status === status && k.output === '';
      if (!done) await fullRegister(built, (fresh || unchanged) && output === '');
      known.set(service.id, {
        defKey: built.defKey,
        engine: engineId,
        status,
        output,
        healthWrittenAt: Date.now(),
      });
    },

    async deregister(id: string): Promise<void> {
      if (id === bridgeId || foreign(known.get(id)?.engine)) return;
      await client.request('PUT', `/v1/agent/service/deregister/${pathId(id)}`, {
        allow404: true,
        what: `deregister ${id}`,
      });
      known.delete(id);
    },

    async list(): Promise<RegistryEntry[]> {
      const [servicesRes, checksRes] = await Promise.all([
        client.request('GET', '/v1/agent/services', { what: 'list services' }),
        client.request('GET', '/v1/agent/checks', { what: 'list checks' }),
      ]);
      const services = client.parse(servicesRes, 'list services') as Record<string, AgentService>;
      const checks = client.parse(checksRes, 'list checks') as Record<string, AgentCheck>;
      const entries: RegistryEntry[] = [];
      const now = Date.now();
      const previous = new Map(known);
      known.clear();
      complete = false;
      // Another host with our node id on this agent: its bridge service, even with no services yet.
      const bridgeEngine = services[bridgeId]?.Meta?.[META_ENGINE];
      if (foreign(bridgeEngine))
        throw new NodeIdConflictError(client.target, nodeId, bridgeEngine, BACKEND, bridgeId);
      for (const s of Object.values(services)) {
        const meta = s.Meta ?? {};
        // Neither the bridge nor the election candidates' own services (see elect()) are entries.
        const role = meta[META_ROLE];
        if (meta[META_NODE] !== nodeId || s.ID === bridgeId || role === 'bridge' || role === 'election')
          continue;
        const defKey = defKeyOf({
          id: s.ID,
          name: s.Service,
          address: s.Address ?? '',
          port: s.Port ?? 0,
          dualStack: dualStackOf(s.TaggedAddresses),
          tags: s.Tags ?? [],
          meta,
          weights: s.Weights,
          enableTagOverride: s.EnableTagOverride,
        });
        const check = checks[checkIdHealth(s.ID)];
        const health = { status: check?.Status ?? 'missing', output: check?.Output ?? '' };
        const engine = meta[META_ENGINE];
        entries.push({
          id: s.ID,
          name: s.Service,
          fingerprint: fingerprintOf(defKey, health),
          ...(engine !== undefined && { engine }),
        });
        known.set(s.ID, {
          defKey,
          engine,
          ...health,
          healthWrittenAt: previous.get(s.ID)?.healthWrittenAt ?? now,
        });
      }
      // Listing is adopting: the services a previous run left alias our bridge check, which expired with that
      // run. Revive it, or an adoption with nothing to write leaves them critical until the agent reaps them,
      // behind the reconciler's back. Not when another engine's services are among them: reviving would keep
      // theirs alive.
      // A follower never writes, not even the bridge.
      const writer = !options.readOnly && (election === undefined || election.leading);
      if (writer && !entries.some((entry) => foreign(entry.engine))) {
        const adoptable =
          election !== undefined &&
          services[bridgeId] !== undefined &&
          checks[bridgeCheckId]?.Notes === bridgeNotes;
        await ensureBridge(adoptable);
      }
      complete = true;
      return entries;
    },

    elect({ candidate }: ElectionOptions): Leadership {
      if (options.readOnly)
        throw new ConfigError(
          'a read-only (dry-run) Consul registry cannot join an election: it writes nothing',
        );
      if (election) throw new ConfigError(`this Consul registry already joined the election of ${nodeId}`);
      const sessionTtlMs = (options.electionTtl ?? Math.max(ttl, 10)) * 1000;
      election = createConsulElection({
        client,
        logger,
        key: `${options.electionPrefix ?? 'registrar/election/'}${nodeId}`,
        candidate,
        sessionTtlMs,
        renewMs: sessionTtlMs / 3,
        retryMs: Math.min(1000, sessionTtlMs / 3),
        waitMs: 60_000,
        // A service of this process alone (a restarted candidate must not keep its predecessor's session), whose
        // TTL check, like the bridge's, lives `ttl` and is passed every `ttlRefresh`.
        check: {
          serviceId: `${bridgeName}-election:${nodeId}:${candidate}:${randomBytes(4).toString('hex')}`,
          serviceName: `${bridgeName}-election`,
          meta: {
            [META_NODE]: nodeId,
            ...(engineId !== undefined && { [META_ENGINE]: engineId }),
            [META_ROLE]: 'election',
          },
          ttlMs: ttl * 1000,
          passMs: refreshMs,
          deregisterAfterMs: deregisterAfter * 1000,
        },
      });
      // Followers heartbeat too (see followerPass).
      schedule();
      return election;
    },

    async close({ deregister = false } = {}): Promise<void> {
      closed = true;
      clearTimeout(timer);
      timer = undefined;
      // Resign first (the bridge does it itself before closing; this covers a library user who does not).
      await election?.close().catch((err: unknown) => {
        logger.warn({ err }, `leaving the Consul election failed: ${(err as Error).message}`);
      });
      try {
        if (deregister) {
          // Another engine's bridge service under our node id: nothing here is ours to remove.
          const owned = await registry.list().catch((error: unknown) => {
            if (error instanceof NodeIdConflictError) return undefined;
            throw error;
          });
          for (const entry of owned ?? []) if (!foreign(entry.engine)) await registry.deregister(entry.id);
          if (owned !== undefined)
            await client.request('PUT', `/v1/agent/service/deregister/${pathId(bridgeId)}`, {
              allow404: true,
              what: `deregister bridge ${bridgeId}`,
            });
        }
      } finally {
        lost$.complete();
        events$.complete();
        await client.close();
      }
    },
  };
  return registry;
}
