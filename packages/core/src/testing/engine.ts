// A synthetic Docker engine served the way dockerd serves it: the Engine API over HTTP on a unix socket, so the
// real `registrar` process (dockerode, its HTTP parsing, the event stream) runs against it unchanged. It holds
// containers with published ports and labels, and starts, stops and churns them, emitting the events dockerd
// would. Only node:http; paths are accepted with or without an API version prefix (`/v1.41/...`).
// It is also a hostile engine, for the fault tests: any kind of request can be made to hang (no answer), to
// stall (headers and part of a body, never the end) or to fail, per container for inspects; raw bytes can be
// written to the open event streams (malformed lines, endless lines).
// With `swarm`, the engine is also a Swarm manager (./swarm.ts): `/info` says so, the Swarm endpoints answer,
// and `/events` delivers `service` / `node` events; `openManager` serves the same cluster as another manager on
// a socket of its own.
import type { ContainerInspectInfo } from 'dockerode';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import published from '../fixtures/published.json' with { type: 'json' };
import { createSyntheticSwarm, type SyntheticSwarm, type SyntheticSwarmOptions } from './swarm.js';

const template = JSON.stringify(published);
const API_VERSION = '1.41';
const ENGINE_NAME = 'synthetic-engine';
/** Events kept for `since` / `until` queries (the stall check asks for the last few seconds only). */
const HISTORY = 50_000;

export interface EngineContainer {
  /** Container name without the leading slash. */
  readonly name: string;
  /** SERVICE_NAME label; default `svc`. */
  readonly service?: string;
  /** SERVICE_TAGS label. */
  readonly tags?: string;
  /** Change the inspect document before it is served (e.g. `Config.StopTimeout`, a hostile field). */
  readonly inspect?: (document: ContainerInspectInfo) => void;
}

/** The kinds of request a fault can be set for. `eventsQuery` is a bounded `/events` (with `until`). */
export type RequestKind = 'info' | 'list' | 'inspect' | 'events' | 'eventsQuery';

/**
 * What a broken or hostile engine does to a request:
 * - `hang`: accepts it and never answers (not even headers);
 * - `stall`: sends the headers and part of the body, and never ends it;
 * - `fail`: answers with this HTTP status and an error message.
 */
export type RequestFault =
  { readonly kind: 'hang' } | { readonly kind: 'stall' } | { readonly kind: 'fail'; readonly status: number };

interface Held {
  readonly id: string;
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly hostPort: number;
  /** The inspect document, serialised once: the engine answers thousands of inspects. */
  readonly inspect: string;
}

interface Logged {
  readonly timeNano: number;
  readonly type: string;
  readonly action: string;
  readonly line: string;
  /** Only this manager's engine reports it (a Swarm task container on its node); undefined: every socket. */
  readonly manager?: number;
}

interface Watcher {
  readonly res: ServerResponse;
  readonly actions?: ReadonlySet<string>;
  readonly types?: ReadonlySet<string>;
  readonly manager: number;
}

export interface SyntheticEngineOptions {
  /** The engine's host name in `/info` (the bridge's default node id); default `synthetic-engine`. */
  readonly name?: string;
  /** Make the engine a Swarm manager of a synthetic cluster. */
  readonly swarm?: SyntheticSwarmOptions;
}

export interface RequestCounts {
  events: number;
  /** Bounded `/events` queries (with `until`), e.g. the stall check's. */
  eventsQueries: number;
  list: number;
  inspect: number;
  info: number;
  other: number;
  /** performance.now() of the latest inspect (when a cold start's inspections ended). */
  lastInspectAt: number;
}

export interface SyntheticEngine {
  /** `unix:///…/docker.sock`, for `--docker-host`. */
  readonly host: string;
  readonly socketPath: string;
  /** Requests answered so far, by kind. */
  readonly requests: RequestCounts;
  /** Containers running now. */
  readonly size: number;
  /** Resolves on the next `GET /events` that stays open (a bridge subscribing). */
  nextSubscriber(): Promise<void>;
  /** Event streams open now. */
  subscribers(): number;
  /** Create a running container without an event (it was there before the bridge); returns its id. */
  add(spec: EngineContainer): string;
  /** Create a container and announce its `start`. */
  start(spec: EngineContainer): string;
  /** The container exits and is gone: `die` with exit code 0 (no `destroy`, so one removal is one event). */
  die(id: string): void;
  /** `docker stop`: `kill` (SIGTERM), `die` (exit code 0), `stop`; the container is gone afterwards. */
  stop(id: string): void;
  /** Forget every container without an event (between runs of separate bridges). */
  clear(): void;
  /**
   * From now on, requests of `kind` meet `fault` (undefined: answered normally again); for inspects, `id`
   * limits it to one container. Requests already held stay held until `close()`.
   */
  fault(kind: RequestKind, fault: RequestFault | undefined, id?: string): void;
  /** Requests held open by a `hang` or `stall` fault right now (connections the client has not closed). */
  held(): number;
  /** Write raw bytes to every open live event stream: a malformed line, half a line, an endless one. */
  writeRaw(data: string | Buffer): void;
  /** Emit one container event as dockerd would, with extra fields merged over the usual ones. */
  emitRaw(event: Record<string, unknown>): void;
  /** With `swarm`: the cluster this engine manages. */
  readonly swarm?: SyntheticSwarm;
  /** With `swarm`: the same cluster served by another manager (`index` ≥ 1) on a socket of its own. */
  openManager(index: number): Promise<{ host: string; nextSubscriber(): Promise<void> }>;
  close(): Promise<void>;
}

const nowNano = () => Math.round((performance.timeOrigin + performance.now()) * 1e6);

export async function startSyntheticEngine(options: SyntheticEngineOptions = {}): Promise<SyntheticEngine> {
  const dir = mkdtempSync(join(tmpdir(), 'registrar-engine-'));
  const socketPath = join(dir, 'docker.sock');
  const containers = new Map<string, Held>();
  const history: Logged[] = [];
  const watchers = new Set<Watcher>();
  const requests: RequestCounts = {
    events: 0,
    eventsQueries: 0,
    list: 0,
    inspect: 0,
    info: 0,
    other: 0,
    lastInspectAt: 0,
  };
  /** Per manager socket, the resolvers of `nextSubscriber`. */
  const subscribed = new Map<number, (() => void)[]>();
  let serial = 0;

  /** One event line to the open streams whose filters take it, and into the history. */
  const deliver = (type: string, action: string, event: Record<string, unknown>, manager?: number) => {
    const timeNano = nowNano();
    const line = `${JSON.stringify({ ...event, time: Math.floor(timeNano / 1e9), timeNano })}\n`;
    history.push({ timeNano, type, action, line, ...(manager !== undefined && { manager }) });
    if (history.length > HISTORY) history.splice(0, history.length - HISTORY);
    for (const w of watchers) if (takes(w, type, action, manager)) w.res.write(line);
  };
  const takes = (
    w: { actions?: ReadonlySet<string>; types?: ReadonlySet<string>; manager: number },
    type: string,
    action: string,
    manager: number | undefined,
  ) =>
    (w.actions === undefined || w.actions.has(action)) &&
    (w.types === undefined || w.types.has(type)) &&
    (manager === undefined || manager === w.manager);
  const swarm =
    options.swarm === undefined
      ? undefined
      : createSyntheticSwarm(options.swarm, (type, action, event, manager) =>
          deliver(type, action, event, manager),
        );

  const create = (spec: EngineContainer): Held => {
    serial += 1;
    const id = `${serial.toString(16).padStart(12, '0')}${'e'.repeat(52)}`;
    // Wraps so a long soak never makes an invalid port (which derivation rightly refuses).
    const hostPort = 20000 + (serial % 40000);
    const labels = {
      SERVICE_NAME: spec.service ?? 'svc',
      ...(spec.tags !== undefined && { SERVICE_TAGS: spec.tags }),
    };
    const info = JSON.parse(template) as {
      Id: string;
      Name: string;
      Config: { Hostname: string; Labels: Record<string, string> };
      NetworkSettings: { Ports: Record<string, { HostIp: string; HostPort: string }[]> };
    };
    info.Id = id;
    info.Name = `/${spec.name}`;
    info.Config.Hostname = id.slice(0, 12);
    info.Config.Labels = labels;
    info.NetworkSettings.Ports = { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: String(hostPort) }] };
    spec.inspect?.(info as unknown as ContainerInspectInfo);
    const held = { id, name: spec.name, labels, hostPort, inspect: JSON.stringify(info) };
    containers.set(id, held);
    return held;
  };

  /** One event as dockerd writes it, to the open streams whose filter takes it, and into the history. */
  const emit = (held: Held, action: string, attributes: Record<string, string> = {}) =>
    deliver('container', action, {
      status: action,
      id: held.id,
      from: 'registrar-bench',
      Type: 'container',
      Action: action,
      Actor: {
        ID: held.id,
        Attributes: { ...held.labels, image: 'registrar-bench', name: held.name, ...attributes },
      },
      scope: 'local',
    });

  const json = (res: ServerResponse, status: number, body: string) => {
    res.writeHead(status, {
      'Content-Type': 'application/json',
      'Content-Length': Buffer.byteLength(body),
      'Api-Version': API_VERSION,
    });
    res.end(body);
  };
  const notFound = (res: ServerResponse, what: string) =>
    json(res, 404, JSON.stringify({ message: `No such container: ${what}` }));

  /** Faults by request kind, and by `inspect:<id>` for one container's inspects. */
  const faults = new Map<string, RequestFault>();
  /** Responses a fault holds open. */
  const heldOpen = new Set<ServerResponse>();
  /** Apply the fault set for this request, if any; true when it took the request. */
  const faulted = (kind: RequestKind, res: ServerResponse, id?: string): boolean => {
    const fault = (id !== undefined ? faults.get(`inspect:${id}`) : undefined) ?? faults.get(kind);
    if (fault === undefined) return false;
    if (fault.kind === 'fail') {
      json(res, fault.status, JSON.stringify({ message: `synthetic ${kind} failure (${fault.status})` }));
      return true;
    }
    heldOpen.add(res);
    res.on('close', () => heldOpen.delete(res));
    if (fault.kind === 'stall') {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Api-Version': API_VERSION });
      // Events are a stream of lines: an empty start; a document is cut in the middle.
      res.write(kind === 'events' || kind === 'eventsQuery' ? '' : '{"Id":');
      res.flushHeaders();
    }
    return true;
  };

  const lookup = (ref: string): Held | undefined => {
    const exact = containers.get(ref);
    if (exact !== undefined) return exact;
    for (const held of containers.values()) if (held.name === ref || held.id.startsWith(ref)) return held;
    return undefined;
  };

  const events = (req: IncomingMessage, res: ServerResponse, query: URLSearchParams, manager: number) => {
    const bounded = query.get('until') !== null && query.get('until') !== '';
    if (bounded) requests.eventsQueries += 1;
    else requests.events += 1;
    if (faulted(bounded ? 'eventsQuery' : 'events', res)) return;
    const seconds = (name: string) => {
      const value = query.get(name);
      return value === null || value === '' ? undefined : Number(value) * 1e9;
    };
    const since = seconds('since');
    const until = seconds('until');
    let actions: Set<string> | undefined;
    let types: Set<string> | undefined;
    const filters = query.get('filters');
    if (filters !== null) {
      const parsed = JSON.parse(filters) as Record<string, string[] | Record<string, boolean> | undefined>;
      const values = (key: string) => {
        const v = parsed[key];
        const list = Array.isArray(v) ? v : Object.keys(v ?? {});
        return list.length > 0 ? new Set(list) : undefined;
      };
      actions = values('event');
      types = values('type');
    }
    const watcher = { res, manager, ...(actions && { actions }), ...(types && { types }) };
    res.writeHead(200, { 'Content-Type': 'application/json', 'Api-Version': API_VERSION });
    // The headers go out now, before any event: a bridge waits for them to call the stream open.
    res.flushHeaders();
    if (since !== undefined) {
      // dockerd's window is whole seconds: `until` includes its second.
      const end = until === undefined ? Infinity : until + 1e9;
      for (const e of history) {
        if (e.timeNano >= since && e.timeNano < end && takes(watcher, e.type, e.action, e.manager))
          res.write(e.line);
      }
    }
    if (until !== undefined) {
      res.end();
      return;
    }
    watchers.add(watcher);
    req.socket.setNoDelay(true);
    res.on('close', () => watchers.delete(watcher));
    const waiting = subscribed.get(manager) ?? [];
    subscribed.delete(manager);
    for (const resolve of waiting) resolve();
  };

  const listSummary = (held: Held) => ({
    Id: held.id,
    Names: [`/${held.name}`],
    Image: 'registrar-bench',
    ImageID: 'sha256:276e45373c2e934ff55898989ff3dfbe9bdb812e91bc8a8f857b05f82acad785',
    Command: 'httpd -f -p 80',
    Created: 1764031146,
    Ports: [{ IP: '127.0.0.1', PrivatePort: 80, PublicPort: held.hostPort, Type: 'tcp' }],
    Labels: held.labels,
    State: 'running',
    Status: 'Up 1 second',
    HostConfig: { NetworkMode: 'default' },
    NetworkSettings: { Networks: {} },
    Mounts: [],
  });

  const handle = (req: IncomingMessage, res: ServerResponse, manager: number) => {
    const url = new URL(req.url ?? '/', 'http://docker');
    const path = url.pathname.replace(/^\/v\d+\.\d+(?=\/)/, '');
    if (req.method === 'GET' && path === '/events') return events(req, res, url.searchParams, manager);
    if (swarm?.handle(req.method ?? 'GET', path, url.searchParams, (status, body) => json(res, status, body)))
      return;
    if (req.method === 'GET' && path === '/containers/json') {
      requests.list += 1;
      if (faulted('list', res)) return;
      return json(res, 200, JSON.stringify([...containers.values()].map(listSummary)));
    }
    const inspect = /^\/containers\/([^/]+)\/json$/.exec(path);
    if (req.method === 'GET' && inspect) {
      requests.inspect += 1;
      requests.lastInspectAt = performance.now();
      const ref = decodeURIComponent(inspect[1]);
      const held = lookup(ref);
      if (faulted('inspect', res, held?.id ?? ref)) return;
      return held === undefined ? notFound(res, ref) : json(res, 200, held.inspect);
    }
    if ((req.method === 'GET' || req.method === 'HEAD') && path === '/_ping') {
      requests.other += 1;
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Api-Version': API_VERSION, OSType: 'linux' });
      return res.end('OK');
    }
    if (req.method === 'GET' && path === '/info') {
      requests.info += 1;
      if (faulted('info', res)) return;
      return json(
        res,
        200,
        JSON.stringify({
          ID: manager === 0 ? 'SYNTHETIC' : `SYNTHETIC-${manager}`,
          Name: swarm === undefined ? (options.name ?? ENGINE_NAME) : swarm.hostname(manager),
          ServerVersion: '20.10.24',
          Containers: containers.size,
          ContainersRunning: containers.size,
          OperatingSystem: 'synthetic',
          OSType: 'linux',
          Architecture: 'x86_64',
          Swarm:
            swarm === undefined
              ? { NodeID: '', NodeAddr: '', LocalNodeState: 'inactive', ControlAvailable: false, Error: '' }
              : swarm.info(manager),
        }),
      );
    }
    if (req.method === 'GET' && path === '/version') {
      requests.other += 1;
      return json(
        res,
        200,
        JSON.stringify({ Version: '20.10.24', ApiVersion: API_VERSION, MinAPIVersion: '1.12', Os: 'linux' }),
      );
    }
    requests.other += 1;
    json(res, 404, JSON.stringify({ message: `page not found: ${req.method} ${path}` }));
  };

  const servers: Server[] = [];
  const listen = async (manager: number, path: string) => {
    const server: Server = createServer((req, res) => {
      try {
        handle(req, res, manager);
      } catch (error) {
        json(res, 500, JSON.stringify({ message: (error as Error).message }));
      }
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, resolve);
    });
    servers.push(server);
  };
  const nextSubscriber = (manager: number) =>
    new Promise<void>((resolve) => subscribed.set(manager, [...(subscribed.get(manager) ?? []), resolve]));
  await listen(0, socketPath);

  const remove = (id: string, actions: [string, Record<string, string>][]) => {
    const held = containers.get(id);
    if (held === undefined) return;
    containers.delete(id);
    for (const [action, attributes] of actions) emit(held, action, attributes);
  };

  return {
    host: `unix://${socketPath}`,
    socketPath,
    requests,
    get size() {
      return containers.size;
    },
    nextSubscriber: () => nextSubscriber(0),
    subscribers: () => watchers.size,
    add: (spec) => create(spec).id,
    start(spec) {
      const held = create(spec);
      emit(held, 'start');
      return held.id;
    },
    die: (id) => remove(id, [['die', { exitCode: '0' }]]),
    stop: (id) =>
      remove(id, [
        ['kill', { signal: '15' }],
        ['die', { exitCode: '0' }],
        ['stop', {}],
      ]),
    clear: () => containers.clear(),
    fault(kind, fault, id) {
      const key = id === undefined ? kind : `inspect:${id}`;
      if (fault === undefined) faults.delete(key);
      else faults.set(key, fault);
    },
    held: () => heldOpen.size,
    writeRaw(data) {
      for (const w of watchers) w.res.write(data);
    },
    emitRaw(event) {
      const timeNano = nowNano();
      const line = `${JSON.stringify({ Type: 'container', time: Math.floor(timeNano / 1e9), timeNano, ...event })}\n`;
      for (const w of watchers) w.res.write(line);
    },
    ...(swarm && { swarm }),
    async openManager(index) {
      if (swarm === undefined) throw new Error('openManager: the engine was started without swarm');
      const path = join(dir, `manager${index}.sock`);
      await listen(index, path);
      return { host: `unix://${path}`, nextSubscriber: () => nextSubscriber(index) };
    },
    async close() {
      for (const w of watchers) w.res.end();
      for (const res of heldOpen) res.destroy();
      for (const server of servers) {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
