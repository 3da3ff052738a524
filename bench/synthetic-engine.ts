// A synthetic Docker engine served the way dockerd serves it: the Engine API over HTTP on a unix socket, so the
// real `registrar` process (dockerode, its HTTP parsing, the event stream) runs against it unchanged. It holds
// containers with published ports and labels, and starts, stops and churns them, emitting the events dockerd
// would. Only node:http; paths are accepted with or without an API version prefix (`/v1.41/...`).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const template = readFileSync(
  new URL('../packages/core/src/fixtures/published.json', import.meta.url),
  'utf8',
);
const API_VERSION = '1.41';
const ENGINE_NAME = 'synthetic-engine';
/** Events kept for `since` / `until` queries (the stall check asks for the last few seconds only). */
const HISTORY = 50_000;

export interface SyntheticContainer {
  /** Container name without the leading slash. */
  readonly name: string;
  /** SERVICE_NAME label; default `svc`. */
  readonly service?: string;
  /** SERVICE_TAGS label. */
  readonly tags?: string;
}

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
  readonly action: string;
  readonly line: string;
}

interface Watcher {
  readonly res: ServerResponse;
  readonly actions?: ReadonlySet<string>;
}

export interface RequestCounts {
  events: number;
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
  add(spec: SyntheticContainer): string;
  /** Create a container and announce its `start`. */
  start(spec: SyntheticContainer): string;
  /** The container exits and is gone: `die` with exit code 0 (no `destroy`, so one removal is one event). */
  die(id: string): void;
  /** `docker stop`: `kill` (SIGTERM), `die` (exit code 0), `stop`; the container is gone afterwards. */
  stop(id: string): void;
  /** Forget every container without an event (between runs of separate bridges). */
  clear(): void;
  close(): Promise<void>;
}

const nowNano = () => Math.round((performance.timeOrigin + performance.now()) * 1e6);

export async function startSyntheticEngine(): Promise<SyntheticEngine> {
  const dir = mkdtempSync(join(tmpdir(), 'registrar-engine-'));
  const socketPath = join(dir, 'docker.sock');
  const containers = new Map<string, Held>();
  const history: Logged[] = [];
  const watchers = new Set<Watcher>();
  const requests: RequestCounts = {
    events: 0,
    list: 0,
    inspect: 0,
    info: 0,
    other: 0,
    lastInspectAt: 0,
  };
  let subscribed: (() => void)[] = [];
  let serial = 0;

  const create = (spec: SyntheticContainer): Held => {
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
    const held = { id, name: spec.name, labels, hostPort, inspect: JSON.stringify(info) };
    containers.set(id, held);
    return held;
  };

  /** One event as dockerd writes it, to the open streams whose filter takes it, and into the history. */
  const emit = (held: Held, action: string, attributes: Record<string, string> = {}) => {
    const timeNano = nowNano();
    const line = `${JSON.stringify({
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
      time: Math.floor(timeNano / 1e9),
      timeNano,
    })}\n`;
    history.push({ timeNano, action, line });
    if (history.length > HISTORY) history.splice(0, history.length - HISTORY);
    for (const w of watchers) if (w.actions === undefined || w.actions.has(action)) w.res.write(line);
  };

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

  const lookup = (ref: string): Held | undefined => {
    const exact = containers.get(ref);
    if (exact !== undefined) return exact;
    for (const held of containers.values()) if (held.name === ref || held.id.startsWith(ref)) return held;
    return undefined;
  };

  const events = (req: IncomingMessage, res: ServerResponse, query: URLSearchParams) => {
    requests.events += 1;
    const seconds = (name: string) => {
      const value = query.get(name);
      return value === null || value === '' ? undefined : Number(value) * 1e9;
    };
    const since = seconds('since');
    const until = seconds('until');
    let actions: Set<string> | undefined;
    const filters = query.get('filters');
    if (filters !== null) {
      const parsed = JSON.parse(filters) as { event?: string[] | Record<string, boolean> };
      const list = Array.isArray(parsed.event) ? parsed.event : Object.keys(parsed.event ?? {});
      if (list.length > 0) actions = new Set(list);
    }
    res.writeHead(200, { 'Content-Type': 'application/json', 'Api-Version': API_VERSION });
    // The headers go out now, before any event: a bridge waits for them to call the stream open.
    res.flushHeaders();
    if (since !== undefined) {
      // dockerd's window is whole seconds: `until` includes its second.
      const end = until === undefined ? Infinity : until + 1e9;
      for (const e of history) {
        if (e.timeNano >= since && e.timeNano < end && (actions === undefined || actions.has(e.action)))
          res.write(e.line);
      }
    }
    if (until !== undefined) {
      res.end();
      return;
    }
    const watcher = { res, actions };
    watchers.add(watcher);
    req.socket.setNoDelay(true);
    res.on('close', () => watchers.delete(watcher));
    const waiting = subscribed;
    subscribed = [];
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

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://docker');
    const path = url.pathname.replace(/^\/v\d+\.\d+(?=\/)/, '');
    if (req.method === 'GET' && path === '/events') return events(req, res, url.searchParams);
    if (req.method === 'GET' && path === '/containers/json') {
      requests.list += 1;
      return json(res, 200, JSON.stringify([...containers.values()].map(listSummary)));
    }
    const inspect = /^\/containers\/([^/]+)\/json$/.exec(path);
    if (req.method === 'GET' && inspect) {
      requests.inspect += 1;
      requests.lastInspectAt = performance.now();
      const ref = decodeURIComponent(inspect[1]);
      const held = lookup(ref);
      return held === undefined ? notFound(res, ref) : json(res, 200, held.inspect);
    }
    if ((req.method === 'GET' || req.method === 'HEAD') && path === '/_ping') {
      requests.other += 1;
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Api-Version': API_VERSION, OSType: 'linux' });
      return res.end('OK');
    }
    if (req.method === 'GET' && path === '/info') {
      requests.info += 1;
      return json(
        res,
        200,
        JSON.stringify({
          ID: 'SYNTHETIC',
          Name: ENGINE_NAME,
          ServerVersion: '20.10.24',
          Containers: containers.size,
          ContainersRunning: containers.size,
          OperatingSystem: 'synthetic',
          OSType: 'linux',
          Architecture: 'x86_64',
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

  const server: Server = createServer((req, res) => {
    try {
      handle(req, res);
    } catch (error) {
      json(res, 500, JSON.stringify({ message: (error as Error).message }));
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, resolve);
  });

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
    nextSubscriber: () => new Promise<void>((resolve) => subscribed.push(resolve)),
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
    async close() {
      for (const w of watchers) w.res.end();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
