import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry as PromRegistry } from 'prom-client';
import type { Registry } from '@registrar/core';
import type { BridgeObserver } from '@registrar/core';
import type { ExplainLookup, ExplainSummary } from '@registrar/core/internal';
import type { Health } from './health.js';
import { VERSION } from './version.js';

// node:http as the built-in module, not an ES import: the ES facade of node:http reads every export, and the
// lazy `WebSocket` ones load undici (docker-client.ts).
const { createServer } = process.getBuiltinModule('node:http');

/**
 * Prometheus metrics fed by the bridge's observer hooks and by every registry's `events$`. They exist from the
 * process's first second (the bridge waits for Docker first): the gauges read `health`, which knows what has
 * started.
 */
export class Metrics {
  readonly registry = new PromRegistry();
  /** Ids each registry holds as written by this process (register ok → in, deregister ok / loss → out). */
  private readonly written = new Map<string, Set<string>>();
  private readonly attached: Registry[] = [];
  private dockerConnected = false;

  private readonly ops = new Counter({
    name: 'registrar_registry_operations_total',
    help: 'Registry writes by backend, target, operation and outcome',
    labelNames: ['backend', 'target', 'op', 'outcome'],
    registers: [this.registry],
  });
  private readonly opSeconds = new Histogram({
    name: 'registrar_registry_operation_seconds',
    help: 'Latency of registry writes',
    labelNames: ['backend', 'target', 'op'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  private readonly passes = new Counter({
    name: 'registrar_reconcile_runs_total',
    help: 'Reconcile passes per registry',
    labelNames: ['backend', 'target'],
    registers: [this.registry],
  });
  private readonly drift = new Counter({
    name: 'registrar_reconcile_drift_total',
    help: 'Writes planned by reconcile passes (registry differed from the desired set)',
    labelNames: ['backend', 'target'],
    registers: [this.registry],
  });
  private readonly losses = new Counter({
    name: 'registrar_liveness_losses_total',
    help: 'Lease / session / agent state losses that forced a full re-registration',
    labelNames: ['backend', 'target'],
    registers: [this.registry],
  });
  private readonly heartbeatFailures = new Counter({
    name: 'registrar_heartbeat_failures_total',
    help: 'Liveness heartbeats (etcd keepalive, ZooKeeper ping, Consul TTL pass) that failed',
    labelNames: ['backend', 'target'],
    registers: [this.registry],
  });
  private readonly events = new Counter({
    name: 'registrar_docker_events_total',
    help: 'Docker events received, by action',
    labelNames: ['action'],
    registers: [this.registry],
  });
  private readonly eventLag = new Histogram({
    name: 'registrar_docker_event_lag_seconds',
    help: 'Delay between a Docker event and its arrival at the bridge',
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    registers: [this.registry],
  });
  private readonly leader = new Gauge({
    name: 'registrar_leader',
    help: 'Swarm mode: 1 while this manager is the elected writer of the registry, 0 while it stands by',
    labelNames: ['backend', 'target'],
    registers: [this.registry],
  });
  private readonly dockerCalls = new Counter({
    name: 'registrar_docker_calls_total',
    help: 'Docker list and inspect calls by outcome (ok, error, timeout: no answer within the bound)',
    labelNames: ['call', 'outcome'],
    registers: [this.registry],
  });
  private readonly reconnects = new Counter({
    name: 'registrar_docker_reconnects_total',
    help: 'Times the Docker event stream was lost and had to be reopened',
    registers: [this.registry],
  });

  constructor(private readonly health: Health) {
    collectDefaultMetrics({ register: this.registry, prefix: 'registrar_' });
    new Gauge({
      name: 'registrar_build_info',
      help: 'Always 1; the version label says which registrar is running',
      labelNames: ['version'],
      registers: [this.registry],
    }).set({ version: VERSION }, 1);
    new Gauge({
      name: 'registrar_docker_up',
      help: '1 while Docker answers: its info while starting, then the event stream',
      registers: [this.registry],
      collect() {
        this.set(health.dockerUp() ? 1 : 0);
      },
    });
    new Gauge({
      name: 'registrar_services',
      help: 'Services this node wants registered (desired set)',
      registers: [this.registry],
      collect() {
        this.set(health.status()?.services ?? 0);
      },
    });
    new Gauge({
      name: 'registrar_service_states',
      help: 'Wanted services per registry by state: registered, pending, retrying (writes failing), rejected (refused by the registry), withheld (not passing, on a registry that holds passing services only)',
      labelNames: ['backend', 'target', 'state'],
      registers: [this.registry],
      collect() {
        for (const r of health.status()?.registries ?? []) {
          for (const [state, count] of Object.entries(r.services)) {
            this.set({ backend: r.backend, target: r.target, state }, count);
          }
        }
      },
    });
    new Gauge({
      name: 'registrar_unresolved_containers',
      help: 'Running containers whose inspect keeps failing: their services are unknown and their entries kept',
      registers: [this.registry],
      collect() {
        this.set(health.status()?.unresolved.length ?? 0);
      },
    });
    new Gauge({
      name: 'registrar_containers',
      help: 'Running containers the bridge tracks',
      registers: [this.registry],
      collect() {
        this.set(health.status()?.containers ?? 0);
      },
    });
    const written = this.written;
    const attached = this.attached;
    new Gauge({
      name: 'registrar_registry_services',
      help: 'Services this process has registered and not removed, per registry',
      labelNames: ['backend', 'target'],
      registers: [this.registry],
      collect() {
        for (const r of attached) {
          this.set({ backend: r.backend, target: r.target }, written.get(r.target)?.size ?? 0);
        }
      },
    });
    new Gauge({
      name: 'registrar_registry_up',
      help: '1 when the last call to the registry (a write, a read or a heartbeat) succeeded',
      labelNames: ['backend', 'target'],
      registers: [this.registry],
      collect() {
        for (const r of health.registryUp()) this.set({ backend: r.backend, target: r.target }, r.up ? 1 : 0);
      },
    });
  }

  /** `registries` are watched from here on: attach them right after creating them. */
  attach(registries: readonly Registry[]): void {
    this.health.attachRegistries(registries);
    for (const registry of registries) {
      this.attached.push(registry);
      this.watch(registry);
    }
  }

  readonly observer: BridgeObserver = {
    onLeading: (r, leading) => this.leader.set(labels(r), leading ? 1 : 0),
    onPass: (r, drift) => {
      this.passes.inc(labels(r));
      this.drift.inc(labels(r), drift);
    },
    onOp: (r, op, outcome, seconds) => {
      this.ops.inc({ ...labels(r), op: op.type, outcome });
      if (outcome !== 'dry-run') this.opSeconds.observe({ ...labels(r), op: op.type }, seconds);
      if (outcome !== 'ok') return;
      const ids = this.written.get(r.target) ?? new Set<string>();
      this.written.set(r.target, ids);
      if (op.type === 'register') ids.add(op.service.id);
      else ids.delete(op.entry.id);
    },
    // Counted from the registry's events$ (see `watch`); here only what this process wrote is forgotten.
    onLost: (r) => this.written.get(r.target)?.clear(),
    onReachable: (r, up, failing) => this.health.reachable(r, up, failing),
    onDockerConnection: (connected) => {
      if (this.dockerConnected && !connected) this.reconnects.inc();
      this.dockerConnected = connected;
    },
    // The action comes from a fixed set (core's EventAction), so an engine cannot mint series.
    onDockerEvent: (action, lag) => {
      this.events.inc({ action });
      this.eventLag.observe(lag);
    },
    onDockerCall: (call, outcome) => this.dockerCalls.inc({ call, outcome }),
  };

  /** Count the liveness events a registry reports (failed heartbeats, losses); health follows them too. */
  private watch(registry: Registry): void {
    registry.events$.subscribe((event) => {
      this.health.registryEvent(registry, event);
      if (event.type === 'heartbeat-failed') this.heartbeatFailures.inc(labels(registry));
      else if (event.type === 'liveness-lost') this.losses.inc(labels(registry));
    });
  }
}

const labels = (r: Registry) => ({ backend: r.backend, target: r.target });

/**
 * What `/debug/containers` serves (`registrar explain` asks it); undefined while the bridge is not started.
 * Read-only.
 */
export interface DebugSource {
  containers(): readonly ExplainSummary[] | undefined;
  container(ref: string): ExplainLookup | undefined;
}

/** `/debug` shows labels and probe output: by default only clients on this host's loopback get it. */
function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice('::ffff:'.length) : address;
  return v4.startsWith('127.') || address === '::1';
}

/** Container references longer than this are not looked up (a full id is 64, Docker names up to 253). */
const MAX_REF_LENGTH = 256;

function json(res: ServerResponse, status: number, body: unknown, head = false) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(head ? undefined : `${JSON.stringify(body)}\n`);
}

/** `/debug/containers` and `/debug/containers/<id-or-name>`: GET and HEAD only. */
function serveDebug(req: IncomingMessage, res: ServerResponse, path: string, debug: DebugSource) {
  const head = req.method === 'HEAD';
  if (req.method !== 'GET' && !head) {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' });
    res.end('read-only: use GET\n');
    return;
  }
  if (path === '/debug/containers' || path === '/debug/containers/') {
    const list = debug.containers();
    if (list === undefined) json(res, 503, { error: 'starting', message: 'the bridge is starting' }, head);
    else json(res, 200, list, head);
    return;
  }
  let ref: string;
  try {
    ref = decodeURIComponent(path.slice('/debug/containers/'.length));
  } catch {
    json(
      res,
      400,
      { error: 'bad-reference', message: 'the container reference is not valid URL encoding' },
      head,
    );
    return;
  }
  if (ref === '' || ref.length > MAX_REF_LENGTH || ref.includes('/')) {
    json(res, 400, { error: 'bad-reference', message: 'give a container id, id prefix or name' }, head);
    return;
  }
  const lookup = debug.container(ref);
  if (lookup === undefined) {
    json(res, 503, { error: 'starting', message: 'the bridge is starting' }, head);
  } else if (lookup.kind === 'found') {
    json(res, 200, lookup.report, head);
  } else if (lookup.kind === 'ambiguous') {
    json(
      res,
      409,
      {
        error: 'ambiguous-container',
        message: `${lookup.matches.length} containers have ids starting with that prefix: give more of the id`,
        matches: lookup.matches.slice(0, 20),
      },
      head,
    );
  } else {
    json(
      res,
      404,
      { error: 'unknown-container', message: 'the bridge tracks no running container by that id or name' },
      head,
    );
  }
}

/**
 * `/metrics`, `/healthz` (process alive), `/readyz` (see `Health.readiness`) and, given a `debug` source,
 * `/debug/containers[/<ref>]`.
 */
export async function serveMetrics(
  address: { host: string; port: number },
  metrics: { readonly registry: PromRegistry },
  readiness: () => { ok: boolean; detail: object },
  debug?: DebugSource,
  /** Answer `/debug` to any client, not only loopback ones (`--debug-remote`). */
  debugRemote = false,
): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (path === '/metrics') {
      metrics.registry.metrics().then(
        (body) => {
          res.writeHead(200, { 'content-type': metrics.registry.contentType });
          res.end(body);
        },
        (error: unknown) => {
          res.writeHead(500);
          res.end(String(error));
        },
      );
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok\n');
    } else if (path === '/readyz') {
      const { ok, detail } = readiness();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify({ ready: ok, ...detail })}\n`);
    } else if (
      debug !== undefined &&
      (path === '/debug/containers' || path.startsWith('/debug/containers/'))
    ) {
      if (!debugRemote && !isLoopback(req.socket.remoteAddress)) {
        json(res, 403, {
          error: 'loopback-only',
          message:
            '/debug answers loopback clients only: run registrar explain on the same host (docker exec into its container), or start the bridge with --debug-remote',
        });
        return;
      }
      try {
        serveDebug(req, res, path, debug);
      } catch (error) {
        json(res, 500, {
          error: 'internal',
          message: error instanceof Error ? error.message : String(error),
        });
      }
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end(
        `not found: try /metrics, /healthz${debug ? ', /readyz or /debug/containers' : ' or /readyz'}\n`,
      );
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => resolve());
  });
  return server;
}
