import { randomBytes } from 'node:crypto';
import { ConfigError, consoleLogger, NodeIdConflictError, RegistryRejectedError } from '@registrar/core';
import { endpointProblem, renamedOption } from '@registrar/core/kit';
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
import type { Observable } from 'rxjs';
import { agentOf, ConsulClient, pathId } from './client.js';
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
import { createBridgeCheck, type BridgeCheck } from './liveness.js';

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

const checkIdHealth = (id: string): string => `service:${id}:2`;

/** One service of ours as the agent holds it. */
interface AgentEntry {
  readonly id: string;
  readonly name: string;
  readonly defKey: string;
  readonly health: { readonly status: string; readonly output: string };
  readonly engine: string | undefined;
}

/** The services `nodeId` owns among the agent's, with their health check's status. */
function agentEntries(
  services: Record<string, AgentService>,
  checks: Record<string, AgentCheck>,
  nodeId: string,
  bridgeId: string,
): AgentEntry[] {
  const entries: AgentEntry[] = [];
  for (const s of Object.values(services)) {
    const meta = s.Meta ?? {};
    // Neither the bridge nor the election candidates' own services (see elect()) are entries.
    const role = meta[META_ROLE];
    if (meta[META_NODE] !== nodeId || s.ID === bridgeId || role === 'bridge' || role === 'election') continue;
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
    entries.push({ id: s.ID, name: s.Service, defKey, health, engine: meta[META_ENGINE] });
  }
  return entries;
}

/** The agent client the options describe. */
function agentClient(options: ConsulRegistryOptions): ConsulClient {
  return new ConsulClient({
    baseUrl: agentOf('consul registry', options),
    timeoutMs: renamedOption<number>('consul registry', options, 'timeoutMs', 'requestTimeoutMs') ?? 10_000,
    ...(options.token !== undefined && { token: options.token }),
    ...(options.tls !== undefined && { tls: options.tls }),
    ...(options.namespace !== undefined && { namespace: options.namespace }),
    ...(options.partition !== undefined && { partition: options.partition }),
    ...(options.fetch !== undefined && { fetch: options.fetch }),
  });
}

/**
 * Consul agent adapter. One bridge service per node carries a TTL check that this adapter passes every
 * `ttlRefresh` (see `liveness.ts`); each registered service has an alias check on it (with
 * DeregisterCriticalServiceAfter) and a check mirroring the container's Docker health. Heartbeat cost: one
 * request per interval, whatever the number of services.
 */
class ConsulRegistry implements Registry {
  readonly backend = BACKEND;
  readonly mirrorsHealth = true;
  readonly target: string;
  readonly nodeId: string;
  readonly engineId?: string;
  readonly lost$: Observable<LivenessLoss>;
  readonly events$: Observable<RegistryEvent>;

  private readonly client: ConsulClient;
  private readonly logger: Logger;
  private readonly ttl: number;
  private readonly refreshMs: number;
  private readonly deregisterAfter: number;
  private readonly healthTtl: number;
  private readonly bridgeName: string;
  private readonly bridgeId: string;
  private readonly settings: Parameters<typeof buildDefinition>[1];
  private readonly bridge: BridgeCheck;
  /** What we believe the agent holds for our services; `complete` when it was read in full by list(). */
  private readonly known = new Map<string, Known>();
  private complete = false;
  /** Label warnings logged already: each once per container. */
  private readonly warned = new Set<string>();
  private closed = false;
  /** The election joined by elect(), if any: while it does not lead, this adapter writes nothing. */
  private election: ConsulElection | undefined;

  constructor(private readonly options: ConsulRegistryOptions) {
    const { nodeId, engineId } = options;
    if (!nodeId)
      throw new ConfigError('createConsulRegistry: nodeId is required; pass the node id to register as');
    this.nodeId = nodeId;
    if (engineId !== undefined) this.engineId = engineId;
    this.logger = options.logger ?? consoleLogger;
    this.ttl = options.ttl ?? 30;
    this.refreshMs = (options.ttlRefresh ?? this.ttl / 3) * 1000;
    this.deregisterAfter = options.deregisterAfter ?? 60;
    this.healthTtl = options.healthTtl ?? 30 * 24 * 3600;
    this.bridgeName = options.bridgeName ?? 'registrar';
    this.bridgeId = `${this.bridgeName}:${nodeId}`;
    const { bridgeId, deregisterAfter, healthTtl } = this;
    this.settings = { nodeId, engineId, bridgeId, deregisterAfter, healthTtl };
    this.client = agentClient(options);
    this.target = this.client.target;
    this.bridge = createBridgeCheck({
      client: this.client,
      logger: this.logger,
      nodeId,
      engineId,
      bridgeName: this.bridgeName,
      ttl: this.ttl,
      refreshMs: this.refreshMs,
      deregisterAfter,
      election: () => this.election,
      forgotten: () => {
        this.known.clear();
        this.complete = false;
      },
      passed: () => this.refreshHealthChecks(),
    });
    this.lost$ = this.bridge.lost$.asObservable();
    this.events$ = this.bridge.events$.asObservable();
  }

  /** Recorded by another Docker engine under our node id: never ours to change or remove. */
  private foreign(engine: string | undefined): engine is string {
    return engine !== undefined && this.engineId !== undefined && engine !== this.engineId;
  }

  private build(service: Service, warn: boolean): BuiltDefinition {
    const built = buildDefinition(service, this.settings);
    if (warn) {
      // A library record with a problem never gets here (check() refused it): these are a container's labels.
      const container = service.container?.name ?? service.id;
      for (const w of built.warnings) {
        const key = `${container}\0${w.key}\0${w.message}`;
        if (this.warned.has(key)) continue;
        this.warned.add(key);
        this.logger.warn(
          { container, label: w.key, service: service.id },
          `container ${container}: ${w.key}: ${w.message}`,
        );
      }
    }
    return built;
  }

  private async updateHealth(id: string, status: string, output: string): Promise<boolean> {
    const res = await this.client.request('PUT', `/v1/agent/check/update/${pathId(checkIdHealth(id))}`, {
      body: { Status: status, Output: output },
      allow404: true,
      what: `update health of ${id}`,
    });
    return res.status !== 404;
  }

  /** Restart health TTL timers that are half gone: amortized, practically never within one interval. */
  private async refreshHealthChecks(): Promise<void> {
    const due = Date.now() - (this.healthTtl * 1000) / 2;
    for (const [id, k] of this.known) {
      if (k.healthWrittenAt > due || this.closed) continue;
      if (await this.updateHealth(id, k.status, k.output)) k.healthWrittenAt = Date.now();
    }
  }

  /** `statusSet`: the agent ends up with the wanted health without a check update. */
  private async fullRegister(built: BuiltDefinition, statusSet: boolean): Promise<void> {
    const { registration, health } = built;
    await this.client.request('PUT', '/v1/agent/service/register', {
      body: registration,
      query: { 'replace-existing-checks': 'true' },
      what: `register ${registration.ID}`,
    });
    if (!statusSet) await this.updateHealth(registration.ID, health.status, health.output);
  }

  describeLiveness(): string {
    return `TTL check of ${this.bridgeId}, ${this.ttl} s; services deregistered ${this.deregisterAfter} s after it goes critical (Consul raises this to at least 60 s)`;
  }

  check(service: Service): ServiceProblem | undefined {
    const { bridgeId } = this;
    const endpoint = endpointProblem(service);
    if (endpoint || service.container) return endpoint;
    if (service.id === bridgeId) return { field: 'id', message: `id ${bridgeId} is the bridge service's` };
    // A container's labels are adapted with a warning; a record given to registerService is refused instead.
    const [warning] = buildDefinition(service, this.settings).warnings;
    return warning && { field: warning.field, message: warning.message };
  }

  fingerprint(service: Service): string {
    const built = this.build(service, false);
    return fingerprintOf(built.defKey, built.health);
  }

  async register(service: Service): Promise<void> {
    const { bridgeId } = this;
    const unusable = endpointProblem(service);
    if (unusable) throw new RegistryRejectedError(`service ${service.id}: ${unusable.message}`, BACKEND);
    if (service.id === bridgeId)
      throw new RegistryRejectedError(`service id ${bridgeId} is reserved for the bridge`, BACKEND);
    const k = this.known.get(service.id);
    // As of our last list: a service registered since by the other engine is not seen until the next one.
    if (this.foreign(k?.engine)) {
      throw new NodeIdConflictError(this.target, this.nodeId, k.engine, BACKEND, service.id);
    }
    const built = this.build(service, true);
    await this.bridge.ensure();
    const { status, output } = built.health;
    let done = false;
    if (k && k.defKey === built.defKey && (k.status !== status || k.output !== output)) {
      // Only the health moved: one check update, no re-registration (watches on the service stay quiet).
      done = await this.updateHealth(service.id, status, output);
    }
    // A new service gets its status from the registration; an existing one keeps the status the agent holds,
    // which needs an update only when it differs. A registration carries no output, so any output is set.
    const fresh = this.complete && !k;
    const unchanged = k !== undefined && k.status === status && k.output === '';
    if (!done) await this.fullRegister(built, (fresh || unchanged) && output === '');
    this.known.set(service.id, {
      defKey: built.defKey,
      engine: this.engineId,
      status,
      output,
      healthWrittenAt: Date.now(),
    });
  }

  async deregister(id: string): Promise<void> {
    if (id === this.bridgeId || this.foreign(this.known.get(id)?.engine)) return;
    await this.client.request('PUT', `/v1/agent/service/deregister/${pathId(id)}`, {
      allow404: true,
      what: `deregister ${id}`,
    });
    this.known.delete(id);
  }

  /** What the agent holds of ours: services and checks in one read. */
  private async readAgent(): Promise<{
    services: Record<string, AgentService>;
    checks: Record<string, AgentCheck>;
  }> {
    const { client } = this;
    const [servicesRes, checksRes] = await Promise.all([
      client.request('GET', '/v1/agent/services', { what: 'list services' }),
      client.request('GET', '/v1/agent/checks', { what: 'list checks' }),
    ]);
    return {
      services: client.parse(servicesRes, 'list services') as Record<string, AgentService>,
      checks: client.parse(checksRes, 'list checks') as Record<string, AgentCheck>,
    };
  }

  async list(): Promise<RegistryEntry[]> {
    const { known, bridgeId, bridge, election } = this;
    let { services, checks } = await this.readAgent();
    this.complete = false;
    // Another host with our node id on this agent: its bridge service, even with no services yet.
    const bridgeEngine = services[bridgeId]?.Meta?.[META_ENGINE];
    if (this.foreign(bridgeEngine))
      throw new NodeIdConflictError(this.target, this.nodeId, bridgeEngine, BACKEND, bridgeId);
    let found = agentEntries(services, checks, this.nodeId, bridgeId);
    // Listing is adopting: the services a previous run left alias our bridge check, which expired with that
    // run. Revive it, or an adoption with nothing to write leaves them critical until the agent reaps them,
    // behind the reconciler's back. Not when another engine's services are among them: reviving would keep
    // theirs alive.
    // A follower never writes, not even the bridge.
    const writer = !this.options.readOnly && (election === undefined || election.leading);
    if (writer && !found.some((entry) => this.foreign(entry.engine))) {
      const adoptable =
        election !== undefined &&
        services[bridgeId] !== undefined &&
        checks[bridge.checkId]?.Notes === bridge.notes;
      const expired = checks[bridge.checkId]?.Status !== 'passing';
      await bridge.ensure(adoptable);
      // Until the revival the agent's reaper was free to remove services whose check had been critical long
      // enough: what was read before it may be gone. Read again, or those count as adopted and stay missing.
      if (expired && found.length > 0) {
        ({ services, checks } = await this.readAgent());
        found = agentEntries(services, checks, this.nodeId, bridgeId);
      }
    }
    const now = Date.now();
    const previous = new Map(known);
    known.clear();
    for (const { id, defKey, engine, health } of found) {
      known.set(id, { defKey, engine, ...health, healthWrittenAt: previous.get(id)?.healthWrittenAt ?? now });
    }
    this.complete = true;
    return found.map(({ id, name, defKey, health, engine }) => ({
      id,
      name,
      fingerprint: fingerprintOf(defKey, health),
      ...(engine !== undefined && { engine }),
    }));
  }

  elect({ candidate }: ElectionOptions): Leadership {
    const { options, nodeId, engineId, ttl, bridgeName } = this;
    if (options.readOnly)
      throw new ConfigError(
        'a read-only (dry-run) Consul registry cannot join an election: it writes nothing',
      );
    if (this.election) throw new ConfigError(`this Consul registry already joined the election of ${nodeId}`);
    const sessionTtlMs = (options.electionTtl ?? Math.max(ttl, 10)) * 1000;
    this.election = createConsulElection({
      client: this.client,
      logger: this.logger,
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
        passMs: this.refreshMs,
        deregisterAfterMs: this.deregisterAfter * 1000,
      },
    });
    // Followers heartbeat too (see liveness.ts).
    this.bridge.start();
    return this.election;
  }

  async close({ deregister = false } = {}): Promise<void> {
    this.closed = true;
    this.bridge.stop();
    // Resign first (the bridge does it itself before closing; this covers a library user who does not).
    await this.election?.close().catch((err: unknown) => {
      this.logger.warn({ err }, `leaving the Consul election failed: ${(err as Error).message}`);
    });
    try {
      if (deregister) {
        // Another engine's bridge service under our node id: nothing here is ours to remove.
        const owned = await this.list().catch((error: unknown) => {
          if (error instanceof NodeIdConflictError) return undefined;
          throw error;
        });
        for (const entry of owned ?? []) if (!this.foreign(entry.engine)) await this.deregister(entry.id);
        if (owned !== undefined)
          await this.client.request('PUT', `/v1/agent/service/deregister/${pathId(this.bridgeId)}`, {
            allow404: true,
            what: `deregister bridge ${this.bridgeId}`,
          });
      }
    } finally {
      this.bridge.close();
      await this.client.close();
    }
  }
}

/** A registry adapter for a Consul agent (see `ConsulRegistry`). */
export function createConsulRegistry(options: ConsulRegistryOptions): Registry {
  return new ConsulRegistry(options);
}
