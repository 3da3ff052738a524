import { ConfigError, formatGoDuration, RegistryRejectedError, silentLogger } from '@registrar/core';
import type { LivenessLoss, Logger, Registry, RegistryEntry, RegistryEvent, Service } from '@registrar/core';
import { Subject } from 'rxjs';
import { agentUrl, ConsulClient } from './client.js';
import type { ConsulTlsOptions } from './client.js';
import { META_NODE, META_ROLE, buildDefinition, defKeyOf, fingerprintOf } from './definition.js';
import type { BuiltDefinition } from './definition.js';

export interface ConsulRegistryOptions {
  /** The node id whose services this adapter owns (recorded in each service's `registrar-node` meta). */
  nodeId: string;
  /** Agent HTTP API base URL. Default `http://127.0.0.1:8500`; `https://` for TLS. */
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
  /** Per-request timeout in milliseconds. Default 10000. */
  requestTimeoutMs?: number;
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
  Tags?: string[] | null;
  Meta?: Record<string, string> | null;
  Weights?: { Passing: number; Warning: number } | null;
  EnableTagOverride?: boolean;
}

interface AgentCheck {
  CheckID: string;
  Status: string;
  Output?: string;
  ServiceID?: string;
}

interface Known {
  defKey: string;
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
  const logger = options.logger ?? silentLogger;
  const ttl = options.ttl ?? 30;
  const refreshMs = (options.ttlRefresh ?? ttl / 3) * 1000;
  const deregisterAfter = options.deregisterAfter ?? 60;
  const healthTtl = options.healthTtl ?? 30 * 24 * 3600;
  const bridgeName = options.bridgeName ?? 'registrar';
  const bridgeId = `${bridgeName}:${nodeId}`;
  const bridgeCheckId = `service:${bridgeId}`;
  const settings = { nodeId, bridgeId, deregisterAfter, healthTtl };
  const client = new ConsulClient({
    baseUrl: agentUrl(options.url),
    timeoutMs: options.requestTimeoutMs ?? 10_000,
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

  const checkIdHealth = (id: string): string => `service:${id}:2`;

  const build = (service: Service, warn: boolean): BuiltDefinition => {
    const built = buildDefinition(service, settings);
    if (warn) {
      for (const w of built.warnings) {
        const key = `${service.container.name}\0${w.key}\0${w.message}`;
        if (warned.has(key)) continue;
        warned.add(key);
        logger.warn(
          { container: service.container.name, label: w.key, service: service.id },
          `container ${service.container.name}: ${w.key}: ${w.message}`,
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
        Meta: { [META_NODE]: nodeId, [META_ROLE]: 'bridge' },
        Check: {
          Name: 'registrar heartbeat',
          Notes: `Passed every ${formatGoDuration(refreshMs)} by the registrar bridge of node ${nodeId}`,
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

  const ensureBridge = (): Promise<void> => {
    bridge ??= registerBridge().then(
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

  const heartbeat = async (): Promise<void> => {
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
    mirrorsHealth: true,
    lost$: lost$.asObservable(),
    events$: events$.asObservable(),

    describeLiveness: () =>
      `TTL check of ${bridgeId}, ${ttl} s; services deregistered ${deregisterAfter} s after it goes critical (Consul raises this to at least 60 s)`,

    fingerprint(service: Service): string {
      const built = build(service, false);
      return fingerprintOf(built.defKey, built.health);
    },

    async register(service: Service): Promise<void> {
      if (service.id === bridgeId)
        throw new RegistryRejectedError(`service id ${bridgeId} is reserved for the bridge`, BACKEND);
      const built = build(service, true);
      await ensureBridge();
      const { status, output } = built.health;
      const k = known.get(service.id);
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
      known.set(service.id, { defKey: built.defKey, status, output, healthWrittenAt: Date.now() });
    },

    async deregister(id: string): Promise<void> {
      if (id === bridgeId) return;
      await client.request('PUT', `/v1/agent/service/deregister/${pathId(id)}`, {
        allow404: true,
        what: `deregister ${id}`,
      });
      known.delete(id);
    },

    async list(): Promise<RegistryEntry[]> {
      // Listing is adopting: the services a previous run left alias our bridge check, which expired with that
      // run. Revive it before reading, or an adoption with nothing to write leaves them critical until the
      // agent reaps them, behind the reconciler's back.
      if (!options.readOnly) await ensureBridge();
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
      for (const s of Object.values(services)) {
        const meta = s.Meta ?? {};
        if (meta[META_NODE] !== nodeId || s.ID === bridgeId || meta[META_ROLE] === 'bridge') continue;
        const defKey = defKeyOf({
          id: s.ID,
          name: s.Service,
          address: s.Address ?? '',
          port: s.Port ?? 0,
          tags: s.Tags ?? [],
          meta,
          weights: s.Weights,
          enableTagOverride: s.EnableTagOverride,
        });
        const check = checks[checkIdHealth(s.ID)];
        const health = { status: check?.Status ?? 'missing', output: check?.Output ?? '' };
        entries.push({ id: s.ID, name: s.Service, fingerprint: fingerprintOf(defKey, health) });
        known.set(s.ID, { defKey, ...health, healthWrittenAt: previous.get(s.ID)?.healthWrittenAt ?? now });
      }
      complete = true;
      return entries;
    },

    async close({ deregister = false } = {}): Promise<void> {
      closed = true;
      clearTimeout(timer);
      timer = undefined;
      try {
        if (deregister) {
          const owned = await registry.list();
          for (const entry of owned) await registry.deregister(entry.id);
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
