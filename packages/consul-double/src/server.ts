import { randomUUID } from 'node:crypto';
import { createServer as createHttpServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { AgentState, STATUSES } from './agent.js';
import type { CheckDefinition, CheckRecord, CheckStatus, ServiceRecord } from './agent.js';
import {
  BadRequest,
  decodeCheckRegistration,
  decodeCheckUpdate,
  decodeServiceRegistration,
  decodeSessionCreate,
} from './decode.js';
import { KvStore } from './kv.js';
import type { KvEntry, SessionRecord } from './kv.js';
import { formatGoDuration, formatHostPort, parseGoDuration } from '@registrar/core/kit';

export interface ConsulDoubleOptions {
  /** TCP port; 0 (the default) picks a free one. */
  port?: number;
  /** Listen address, default 127.0.0.1. */
  host?: string;
  /** When set, ACLs are enforced with default deny and this is the only (management) token. */
  aclToken?: string;
  /** How often the reaper runs (Consul: 30s). */
  reapIntervalMs?: number;
  /** Lower clamp of DeregisterCriticalServiceAfter (Consul: 1m). */
  minDeregisterAfterMs?: number;
  nodeName?: string;
  datacenter?: string;
  /**
   * Accept script and Docker checks (`Args`) from the HTTP API, as `enable_script_checks = true` does. Off by
   * default, like Consul: such a registration is answered 500 `Scripts are disabled on this agent from remote
   * calls; …`.
   */
  enableScriptChecks?: boolean;
  /** Shortest session TTL accepted (Consul's `session_ttl_min`: 10s). */
  sessionTtlMinMs?: number;
  /**
   * A session with a TTL is invalidated this many TTLs after its last renewal. Consul's servers arm their timer
   * with TTL × 2 (the TTL is a lower bound; "up to twice the TTL"), which is the default here too.
   */
  sessionTtlMultiplier?: number;
  /** Serve HTTPS; with `ca` and `requestCert` clients must present a certificate signed by it. */
  tls?: { key: string | Buffer; cert: string | Buffer; ca?: string | Buffer; requestCert?: boolean };
}

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly query: string;
  readonly at: number;
}

export interface ConsulDouble {
  /** Base URL, e.g. `http://127.0.0.1:8500`. */
  readonly url: string;
  readonly port: number;
  /** Every request received, in order (tests count heartbeats with it). */
  readonly requests: RecordedRequest[];
  countRequests(filter?: (request: RecordedRequest) => boolean): number;
  clearRequests(): void;
  /** Force a check's status, as a failing probe would. Throws for an unknown check. */
  setCheckStatus(checkId: string, status: CheckStatus, output?: string): void;
  /**
   * The check as the agent decoded it from the registration (durations in ms): what it would run. The API never
   * returns this (`Definition` is empty for service checks), so tests read it here. Undefined for unknown ids.
   */
  checkDefinition(checkId: string): CheckDefinition | undefined;
  /**
   * Someone else wrote these tags to the catalog and anti-entropy ran: a service registered with
   * `EnableTagOverride: true` now shows them on the agent too; any other keeps its own. Returns whether the
   * service took them. Throws for an unknown service.
   */
  overrideCatalogTags(serviceId: string, tags: readonly string[]): boolean;
  /** Invalidate a session now, as its TTL running out or a failed check would. Returns false for unknown ids. */
  invalidateSession(id: string): boolean;
  /** Run the reaper now instead of waiting for its period. */
  reap(): void;
  /**
   * With ACLs on: the management token is now `token` (a token deleted and another created, as an operator
   * does): requests with the old one get 403 `ACL not found` until it is set back.
   */
  setAclToken(token: string): void;
  /** Stop and start again on the same port; with `loseState` every service and check is forgotten. */
  restart(options?: { loseState?: boolean }): Promise<void>;
  /** Stop listening (clients get connection refused) but keep every service and check, until `start`. */
  stop(): Promise<void>;
  /** Listen again on the same port after `stop`. */
  start(): Promise<void>;
  close(): Promise<void>;
}

const MAX_WAIT = 600_000;
const DEFAULT_WAIT = 300_000;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  /** `management`, `anonymous` (ACLs on, no token) or `open` (ACLs off). */
  identity: 'management' | 'anonymous' | 'open';
}

export async function startConsulDouble(given: ConsulDoubleOptions = {}): Promise<ConsulDouble> {
  // A copy: `setAclToken` changes the token of this double only.
  const options = { ...given };
  const host = options.host ?? '127.0.0.1';
  const nodeName = options.nodeName ?? 'consul-double';
  const datacenter = options.datacenter ?? 'dc1';
  const nodeId = randomUUID();
  const agent = new AgentState({
    nodeName,
    reapIntervalMs: options.reapIntervalMs ?? 30_000,
    minDeregisterAfterMs: options.minDeregisterAfterMs ?? 60_000,
    // The agent syncs a critical (or deregistered) check at once; the servers drop the sessions listing it.
    onCheckFailed: (checkId) => void kv.invalidateSessionsOf(checkId),
  });
  const requests: RecordedRequest[] = [];
  // Server-side state: kept across agent restarts, with or without `loseState`.
  const kv = new KvStore({
    nextIndex: () => agent.nextIndex(),
    notify: () => agent.notify(),
    sessionTtlMultiplier: options.sessionTtlMultiplier ?? 2,
  });
  const sessionTtlMinMs = options.sessionTtlMinMs ?? 10_000;
  const SESSION_TTL_MAX = 86_400_000;
  // Consul caps lock-delay at 60 s.
  const LOCK_DELAY_MAX = 60_000;
  const KV_VALUE_MAX = 512 * 1024;

  const nodeJson = () => ({
    ID: nodeId,
    Node: nodeName,
    Address: host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host,
    Datacenter: datacenter,
    TaggedAddresses: { lan: host, wan: host },
    Meta: { 'consul-network-segment': '' },
    CreateIndex: 5,
    ModifyIndex: 5,
  });

  const scope = (r: { namespace?: string; partition?: string }) => ({
    ...(r.namespace !== undefined && { Namespace: r.namespace }),
    ...(r.partition !== undefined && { Partition: r.partition }),
  });
  const inScope = (ctx: Ctx, r: { namespace?: string; partition?: string }): boolean =>
    (r.namespace ?? 'default') === (ctx.url.searchParams.get('ns') || 'default') &&
    (r.partition ?? 'default') === (ctx.url.searchParams.get('partition') || 'default');

  const agentServiceJson = (s: ServiceRecord) => ({
    ID: s.id,
    Service: s.name,
    Tags: s.tags,
    Meta: s.meta,
    Port: s.port,
    Address: s.address,
    // Consul leaves an empty map out (omitempty).
    ...(Object.keys(s.taggedAddresses).length > 0 && { TaggedAddresses: s.taggedAddresses }),
    Weights: s.weights,
    EnableTagOverride: s.enableTagOverride,
    Datacenter: datacenter,
    ...scope(s),
  });
  const checkJson = (c: CheckRecord) => ({
    Node: nodeName,
    CheckID: c.id,
    Name: c.name,
    Status: c.status,
    Notes: c.notes,
    Output: c.output,
    ServiceID: c.serviceId,
    ServiceName: c.serviceName,
    ServiceTags: c.serviceTags,
    Type: c.type,
    Interval: c.def.intervalMs !== undefined ? formatGoDuration(c.def.intervalMs) : '',
    Timeout: c.def.timeoutMs !== undefined ? formatGoDuration(c.def.timeoutMs) : '',
    ExposedPort: 0,
    Definition: {},
    CreateIndex: c.createIndex,
    ModifyIndex: c.modifyIndex,
    ...scope(c),
  });
  const serfHealth = () => ({
    Node: nodeName,
    CheckID: 'serfHealth',
    Name: 'Serf Health Status',
    Status: 'passing',
    Notes: '',
    Output: 'Agent alive and reachable',
    ServiceID: '',
    ServiceName: '',
    ServiceTags: [],
    Type: '',
    Definition: {},
    CreateIndex: 5,
    ModifyIndex: 5,
  });
  const healthServiceJson = (s: ServiceRecord) => ({
    Kind: '',
    ID: s.id,
    Service: s.name,
    Tags: s.tags,
    Address: s.address,
    ...(Object.keys(s.taggedAddresses).length > 0 && { TaggedAddresses: s.taggedAddresses }),
    Meta: s.meta,
    Port: s.port,
    Weights: s.weights,
    EnableTagOverride: s.enableTagOverride,
    CreateIndex: s.createIndex,
    ModifyIndex: s.modifyIndex,
    ...scope(s),
  });
  // A service's health includes the node's checks (serfHealth and any registered without a ServiceID).
  const checksOf = (serviceId: string) =>
    [...agent.checks.values()].filter((c) => c.serviceId === serviceId || c.serviceId === '');

  const send = (ctx: Ctx, status: number, body: unknown, index?: number): void => {
    const headers: Record<string, string> = { 'Content-Type': 'application/json' };
    if (index !== undefined) {
      headers['X-Consul-Index'] = String(Math.max(index, 1));
      headers['X-Consul-KnownLeader'] = 'true';
      headers['X-Consul-LastContact'] = '0';
    }
    ctx.res.writeHead(status, headers);
    ctx.res.end(body === undefined ? '' : JSON.stringify(body));
  };

  const readBytes = (req: IncomingMessage): Promise<Buffer> =>
    new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => resolve(Buffer.concat(chunks)));
      req.on('error', reject);
    });
  const readBody = async (req: IncomingMessage): Promise<string> => (await readBytes(req)).toString('utf8');

  const sessionJson = (s: SessionRecord) => ({
    ID: s.id,
    Name: s.name,
    Node: s.node,
    // A Go time.Duration: nanoseconds.
    LockDelay: s.lockDelayMs * 1e6,
    Behavior: s.behavior,
    TTL: s.ttlMs > 0 ? formatGoDuration(s.ttlMs) : '',
    NodeChecks: s.checks,
    ServiceChecks: null,
    CreateIndex: s.createIndex,
    ModifyIndex: s.modifyIndex,
  });
  const kvJson = (e: KvEntry) => ({
    LockIndex: e.lockIndex,
    Key: e.key,
    Flags: e.flags,
    // Go encodes an empty []byte as null.
    Value: e.value.length > 0 ? e.value.toString('base64') : null,
    ...(e.session !== undefined && { Session: e.session }),
    CreateIndex: e.createIndex,
    ModifyIndex: e.modifyIndex,
  });

  /** Blocking query: hold the request until `indexOf()` passes `?index=` or `?wait=` runs out. */
  const block = async (ctx: Ctx, indexOf: () => number): Promise<number> => {
    const wanted = Number(ctx.url.searchParams.get('index') ?? '0');
    if (!Number.isFinite(wanted) || wanted <= 0 || indexOf() > wanted) return indexOf();
    let waitMs = DEFAULT_WAIT;
    const waitParam = ctx.url.searchParams.get('wait');
    if (waitParam) {
      try {
        waitMs = parseGoDuration(waitParam);
      } catch (err) {
        throw new HttpError(400, `Invalid wait time: ${(err as Error).message}`);
      }
    }
    waitMs = Math.min(Math.max(waitMs, 0), MAX_WAIT);
    const deadline = Date.now() + waitMs;
    let closed = false;
    ctx.res.once('close', () => (closed = true));
    while (!closed && indexOf() <= wanted && Date.now() < deadline) {
      const change = agent.waitForChange();
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, deadline - Date.now())));
      const onClose = () => change.cancel();
      ctx.res.once('close', onClose);
      await Promise.race([change.promise, timeout]);
      clearTimeout(timer);
      change.cancel();
      ctx.res.off('close', onClose);
    }
    return indexOf();
  };

  const requireWrite = (ctx: Ctx, serviceName: string): void => {
    if (ctx.identity === 'anonymous') {
      throw new HttpError(
        403,
        `Permission denied: anonymous token lacks permission 'service:write' on ${JSON.stringify(serviceName)}. The anonymous token is used implicitly when a request does not specify a token.`,
      );
    }
  };
  const requirePermission = (ctx: Ctx, permission: string, on: string): void => {
    if (ctx.identity === 'anonymous') {
      throw new HttpError(
        403,
        `Permission denied: anonymous token lacks permission '${permission}' on ${JSON.stringify(on)}. The anonymous token is used implicitly when a request does not specify a token.`,
      );
    }
  };
  // Default-deny ACLs filter reads down to nothing for the anonymous token.
  const canRead = (ctx: Ctx): boolean => ctx.identity !== 'anonymous';

  const ttlUpdate = (ctx: Ctx, checkId: string, status: CheckStatus, output: string): void => {
    const check = agent.checks.get(checkId);
    if (!check) {
      throw new HttpError(
        404,
        `Unknown check ID ${JSON.stringify(checkId)}. Ensure that the check ID is passed, not the check name.`,
      );
    }
    if (check.serviceId) requireWrite(ctx, check.serviceName);
    else requirePermission(ctx, 'node:write', nodeName);
    const result = agent.updateTtl(checkId, status, output);
    if (result === 'not-ttl')
      throw new HttpError(500, `CheckID ${JSON.stringify(checkId)} does not have associated TTL`);
    send(ctx, 200, undefined);
  };

  const route = async (ctx: Ctx): Promise<void> => {
    const { req, url } = ctx;
    const path = url.pathname;
    const method = req.method ?? 'GET';
    const rest = (prefix: string): string | undefined =>
      path.startsWith(prefix) && path.length > prefix.length
        ? decodeURIComponent(path.slice(prefix.length))
        : undefined;
    const only = (...methods: string[]): void => {
      if (!methods.includes(method)) throw new HttpError(405, `method ${method} not allowed`);
    };

    if (path === '/v1/status/leader') {
      only('GET');
      return send(ctx, 200, `${nodeJson().Address}:8300`);
    }
    if (path === '/v1/status/peers') {
      only('GET');
      return send(ctx, 200, [`${nodeJson().Address}:8300`]);
    }
    if (path === '/v1/agent/self') {
      only('GET');
      if (!canRead(ctx))
        throw new HttpError(403, "Permission denied: anonymous token lacks permission 'agent:read'");
      return send(ctx, 200, {
        Config: {
          Datacenter: datacenter,
          NodeName: nodeName,
          NodeID: nodeId,
          Server: true,
          Version: '1.19.0-double',
        },
        Member: { Name: nodeName, Addr: nodeJson().Address, Port: 8301, Status: 1 },
        Meta: {},
        Stats: {},
      });
    }
    if (path === '/v1/agent/services') {
      only('GET');
      const out: Record<string, unknown> = {};
      if (canRead(ctx)) {
        for (const s of agent.services.values()) if (inScope(ctx, s)) out[s.id] = agentServiceJson(s);
      }
      return send(ctx, 200, out);
    }
    if (path === '/v1/agent/checks') {
      only('GET');
      const out: Record<string, unknown> = {};
      if (canRead(ctx)) {
        for (const c of agent.checks.values()) if (inScope(ctx, c)) out[c.id] = checkJson(c);
      }
      return send(ctx, 200, out);
    }
    if (path === '/v1/agent/service/register') {
      only('PUT');
      const def = decodeServiceRegistration(await readBody(req));
      const ns = url.searchParams.get('ns');
      const partition = url.searchParams.get('partition');
      if (ns && def.namespace === undefined) def.namespace = ns;
      if (partition && def.partition === undefined) def.partition = partition;
      requireWrite(ctx, def.name);
      // Consul checks this when it adds the checks, after every validation (a plain error: 500).
      if (!options.enableScriptChecks && def.checks.some((c) => c.args && c.args.length > 0)) {
        throw new HttpError(
          500,
          "Scripts are disabled on this agent from remote calls; to enable, configure 'enable_script_checks' to true",
        );
      }
      const replace = url.searchParams.get('replace-existing-checks');
      agent.registerService(def, replace !== null && replace !== 'false' && replace !== '0');
      return send(ctx, 200, undefined);
    }
    const deregisterId = rest('/v1/agent/service/deregister/');
    if (deregisterId !== undefined) {
      only('PUT');
      const service = agent.services.get(deregisterId);
      if (!service) {
        throw new HttpError(
          404,
          `Unknown service ID ${JSON.stringify(deregisterId)}. Ensure that the service ID is passed, not the service name.`,
        );
      }
      requireWrite(ctx, service.name);
      agent.deregisterService(deregisterId);
      return send(ctx, 200, undefined);
    }
    const serviceId = rest('/v1/agent/service/');
    if (serviceId !== undefined) {
      only('GET');
      const s = agent.services.get(serviceId);
      if (!s || !canRead(ctx) || !inScope(ctx, s))
        throw new HttpError(404, `unknown service ID: ${serviceId}`);
      return send(ctx, 200, { ...agentServiceJson(s), ContentHash: String(s.modifyIndex) });
    }
    if (path === '/v1/agent/check/register') {
      only('PUT');
      const registration = decodeCheckRegistration(await readBody(req));
      if (registration.serviceId) {
        const service = agent.services.get(registration.serviceId);
        if (!service)
          throw new HttpError(400, `ServiceID ${JSON.stringify(registration.serviceId)} does not exist`);
        requireWrite(ctx, service.name);
      } else {
        requirePermission(ctx, 'node:write', nodeName);
      }
      if (!options.enableScriptChecks && registration.def.args && registration.def.args.length > 0) {
        throw new HttpError(
          500,
          "Scripts are disabled on this agent from remote calls; to enable, configure 'enable_script_checks' to true",
        );
      }
      agent.registerCheck(registration.def, registration.id, registration.serviceId);
      return send(ctx, 200, undefined);
    }
    const checkDeregisterId = rest('/v1/agent/check/deregister/');
    if (checkDeregisterId !== undefined) {
      only('PUT');
      const check = agent.checks.get(checkDeregisterId);
      if (!check) {
        throw new HttpError(
          404,
          `Unknown check ID ${JSON.stringify(checkDeregisterId)}. Ensure that the check ID is passed, not the check name.`,
        );
      }
      if (check.serviceId) requireWrite(ctx, check.serviceName);
      else requirePermission(ctx, 'node:write', nodeName);
      agent.deregisterCheck(checkDeregisterId);
      return send(ctx, 200, undefined);
    }
    for (const [verb, status] of [
      ['pass', 'passing'],
      ['warn', 'warning'],
      ['fail', 'critical'],
    ] as const) {
      const checkId = rest(`/v1/agent/check/${verb}/`);
      if (checkId !== undefined) {
        only('PUT');
        return ttlUpdate(ctx, checkId, status, url.searchParams.get('note') ?? '');
      }
    }
    const updateId = rest('/v1/agent/check/update/');
    if (updateId !== undefined) {
      only('PUT');
      const update = decodeCheckUpdate(await readBody(req));
      if (!STATUSES.includes(update.status as CheckStatus)) {
        throw new HttpError(400, `Invalid check status: '${update.status}'`);
      }
      return ttlUpdate(ctx, updateId, update.status as CheckStatus, update.output);
    }
    const healthName = rest('/v1/health/service/');
    if (healthName !== undefined) {
      only('GET');
      const index = await block(ctx, () => agent.indexForName(healthName));
      const passingOnly = url.searchParams.has('passing') && url.searchParams.get('passing') !== 'false';
      const tags = url.searchParams.getAll('tag');
      const entries = !canRead(ctx)
        ? []
        : [...agent.services.values()]
            .filter((s) => s.name === healthName && inScope(ctx, s) && tags.every((t) => s.tags.includes(t)))
            .map((s) => ({
              Node: nodeJson(),
              Service: healthServiceJson(s),
              Checks: [serfHealth(), ...checksOf(s.id).map(checkJson)],
            }))
            .filter((e) => !passingOnly || e.Checks.every((c) => c.Status === 'passing'));
      return send(ctx, 200, entries, index);
    }
    const healthChecksName = rest('/v1/health/checks/');
    if (healthChecksName !== undefined) {
      only('GET');
      const index = await block(ctx, () => agent.indexForName(healthChecksName));
      const checks = !canRead(ctx)
        ? []
        : [...agent.checks.values()]
            .filter((c) => c.serviceName === healthChecksName && inScope(ctx, c))
            .map(checkJson);
      return send(ctx, 200, checks, index);
    }
    if (path === '/v1/catalog/services') {
      only('GET');
      const index = await block(ctx, () => agent.indexForCatalog());
      const out: Record<string, string[]> = { consul: [] };
      if (canRead(ctx)) {
        for (const s of agent.services.values()) {
          if (!inScope(ctx, s)) continue;
          out[s.name] = [...new Set([...(out[s.name] ?? []), ...s.tags])];
        }
      }
      return send(ctx, 200, out, index);
    }
    const catalogName = rest('/v1/catalog/service/');
    if (catalogName !== undefined) {
      only('GET');
      const index = await block(ctx, () => agent.indexForName(catalogName));
      const node = nodeJson();
      const out = !canRead(ctx)
        ? []
        : [...agent.services.values()]
            .filter((s) => s.name === catalogName && inScope(ctx, s))
            .map((s) => ({
              ID: node.ID,
              Node: node.Node,
              Address: node.Address,
              Datacenter: datacenter,
              TaggedAddresses: node.TaggedAddresses,
              NodeMeta: node.Meta,
              ServiceKind: '',
              ServiceID: s.id,
              ServiceName: s.name,
              ServiceTags: s.tags,
              ServiceAddress: s.address,
              ...(Object.keys(s.taggedAddresses).length > 0 && {
                ServiceTaggedAddresses: s.taggedAddresses,
              }),
              ServiceWeights: s.weights,
              ServiceMeta: s.meta,
              ServicePort: s.port,
              ServiceEnableTagOverride: s.enableTagOverride,
              CreateIndex: s.createIndex,
              ModifyIndex: s.modifyIndex,
              ...scope(s),
            }));
      return send(ctx, 200, out, index);
    }
    if (path.startsWith('/v1/session/')) return sessionRoute(ctx, rest, only);
    const key = rest('/v1/kv/');
    if (key !== undefined) return kvRoute(ctx, method, key);
    throw new HttpError(404, '');
  };

  const sessionRoute = async (
    ctx: Ctx,
    rest: (prefix: string) => string | undefined,
    only: (...methods: string[]) => void,
  ): Promise<void> => {
    const { url } = ctx;
    if (url.pathname === '/v1/session/create') {
      only('PUT');
      const def = decodeSessionCreate(await readBody(ctx.req));
      const node = def.node ?? nodeName;
      requirePermission(ctx, 'session:write', node);
      if (def.behavior !== 'release' && def.behavior !== 'delete')
        throw new HttpError(500, `Invalid Behavior setting '${def.behavior}'`);
      if (def.ttlMs !== 0 && (def.ttlMs < sessionTtlMinMs || def.ttlMs > SESSION_TTL_MAX)) {
        throw new HttpError(
          400,
          `Invalid Session TTL '${def.ttl}', must be between [${formatGoDuration(sessionTtlMinMs)}=${formatGoDuration(SESSION_TTL_MAX)}]`,
        );
      }
      if (node !== nodeName) throw new HttpError(500, `Failed to create session: unknown node '${node}'`);
      // No checks given: the node's serfHealth, always passing here. Named checks (of the node or of a service)
      // must exist and not be critical at creation; one turning critical later invalidates the session.
      const checks = def.checks ?? ['serfHealth'];
      for (const id of checks) {
        if (id === 'serfHealth') continue;
        const check = agent.checks.get(id);
        if (!check) throw new HttpError(500, `Missing check '${id}' registration`);
        if (check.status === 'critical') throw new HttpError(500, `Check '${id}' is in critical state`);
      }
      const session = kv.createSession({
        name: def.name,
        node,
        behavior: def.behavior,
        ttlMs: def.ttlMs,
        lockDelayMs: Math.min(Math.max(def.lockDelayMs ?? 15_000, 0), LOCK_DELAY_MAX),
        checks,
      });
      return send(ctx, 200, { ID: session.id });
    }
    const renewId = rest('/v1/session/renew/');
    if (renewId !== undefined) {
      only('PUT');
      requirePermission(ctx, 'session:write', nodeName);
      const session = kv.renewSession(renewId);
      if (!session) throw new HttpError(404, `Session id '${renewId}' not found`);
      return send(ctx, 200, [sessionJson(session)], kv.sessionIndex);
    }
    const destroyId = rest('/v1/session/destroy/');
    if (destroyId !== undefined) {
      only('PUT');
      requirePermission(ctx, 'session:write', nodeName);
      // Destroying an unknown session succeeds too.
      kv.destroySession(destroyId);
      return send(ctx, 200, true);
    }
    const infoId = rest('/v1/session/info/');
    if (infoId !== undefined || url.pathname === '/v1/session/list') {
      only('GET');
      const index = await block(ctx, () => kv.sessionIndex);
      const sessions = !canRead(ctx)
        ? []
        : infoId !== undefined
          ? [kv.sessions.get(infoId)].filter((s) => s !== undefined)
          : [...kv.sessions.values()];
      // Unknown: an empty list, not a 404.
      return send(ctx, 200, sessions.map(sessionJson), index);
    }
    throw new HttpError(404, '');
  };

  const kvRoute = async (ctx: Ctx, method: string, key: string): Promise<void> => {
    const params = ctx.url.searchParams;
    const flag = (name: string): boolean => params.has(name) && params.get(name) !== 'false';
    const uint = (name: string): number | undefined => {
      const raw = params.get(name);
      if (raw === null) return undefined;
      if (!/^\d+$/.test(raw)) throw new HttpError(400, `Invalid ${name} index: ${JSON.stringify(raw)}`);
      return Number(raw);
    };
    if (method === 'GET') {
      requirePermission(ctx, 'key:read', key);
      const recurse = flag('recurse');
      const index = await block(ctx, () =>
        recurse ? kv.kvIndex : (kv.entries.get(key)?.modifyIndex ?? kv.kvIndex),
      );
      const found = recurse
        ? [...kv.entries.values()]
            .filter((e) => e.key.startsWith(key))
            .sort((a, b) => (a.key < b.key ? -1 : 1))
        : [kv.entries.get(key)].filter((e) => e !== undefined);
      if (found.length === 0) return send(ctx, 404, undefined, index);
      if (flag('raw') && !recurse) {
        ctx.res.writeHead(200, {
          'Content-Type': 'application/octet-stream',
          'X-Consul-Index': String(index),
        });
        ctx.res.end(found[0].value);
        return;
      }
      return send(ctx, 200, found.map(kvJson), index);
    }
    if (method === 'PUT') {
      const value = await readBytes(ctx.req);
      requirePermission(ctx, 'key:write', key);
      if (value.length > KV_VALUE_MAX)
        throw new HttpError(
          413,
          `Request body(${value.length} bytes) too large, max size: ${KV_VALUE_MAX} bytes.`,
        );
      const flags = uint('flags') ?? 0;
      const acquire = params.get('acquire');
      const release = params.get('release');
      if (acquire !== null) {
        if (!kv.sessions.has(acquire)) throw new HttpError(500, `invalid session ${JSON.stringify(acquire)}`);
        return send(ctx, 200, kv.acquire(key, value, flags, acquire));
      }
      if (release !== null) return send(ctx, 200, kv.release(key, value, flags, release));
      return send(ctx, 200, kv.put(key, value, flags, uint('cas')));
    }
    if (method === 'DELETE') {
      requirePermission(ctx, 'key:write', key);
      return send(ctx, 200, kv.delete(key, flag('recurse'), uint('cas')));
    }
    throw new HttpError(405, `method ${method} not allowed`);
  };

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://double');
    let path = url.pathname;
    try {
      path = decodeURIComponent(path);
    } catch {
      // Keep the raw path; routing answers 404 for it anyway.
    }
    requests.push({ method: req.method ?? 'GET', path, query: url.search, at: Date.now() });
    const bearer = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    const header = req.headers['x-consul-token'];
    const token =
      (typeof header === 'string' ? header : undefined) || url.searchParams.get('token') || bearer || '';
    let identity: Ctx['identity'] = 'open';
    if (options.aclToken !== undefined) {
      identity = token === '' ? 'anonymous' : token === options.aclToken ? 'management' : 'anonymous';
    }
    const ctx: Ctx = { req, res, url, identity };
    const fail = (err: unknown): void => {
      const status = err instanceof HttpError ? err.status : err instanceof BadRequest ? 400 : 500;
      const message = err instanceof Error ? err.message : String(err);
      if (!res.headersSent) res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end(message);
    };
    // An unknown token is rejected outright, before anything else is looked at.
    if (options.aclToken !== undefined && token !== '' && token !== options.aclToken) {
      fail(new HttpError(403, 'ACL not found'));
      return;
    }
    route(ctx).catch(fail);
  };

  let server: Server;
  let port = options.port ?? 0;
  const listen = async (): Promise<void> => {
    server = options.tls
      ? createHttpsServer(
          {
            key: options.tls.key,
            cert: options.tls.cert,
            ...(options.tls.ca !== undefined && { ca: options.tls.ca }),
            requestCert: options.tls.requestCert ?? false,
            rejectUnauthorized: options.tls.requestCert ?? false,
          },
          handler,
        )
      : createHttpServer(handler);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    port = (server.address() as AddressInfo).port;
  };
  const stop = (): Promise<void> =>
    new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });

  await listen();
  return {
    url: `${options.tls ? 'https' : 'http'}://${formatHostPort({ host, port })}`,
    port,
    requests,
    countRequests: (filter) => (filter ? requests.filter(filter).length : requests.length),
    clearRequests: () => void requests.splice(0),
    setCheckStatus: (checkId, status, output = '') => {
      if (!agent.setStatus(checkId, status, output)) throw new Error(`unknown check ${checkId}`);
    },
    checkDefinition: (checkId) => {
      const def = agent.checks.get(checkId)?.def;
      return def && structuredClone(def);
    },
    overrideCatalogTags: (serviceId, tags) => {
      if (!agent.services.has(serviceId)) throw new Error(`unknown service ${serviceId}`);
      return agent.adoptCatalogTags(serviceId, tags);
    },
    invalidateSession: (id) => kv.destroySession(id),
    reap: () => agent.reap(),
    setAclToken: (token) => {
      if (options.aclToken === undefined) throw new Error('setAclToken: the double was started without ACLs');
      options.aclToken = token;
    },
    restart: async ({ loseState = false } = {}) => {
      await stop();
      if (loseState) agent.clear();
      await listen();
    },
    stop,
    start: listen,
    close: async () => {
      kv.close();
      agent.close();
      await stop();
    },
  };
}
