import { randomUUID } from 'node:crypto';
import { createServer as createHttpServer } from 'node:http';
import type { RequestListener, Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { formatHostPort } from '@registrar/core/kit';
import { AgentState } from './agent.js';
import type { CheckStatus, CheckDefinition } from './agent.js';
import type { DoubleContext, NodeIdentity, RecordedRequest } from './context.js';
import { KvStore } from './kv.js';
import { createHandler } from './router.js';

export type { RecordedRequest } from './context.js';

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
  /**
   * Called with each request before the agent handles it: a test makes something happen at an exact point of a
   * client's sequence (the reaper running between a client's read and its next write, say).
   */
  onRequest?: (request: RecordedRequest) => void;
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

/** The node this agent is; a wildcard listen address is reached on loopback. */
function nodeIdentity(options: ConsulDoubleOptions, host: string): NodeIdentity {
  return {
    id: randomUUID(),
    name: options.nodeName ?? 'consul-double',
    datacenter: options.datacenter ?? 'dc1',
    host,
    address: host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host,
  };
}

/** The agent and the server-side store, wired to each other, with the options the routes read. */
function createContext(options: ConsulDoubleOptions, node: NodeIdentity): DoubleContext {
  const agent = new AgentState({
    nodeName: node.name,
    reapIntervalMs: options.reapIntervalMs ?? 30_000,
    minDeregisterAfterMs: options.minDeregisterAfterMs ?? 60_000,
    // The agent syncs a critical (or deregistered) check at once; the servers drop the sessions listing it.
    onCheckFailed: (checkId) => void kv.invalidateSessionsOf(checkId),
  });
  const kv = new KvStore({
    nextIndex: () => agent.nextIndex(),
    notify: () => agent.notify(),
    sessionTtlMultiplier: options.sessionTtlMultiplier ?? 2,
  });
  const settings = {
    aclToken: options.aclToken,
    enableScriptChecks: options.enableScriptChecks ?? false,
    sessionTtlMinMs: options.sessionTtlMinMs ?? 10_000,
  };
  return { agent, kv, node, settings };
}

/** A plain or TLS server (with `ca` and `requestCert`, clients must present a certificate signed by `ca`). */
function createServer(tls: ConsulDoubleOptions['tls'], handler: RequestListener): Server {
  if (!tls) return createHttpServer(handler);
  return createHttpsServer(
    {
      key: tls.key,
      cert: tls.cert,
      ...(tls.ca !== undefined && { ca: tls.ca }),
      requestCert: tls.requestCert ?? false,
      rejectUnauthorized: tls.requestCert ?? false,
    },
    handler,
  );
}

/** The test-facing controls: what a failing probe, an operator or anti-entropy would do to the agent. */
function controls({ agent, kv, settings }: DoubleContext) {
  return {
    setCheckStatus: (checkId: string, status: CheckStatus, output = '') => {
      if (!agent.setStatus(checkId, status, output)) throw new Error(`unknown check ${checkId}`);
    },
    checkDefinition: (checkId: string): CheckDefinition | undefined => {
      const def = agent.checks.get(checkId)?.def;
      return def && structuredClone(def);
    },
    overrideCatalogTags: (serviceId: string, tags: readonly string[]) => {
      if (!agent.services.has(serviceId)) throw new Error(`unknown service ${serviceId}`);
      return agent.adoptCatalogTags(serviceId, tags);
    },
    invalidateSession: (id: string) => kv.destroySession(id),
    reap: () => agent.reap(),
    setAclToken: (token: string) => {
      if (settings.aclToken === undefined)
        throw new Error('setAclToken: the double was started without ACLs');
      settings.aclToken = token;
    },
  };
}

export async function startConsulDouble(given: ConsulDoubleOptions = {}): Promise<ConsulDouble> {
  // A copy: a restart listens as the double was started, whatever the caller's object says by then.
  const options = { ...given };
  const host = options.host ?? '127.0.0.1';
  const ctx = createContext(options, nodeIdentity(options, host));
  const requests: RecordedRequest[] = [];
  const handler = createHandler(ctx, (request) => {
    requests.push(request);
    options.onRequest?.(request);
  });
  let server: Server;
  let port = options.port ?? 0;
  const listen = async (): Promise<void> => {
    server = createServer(options.tls, handler);
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
    ...controls(ctx),
    restart: async ({ loseState = false } = {}) => {
      await stop();
      if (loseState) ctx.agent.clear();
      await listen();
    },
    stop,
    start: listen,
    close: async () => {
      ctx.kv.close();
      ctx.agent.close();
      await stop();
    },
  };
}
