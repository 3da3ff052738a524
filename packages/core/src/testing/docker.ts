import type { ContainerInfo, ContainerInspectInfo, GetEventsOptions } from 'dockerode';
import { PassThrough } from 'node:stream';
import type { DockerApi } from '../docker-calls.js';
// A recorded inspect document of a running container with one published port: every synthetic container is
// a copy, so derivation sees what a real engine sends.
import template from '../fixtures/published.json' with { type: 'json' };

export interface SyntheticContainer {
  /** Container name without the leading slash. */
  readonly name: string;
  /** SERVICE_NAME label; default `svc`. Ignored when `labels` is given. */
  readonly service?: string;
  /** SERVICE_TAGS label. Ignored when `labels` is given. */
  readonly tags?: string;
  /** All of the container's labels (instead of `service` and `tags`). */
  readonly labels?: Readonly<Record<string, string>>;
  /** `KEY=value` environment entries; default none. */
  readonly env?: readonly string[];
  /** Published ports, e.g. `{ '80/tcp': 32768 }`; default port 80 on a host port of its own. */
  readonly ports?: Readonly<Record<string, number>>;
  /** Config.StopSignal, e.g. `SIGQUIT`. */
  readonly stopSignal?: string;
  /** Config.StopTimeout in seconds. */
  readonly stopTimeout?: number;
}

/** An engine error as dockerode reports one: with the HTTP status code. */
export class DockerApiError extends Error {
  constructor(
    message: string,
    readonly statusCode: number,
  ) {
    super(`(HTTP code ${statusCode}) ${message}`);
  }
}

interface RawEventLine {
  readonly json: string;
  /** Unix seconds, as `since` and `until` count. */
  readonly time: number;
}

/**
 * A synthetic Docker engine implementing core's `DockerApi`, for tests and benchmarks: containers are inspect
 * documents, events are JSON lines written to the open `/events` streams. It can be made to fail requests,
 * hold or drop its event streams, and stall them (open but silent), to exercise every recovery path.
 */
export class SyntheticDocker implements DockerApi {
  /** Inspect calls answered (failed ones included). */
  inspects = 0;
  /** `listContainers` calls answered (failed ones included). */
  lists = 0;
  /** Every `/events` request, as asked (without its abort signal). */
  readonly eventRequests: GetEventsOptions[] = [];
  /** `/events` requests never answer (an engine or proxy that holds the response) until they are aborted. */
  holdEvents = false;
  /** Inspects of these containers never answer until aborted (a hung engine call). */
  readonly hangInspects = new Set<string>();
  /** Inspects of these containers always fail with HTTP 500. */
  readonly brokenInspects = new Set<string>();
  /** Container lists never answer until aborted. */
  holdLists = false;
  /** Hung inspects and lists not yet aborted by the client. */
  heldRequests = 0;
  /** id → the inspect document as the engine would send it (parsed per inspect, as dockerode does). */
  private readonly documents = new Map<string, string>();
  private readonly hidden = new Set<string>();
  private readonly streams = new Set<PassThrough>();
  private readonly stalled = new WeakSet<PassThrough>();
  /** Events no live stream delivered (none was open, or it was stalled): a replay (`since`) sends them. */
  private withheld: RawEventLine[] = [];
  private failing = { inspect: 0, list: 0, events: 0 };
  private serial = 0;
  private eventSerial = 0;

  /** Event streams open now (live, not bounded queries). */
  get openStreams(): number {
    return this.liveStreams().length;
  }

  /** Create a running container (no event); returns its id. */
  add(spec: SyntheticContainer): string {
    this.serial += 1;
    const id = `${this.serial.toString(16).padStart(12, '0')}${'f'.repeat(52)}`;
    const info = structuredClone(template) as unknown as ContainerInspectInfo;
    info.Id = id;
    info.Name = `/${spec.name}`;
    info.Config.Hostname = id.slice(0, 12);
    info.Config.Env = [...(spec.env ?? [])];
    info.Config.Labels = spec.labels
      ? { ...spec.labels }
      : { SERVICE_NAME: spec.service ?? 'svc', ...(spec.tags && { SERVICE_TAGS: spec.tags }) };
    // Wraps so a long soak never makes an invalid port (which derivation rightly refuses).
    const ports = spec.ports ?? { '80/tcp': 20000 + (this.serial % 40000) };
    info.Config.ExposedPorts = Object.fromEntries(Object.keys(ports).map((port) => [port, {}]));
    info.NetworkSettings.Ports = Object.fromEntries(
      Object.entries(ports).map(([port, hostPort]) => [
        port,
        [{ HostIp: '127.0.0.1', HostPort: String(hostPort) }],
      ]),
    );
    // Both are in Docker's ContainerConfig; @types/dockerode lists neither.
    Object.assign(info.Config, {
      ...(spec.stopSignal !== undefined && { StopSignal: spec.stopSignal }),
      ...(spec.stopTimeout !== undefined && { StopTimeout: spec.stopTimeout }),
    });
    this.documents.set(id, JSON.stringify(info));
    return id;
  }

  /** Create a container and announce its `start`. */
  start(spec: SyntheticContainer): string {
    const id = this.add(spec);
    this.emit(id, 'start');
    return id;
  }

  /** Start a stopped container again; announces `start`. */
  restart(id: string): void {
    this.change(id, (info) => {
      info.State = { ...info.State, Status: 'running', Running: true, ExitCode: 0 };
    });
    this.emit(id, 'start');
  }

  /** Docker sends the container a signal (`docker stop` begins so); announces `kill`. It keeps running. */
  kill(id: string, signal: number): void {
    this.emit(id, 'kill', { signal: String(signal) });
  }

  /** The container's process exits; the container stays (exited). Announces `die` with the exit code. */
  exit(id: string, exitCode = 0): void {
    this.change(id, (info) => {
      info.State = { ...info.State, Status: 'exited', Running: false, ExitCode: exitCode, Pid: 0 };
    });
    this.emit(id, 'die', { exitCode: String(exitCode) });
  }

  /** The container is removed; announces `destroy`. */
  remove(id: string): void {
    if (this.documents.delete(id)) this.emit(id, 'destroy');
  }

  /** The container exits with code 0 and is removed at once (`--rm`); announces only `die`. */
  die(id: string): void {
    if (!this.documents.has(id)) return;
    this.emit(id, 'die', { exitCode: '0' });
    this.documents.delete(id);
  }

  /** Change a container's labels behind the bridge's back (drift only a resync can see). */
  setTags(id: string, tags: string): void {
    this.change(id, (info) => {
      info.Config.Labels = { ...info.Config.Labels, SERVICE_TAGS: tags };
    });
  }

  /** Change a container's inspect document, without an event. */
  change(id: string, edit: (info: ContainerInspectInfo) => void): void {
    const json = this.documents.get(id);
    if (json === undefined) throw new Error(`no synthetic container ${id}`);
    const info = JSON.parse(json) as ContainerInspectInfo;
    edit(info);
    this.documents.set(id, JSON.stringify(info));
  }

  /** Leave a container out of `listContainers` (a list that misses it), or put it back. */
  hideFromList(id: string, hidden = true): void {
    if (hidden) this.hidden.add(id);
    else this.hidden.delete(id);
  }

  /** The next `count` inspects fail with an engine error (HTTP 500). */
  failInspects(count = 1): void {
    this.failing.inspect = count;
  }

  /** The next `count` container lists fail with an engine error (HTTP 500). */
  failLists(count = 1): void {
    this.failing.list = count;
  }

  /** The next `count` `/events` requests fail as if the engine were unreachable. */
  failEvents(count = 1): void {
    this.failing.events = count;
  }

  /** Every open event stream stops delivering but stays open; later streams deliver again. */
  stall(): void {
    for (const stream of this.liveStreams()) this.stalled.add(stream);
  }

  /** Drop every open event stream: ended, or failed with `error` (a socket reset). */
  disconnect(error?: Error): void {
    for (const stream of this.liveStreams()) {
      if (error) stream.destroy(error);
      else stream.end();
    }
    this.streams.clear();
  }

  /** End every open event stream. */
  close(): void {
    this.disconnect();
  }

  /** Announce a container event, as the engine writes one to `/events`. */
  emit(id: string, action: string, attributes: Readonly<Record<string, string>> = {}): void {
    const json = this.documents.get(id);
    const name = json === undefined ? undefined : (JSON.parse(json) as ContainerInspectInfo).Name.slice(1);
    // Milliseconds from the clock (a test's fake timers move it), nanoseconds from a counter: unique per event.
    const timeNano = Date.now() * 1e6 + (this.eventSerial++ % 1e6);
    const time = Math.floor(timeNano / 1e9);
    const line = {
      json: `${JSON.stringify({
        Type: 'container',
        Action: action,
        id,
        Actor: { ID: id, Attributes: { ...(name !== undefined && { name }), ...attributes } },
        time,
        timeNano,
      })}\n`,
      time,
    };
    let delivered = false;
    for (const stream of this.liveStreams()) {
      if (this.stalled.has(stream)) continue;
      stream.write(line.json);
      delivered = true;
    }
    if (!delivered) this.withheld.push(line);
  }

  getEvents(options: GetEventsOptions & { abortSignal?: AbortSignal } = {}): Promise<NodeJS.ReadableStream> {
    const { abortSignal, ...query } = options;
    this.eventRequests.push(query);
    if (this.failing.events > 0) {
      this.failing.events -= 1;
      return Promise.reject(
        Object.assign(new Error('connect ECONNREFUSED /var/run/docker.sock'), { code: 'ECONNREFUSED' }),
      );
    }
    if (this.holdEvents) {
      return new Promise((_, reject) => {
        const aborted = () => reject(new Error('request aborted', { cause: abortSignal?.reason }));
        if (abortSignal?.aborted) aborted();
        else abortSignal?.addEventListener('abort', aborted, { once: true });
      });
    }
    const stream = new PassThrough();
    const since = toSeconds(query.since);
    const until = toSeconds(query.until);
    if (until !== undefined) {
      // A bounded query: what the engine had in that window and no live stream delivered.
      for (const event of this.withheld)
        if (event.time >= (since ?? 0) && event.time <= until) stream.write(event.json);
      stream.end();
      return Promise.resolve(stream);
    }
    if (since !== undefined)
      for (const event of this.withheld) if (event.time >= since) stream.write(event.json);
    this.withheld = [];
    this.streams.add(stream);
    return Promise.resolve(stream);
  }

  listContainers(options: { all?: boolean; abortSignal?: AbortSignal } = {}): Promise<ContainerInfo[]> {
    this.lists += 1;
    if (this.holdLists) return this.held(options.abortSignal);
    if (this.failing.list > 0) {
      this.failing.list -= 1;
      return Promise.reject(new DockerApiError('server error', 500));
    }
    const listed: ContainerInfo[] = [];
    for (const [id, json] of this.documents) {
      if (this.hidden.has(id)) continue;
      const info = JSON.parse(json) as ContainerInspectInfo;
      if (!info.State.Running && options.all !== true) continue;
      // As dockerd summarises a container in its list: no environment, ports as a flat list.
      const ports = Object.entries(info.NetworkSettings.Ports ?? {}).flatMap(([key, bindings]) => {
        const [port, type] = key.split('/');
        const base = { PrivatePort: Number(port), Type: type };
        return bindings === null || bindings.length === 0
          ? [base]
          : bindings.map((b) => ({ ...base, IP: b.HostIp, PublicPort: Number(b.HostPort) }));
      });
      listed.push({
        Id: id,
        Names: [info.Name],
        Image: info.Config.Image,
        ImageID: info.Image,
        Ports: ports,
        State: info.State.Status,
        Status: info.State.Running ? 'Up 1 second' : `Exited (${info.State.ExitCode}) 1 second ago`,
        Labels: info.Config.Labels,
        HostConfig: { NetworkMode: info.HostConfig.NetworkMode },
        NetworkSettings: { Networks: info.NetworkSettings.Networks },
      } as ContainerInfo);
    }
    return Promise.resolve(listed);
  }

  getContainer(id: string): {
    inspect(options?: { abortSignal?: AbortSignal }): Promise<ContainerInspectInfo>;
  } {
    return {
      inspect: (options = {}) => {
        this.inspects += 1;
        if (this.hangInspects.has(id)) return this.held(options.abortSignal);
        if (this.brokenInspects.has(id)) return Promise.reject(new DockerApiError('server error', 500));
        if (this.failing.inspect > 0) {
          this.failing.inspect -= 1;
          return Promise.reject(new DockerApiError('server error', 500));
        }
        const json = this.documents.get(id);
        return json !== undefined
          ? Promise.resolve(JSON.parse(json) as ContainerInspectInfo)
          : Promise.reject(new DockerApiError(`No such container: ${id}`, 404));
      },
    };
  }

  /** A request that never answers: rejects only when the client aborts it, as an HTTP request would. */
  private held<T>(signal: AbortSignal | undefined): Promise<T> {
    this.heldRequests += 1;
    return new Promise<T>((_, reject) => {
      const aborted = () => {
        this.heldRequests -= 1;
        reject(new Error('request aborted', { cause: signal?.reason }));
      };
      if (signal?.aborted) aborted();
      else signal?.addEventListener('abort', aborted, { once: true });
    });
  }

  /** Streams the client has not closed; by their state, since a client may remove every listener first. */
  private liveStreams(): PassThrough[] {
    for (const stream of this.streams)
      if (stream.destroyed || stream.writableEnded) this.streams.delete(stream);
    return [...this.streams];
  }
}

function toSeconds(value: string | number | undefined): number | undefined {
  return value === undefined ? undefined : Number(value);
}
