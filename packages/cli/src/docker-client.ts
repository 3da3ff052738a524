// The Docker Engine API client of the daemon: node:http over the engine's unix socket or TCP, node:https with
// the Docker CLI's TLS files, nothing else loaded. dockerode (docker-modem, ssh2 and its WebAssembly, split-ca,
// debug...) cost every process ~170 ms of start-up, 14 MiB of private memory and a third more CPU per inspect
// (bench/RESULTS.md, "Docker client"), for the seven GET requests the bridge makes. It remains the client for
// the schemes this one does not speak (ssh://, npipe://), loaded only then.
import type { ContainerInfo, ContainerInspectInfo, GetEventsOptions } from 'dockerode';
import { readFileSync } from 'node:fs';
import type { Agent as HttpAgent, IncomingMessage, RequestOptions } from 'node:http';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { accessSync } from 'node:fs';

// node:http as the built-in module, not an ES import: the ES facade of node:http reads every export, and the
// lazy `WebSocket` ones load undici, ~15 ms of every start-up (and its memory) for nothing the bridge uses.
const http = process.getBuiltinModule('node:http');

/** Where the engine answers, as the Docker CLI reads it from DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH. */
export type DockerEndpoint =
  | { readonly socketPath: string }
  | {
      readonly host: string;
      readonly port: number;
      readonly tls?: { readonly ca?: Buffer; readonly cert?: Buffer; readonly key?: Buffer };
    };

/**
 * The endpoint `host` (a DOCKER_HOST value; undefined or empty: the local socket) names, with the TLS files
 * of `env`; undefined for a scheme only dockerode speaks (ssh://, npipe://). The rules are docker-modem's, so
 * nothing changes for a user who set these for dockerode: TLS when DOCKER_TLS_VERIFY=1 or the port is 2376
 * (the server's certificate is then verified), with ca.pem, cert.pem and key.pem from DOCKER_CERT_PATH.
 */
export function dockerEndpoint(
  host: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
): DockerEndpoint | undefined {
  if (host === undefined || host === '') return { socketPath: defaultSocket() };
  if (host.startsWith('unix://')) return { socketPath: host.slice('unix://'.length) || defaultSocket() };
  if (/^(ssh|npipe):\/\//.test(host)) return undefined;
  const url = new URL(host.includes('//') ? host : `tcp://${host}`);
  const port = Number(url.port || (url.protocol === 'https:' ? 2376 : 2375));
  const hostname = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const tls = env.DOCKER_TLS_VERIFY === '1' || port === 2376 || url.protocol === 'https:';
  if (!tls) return { host: hostname, port };
  const dir = env.DOCKER_CERT_PATH;
  const file = (name: string) => (dir ? readFileSync(join(dir, name)) : undefined);
  const [ca, cert, key] = [file('ca.pem'), file('cert.pem'), file('key.pem')];
  return {
    host: hostname,
    port,
    tls: { ...(ca && { ca }), ...(cert && { cert }), ...(key && { key }) },
  };
}

/** Docker Desktop's per-user socket when there is one, else the system's (docker-modem's choice). */
function defaultSocket(): string {
  const user = join(homedir(), '.docker', 'run', 'docker.sock');
  try {
    accessSync(user);
    return user;
  } catch {
    return '/var/run/docker.sock';
  }
}

/** An answer other than 2xx: its status as `statusCode` (404: no such container), the engine's message. */
export class DockerApiError extends Error {
  override readonly name = 'DockerApiError';
  constructor(
    readonly statusCode: number,
    message: string,
    readonly json?: unknown,
  ) {
    super(message);
  }
}

type Query = Record<string, string | number | boolean | object | undefined>;

/** `filters` and other objects go as JSON, as the Engine API wants them. */
function queryString(query: Query): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || key === 'abortSignal') continue;
    params.set(key, typeof value === 'object' ? JSON.stringify(value) : String(value));
  }
  const text = params.toString();
  return text === '' ? '' : `?${text}`;
}

interface Signalled {
  readonly abortSignal?: AbortSignal;
}
type ListOptions = Signalled & { readonly filters?: string | Record<string, unknown> };

/**
 * The calls the bridge, the Swarm bridge, `check` and `explain` make (core's DockerApi and SwarmDockerApi),
 * each cancelled by its `abortSignal` at any point, the body included. Connections are kept alive.
 */
export class LeanDocker {
  private readonly agent: HttpAgent;
  private readonly base: RequestOptions;
  private readonly send: typeof http.request;
  private readonly maxAnswerBytes: number;

  /** `maxAnswerBytes`: the largest answer held (default `MAX_ANSWER_BYTES`). */
  constructor(endpoint: DockerEndpoint, options: { readonly maxAnswerBytes?: number } = {}) {
    this.maxAnswerBytes = options.maxAnswerBytes ?? MAX_ANSWER_BYTES;
    if ('socketPath' in endpoint) {
      this.agent = new http.Agent({ keepAlive: true });
      this.base = { socketPath: endpoint.socketPath, agent: this.agent };
      this.send = http.request;
    } else if (endpoint.tls) {
      // Loaded only for TLS: node:https brings tls and its crypto (7 MiB) to a process that may never need them.
      const https = process.getBuiltinModule('node:https');
      this.agent = new https.Agent({ keepAlive: true, ...endpoint.tls });
      this.base = { host: endpoint.host, port: endpoint.port, agent: this.agent };
      this.send = https.request;
    } else {
      this.agent = new http.Agent({ keepAlive: true });
      this.base = { host: endpoint.host, port: endpoint.port, agent: this.agent };
      this.send = http.request;
    }
  }

  info(options: Signalled = {}): Promise<unknown> {
    return this.json('/info', {}, options.abortSignal);
  }

  listContainers(options: Signalled & { readonly all?: boolean } = {}): Promise<ContainerInfo[]> {
    return this.json('/containers/json', { all: options.all }, options.abortSignal);
  }

  getContainer(id: string): { inspect(options?: Signalled): Promise<ContainerInspectInfo> } {
    return {
      inspect: (options = {}) =>
        this.json(`/containers/${encodeURIComponent(id)}/json`, {}, options.abortSignal),
    };
  }

  listServices(options: ListOptions = {}): Promise<unknown[]> {
    return this.json('/services', { filters: options.filters }, options.abortSignal);
  }

  listTasks(options: ListOptions = {}): Promise<unknown[]> {
    return this.json('/tasks', { filters: options.filters }, options.abortSignal);
  }

  listNodes(options: Signalled = {}): Promise<unknown[]> {
    return this.json('/nodes', {}, options.abortSignal);
  }

  /** The event stream: the open response, read by the caller (JSON lines); its abort ends it. */
  getEvents(options: GetEventsOptions & Signalled = {}): Promise<NodeJS.ReadableStream> {
    const { since, until, filters } = options as { since?: number; until?: number; filters?: unknown };
    return this.open(
      '/events',
      { since, until, filters: filters as object | undefined },
      options.abortSignal,
    );
  }

  /** Close the kept-alive connections. */
  close(): void {
    this.agent.destroy();
  }

  private async json<T>(path: string, query: Query, signal: AbortSignal | undefined): Promise<T> {
    const res = await this.open(path, query, signal);
    const body = await readAll(res, signal, path, this.maxAnswerBytes);
    try {
      return JSON.parse(body) as T;
    } catch {
      throw new DockerApiError(
        res.statusCode ?? 0,
        `Docker ${path}: the answer is not JSON: ${body.slice(0, 200)}`,
      );
    }
  }

  /**
   * GET `path`; resolves with the response once its headers say 2xx, rejects with a DockerApiError else. A
   * kept-alive connection the engine closed just as it was reused (ECONNRESET, EPIPE before any answer) is
   * not the engine's answer: the request goes once more on a fresh connection, as Node's documentation advises.
   */
  private async open(path: string, query: Query, signal: AbortSignal | undefined): Promise<IncomingMessage> {
    try {
      return await this.attempt(path, query, signal);
    } catch (error) {
      if (!(error instanceof StaleConnection)) throw error;
      return this.attempt(path, query, signal, true);
    }
  }

  private attempt(
    path: string,
    query: Query,
    signal: AbortSignal | undefined,
    retried = false,
  ): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(abortError(signal));
      const req = this.send(
        { ...this.base, method: 'GET', path: `${path}${queryString(query)}`, ...(signal && { signal }) },
        (res) => {
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) return resolve(res);
          readAll(res, signal, path, this.maxAnswerBytes).then(
            (body) => reject(apiError(status, body)),
            (error: unknown) => reject(error instanceof Error ? error : new Error(String(error))),
          );
        },
      );
      req.on('error', (error: NodeJS.ErrnoException) => {
        if (signal?.aborted) return reject(abortError(signal));
        const stale = req.reusedSocket && !retried && (error.code === 'ECONNRESET' || error.code === 'EPIPE');
        reject(stale ? new StaleConnection(error) : error);
      });
      req.end();
    });
  }
}

/** A kept-alive connection that was closed under the request: sent again once. */
class StaleConnection extends Error {
  constructor(readonly original: Error) {
    super(original.message);
  }
}

/**
 * The most of one answer held in memory. The engine is untrusted: an answer that never ends would otherwise
 * fill memory before the call's time bound ends it. A list of 10,000 containers is ~20 MiB.
 */
export const MAX_ANSWER_BYTES = 128 * 2 ** 20;

/**
 * The whole body as text; rejects when the response is aborted (with the abort's reason), cut, or larger
 * than `maxBytes` (the connection is then closed).
 */
function readAll(
  res: IncomingMessage,
  signal: AbortSignal | undefined,
  path: string,
  maxBytes: number,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    const cut = (error?: Error) =>
      reject(signal?.aborted ? abortError(signal) : (error ?? new Error('Docker answer cut off')));
    res.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > maxBytes) {
        chunks.length = 0;
        reject(
          new DockerApiError(
            res.statusCode ?? 0,
            `Docker ${path}: the answer exceeds ${maxBytes / 2 ** 20} MiB; refusing it (an engine or proxy in front of it misbehaves)`,
          ),
        );
        res.destroy();
        return;
      }
      chunks.push(chunk);
    });
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.on('error', cut);
    res.on('aborted', () => cut());
  });
}

/** What docker-modem says for the same answer: `(HTTP code 404) no such container - <message>`. */
function apiError(status: number, body: string): DockerApiError {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    json = undefined;
  }
  const message = (json as { message?: unknown } | undefined)?.message;
  const text = typeof message === 'string' ? message : body.trim().slice(0, 300);
  const reason =
    {
      304: 'not modified',
      400: 'bad parameter',
      404: 'no such container',
      409: 'conflict',
      500: 'server error',
    }[status] ?? 'unexpected';
  return new DockerApiError(status, `(HTTP code ${status}) ${reason} - ${text}`, json);
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error
    ? signal.reason
    : new DOMException('The operation was aborted', 'AbortError');
}
