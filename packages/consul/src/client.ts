import { ConfigError } from '@registrar/core';
import { quote, renamedOption } from '@registrar/core/kit';
import type { Agent, fetch as UndiciFetch } from 'undici';
import { notJson, refusal, sendFailure } from './errors.js';

export interface ConsulTlsOptions {
  /** PEM CA bundle that signed the agent's certificate. */
  ca?: string | Buffer;
  /** PEM client certificate and key, when the agent verifies incoming connections. */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** Default true; false accepts any agent certificate (CONSUL_HTTP_SSL_VERIFY=false). */
  rejectUnauthorized?: boolean;
  servername?: string;
}

export interface ConsulResponse {
  status: number;
  text: string;
  /** `X-Consul-Index` (blocking queries), when the answer carries a number there. */
  index?: number;
}

type Fetcher = (
  url: string,
  init: { method: string; headers: Record<string, string>; body?: string; signal: AbortSignal },
) => Promise<{
  status: number;
  text(): Promise<string>;
  headers?: { get(name: string): string | null };
}>;

export interface ClientOptions {
  baseUrl: URL;
  token?: string;
  namespace?: string;
  partition?: string;
  tls?: ConsulTlsOptions;
  timeoutMs: number;
  fetch?: Fetcher;
}

/** The agent's base URL; default the local agent. */
export function agentUrl(url: string | URL | undefined): URL {
  const text = String(url ?? 'http://127.0.0.1:8500');
  if (!URL.canParse(text) || !/^https?:$/.test(new URL(text).protocol)) {
    throw new ConfigError(
      `Consul agent URL ${quote(text, 120)} is not http://host:port or https://host:port`,
    );
  }
  return new URL(text);
}

/**
 * The agent's base URL from `hosts` (one `host:port` or `http(s)://host:port`; http unless `tls` is given, port
 * 8500 / 8501 unless given) or the deprecated `url`; default `http://127.0.0.1:8500`.
 */
export function agentOf(
  where: string,
  options: { readonly hosts?: readonly string[]; readonly url?: string | URL; readonly tls?: unknown },
): URL {
  const url = renamedOption<unknown>(where, options, 'hosts', 'url');
  if (options.hosts === undefined) return agentUrl(url as string | URL | undefined);
  const { hosts } = options;
  if (!Array.isArray(hosts) || hosts.length !== 1 || typeof hosts[0] !== 'string' || hosts[0] === '') {
    throw new ConfigError(
      `${where}: hosts must name exactly one Consul agent (services are registered with the node's own agent), e.g. ['127.0.0.1:8500']`,
      { field: 'hosts' },
    );
  }
  const [host] = hosts as [string];
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(host)) return agentUrl(host);
  const https = options.tls !== undefined;
  const port = https ? 8501 : 8500;
  const colons = host.split(':').length - 1;
  const withPort =
    /^\[.*\]:\d+$/.test(host) || (colons === 1 && /:\d+$/.test(host))
      ? host
      : colons > 1 && !host.startsWith('[')
        ? `[${host}]:${port}` // a bare IPv6 address
        : `${host}:${port}`;
  return agentUrl(`${https ? 'https' : 'http'}://${withPort}`);
}

// IDs go into the path; `:` is legal there and keeps logs readable.
export const pathId = (id: string): string => encodeURIComponent(id).replace(/%3A/gi, ':');

/** Thin agent API client: one place for the token, ns/partition, timeouts and error mapping. */
export class ConsulClient {
  private readonly fetcher: Fetcher;
  /** The TLS agent, made at the first request: undici is loaded only by a client that speaks TLS. */
  private dispatcher: Promise<{ agent: Agent; fetch: typeof UndiciFetch }> | undefined;
  private plain: ReturnType<typeof plainHttp> | undefined;

  constructor(private readonly options: ClientOptions) {
    if (options.fetch) {
      this.fetcher = options.fetch;
    } else if (options.tls) {
      const { ca, cert, key, rejectUnauthorized, servername } = options.tls;
      const connect = {
        ...(ca !== undefined && { ca }),
        ...(cert !== undefined && { cert }),
        ...(key !== undefined && { key }),
        ...(rejectUnauthorized !== undefined && { rejectUnauthorized }),
        ...(servername !== undefined && { servername }),
      };
      this.fetcher = async (url, init) => {
        this.dispatcher ??= import('undici').then((undici) => ({
          agent: new undici.Agent({ connect }),
          fetch: undici.fetch,
        }));
        const { agent, fetch: undiciFetch } = await this.dispatcher;
        return undiciFetch(url, { ...init, dispatcher: agent });
      };
    } else {
      this.plain = plainHttp();
      this.fetcher = this.plain.fetch;
    }
  }

  /** Where requests go, for logs: never includes the token. */
  get target(): string {
    return this.options.baseUrl.origin;
  }

  get hasToken(): boolean {
    return !!this.options.token;
  }

  /**
   * One request. Resolves with 2xx and, when `allow404`, with 404; maps everything else onto core's errors.
   */
  async request(
    method: 'GET' | 'PUT',
    path: string,
    options: {
      body?: unknown;
      query?: Record<string, string>;
      allow404?: boolean;
      what?: string;
      /** Instead of the client's timeout: a blocking query's wait plus a margin. */
      timeoutMs?: number;
      /** Cancels the request (an unsubscribed follower); it then rejects with a connection error. */
      signal?: AbortSignal;
      /** What a 403 says the token needs; default what the registry needs. */
      permission?: string;
    } = {},
  ): Promise<ConsulResponse> {
    const what = options.what ?? `${method} ${path}`;
    const timeoutMs = options.timeoutMs ?? this.options.timeoutMs;
    let response: Awaited<ReturnType<Fetcher>>;
    let text: string;
    try {
      const url = new URL(path, this.options.baseUrl);
      for (const [k, v] of Object.entries(options.query ?? {})) url.searchParams.set(k, v);
      if (this.options.namespace) url.searchParams.set('ns', this.options.namespace);
      if (this.options.partition) url.searchParams.set('partition', this.options.partition);
      const headers: Record<string, string> = {};
      if (this.options.token) headers['X-Consul-Token'] = this.options.token;
      if (options.body !== undefined) headers['Content-Type'] = 'application/json';
      const timeout = AbortSignal.timeout(timeoutMs);
      response = await this.fetcher(url.toString(), {
        method,
        headers,
        ...(options.body !== undefined && { body: JSON.stringify(options.body) }),
        signal: options.signal ? AbortSignal.any([timeout, options.signal]) : timeout,
      });
      text = await response.text();
    } catch (err) {
      throw sendFailure(err, {
        what,
        target: this.target,
        timeoutMs,
        ...(options.signal !== undefined && { signal: options.signal }),
        ...(this.options.token !== undefined && { token: this.options.token }),
      });
    }
    const { status } = response;
    const index = Number(response.headers?.get('X-Consul-Index') ?? NaN);
    if (status >= 200 && status < 300) return { status, text, ...(Number.isFinite(index) && { index }) };
    if (status === 404 && options.allow404) return { status, text };
    throw refusal(status, text, {
      what,
      target: this.target,
      hasToken: this.hasToken,
      ...(options.permission !== undefined && { permission: options.permission }),
    });
  }

  /** The JSON of an answer; one that is not JSON (a proxy's error page) is a connection error. */
  parse(response: ConsulResponse, what: string): unknown {
    try {
      return JSON.parse(response.text);
    } catch (err) {
      throw notJson(this.target, what, response.text, err);
    }
  }

  async close(): Promise<void> {
    this.plain?.close();
    await (await this.dispatcher)?.agent.close();
  }
}

/**
 * Plain-http requests (the node's own agent, the common case) through node:http with kept-alive connections,
 * answered as fetch answers: Node's fetch costs every call a WHATWG request, headers and body stream (about
 * twice the CPU per registration), and its first call loads Node's bundled undici (~15 ms, ~5 MiB). A failure
 * of the connection rejects as fetch's does (`TypeError('fetch failed')` with the cause), so the errors read
 * the same; a request node:http refuses to build (a header with a newline) throws its own TypeError.
 */
function plainHttp(): { fetch: Fetcher; close(): void } {
  // Not an ES import: the ES facade of node:http loads undici (see the CLI's docker-client.ts).
  const http = process.getBuiltinModule('node:http');
  const agent = new http.Agent({ keepAlive: true });
  const fetcher: Fetcher = (url, init) =>
    new Promise((resolve, reject) => {
      // An abort (the timeout, a cancel) rejects with node:http's AbortError, which reads as fetch's.
      const failed = (cause: Error) =>
        reject(cause.name === 'AbortError' ? cause : Object.assign(new TypeError('fetch failed'), { cause }));
      const req = http.request(
        url,
        { method: init.method, headers: init.headers, agent, signal: init.signal },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('error', failed);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            resolve({
              status: res.statusCode ?? 0,
              text: () => Promise.resolve(text),
              headers: {
                get: (name) => {
                  const value = res.headers[name.toLowerCase()];
                  return Array.isArray(value) ? value.join(', ') : (value ?? null);
                },
              },
            });
          });
        },
      );
      req.on('error', failed);
      req.end(init.body);
    });
  return { fetch: fetcher, close: () => agent.destroy() };
}
