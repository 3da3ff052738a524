import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { freePort, GiveUp, until } from '@registrar/core/testing';
import { removeDir, startProcess, tempDir, type ServerProcess } from './process.js';

/** A real HAProxy (Debian's package) on loopback: one frontend per backend, each backend a `server-template`. */
export interface HaproxyServer {
  /** The runtime API's unix socket (`stats socket ... level admin`). */
  readonly socket: string;
  /** `http://127.0.0.1:<port>` of the frontend in front of `backend`. */
  url(backend: string): string;
  /** Stop it (SIGKILL) and start it again from its configuration: every slot empty again. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export interface HaproxyOptions {
  /** Backend name → number of server slots. */
  readonly backends: Readonly<Record<string, number>>;
}

function config(
  socket: string,
  ports: Map<string, number>,
  backends: Readonly<Record<string, number>>,
): string {
  const sections = Object.entries(backends).map(
    ([name, slots]) => `
frontend ${name}
  bind 127.0.0.1:${ports.get(name)}
  default_backend ${name}

backend ${name}
  balance roundrobin
  server-template s 1-${slots} 127.0.0.1:1`,
  );
  // Like deploy/haproxy/haproxy.cfg: empty slots, health checks, no retries that would hide a failed request.
  return `global
  stats socket ${socket} level admin
  stats timeout 10s

defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  retries 0
  default-server check inter 1s fall 2 rise 1 disabled
${sections.join('\n')}
`;
}

export async function startHaproxy(options: HaproxyOptions): Promise<HaproxyServer> {
  const dir = tempDir('haproxy');
  const socket = join(dir, 'admin.sock');
  const ports = new Map<string, number>();
  for (const name of Object.keys(options.backends)) ports.set(name, await freePort());
  const file = join(dir, 'haproxy.cfg');
  writeFileSync(file, config(socket, ports, options.backends));
  const first = Object.keys(options.backends)[0]!;

  let server: ServerProcess | undefined;
  const start = async () => {
    const proc = startProcess('haproxy', ['-db', '-f', file], { dir, name: 'haproxy' });
    server = proc;
    await until('haproxy accepting on its frontend', async () => {
      if (proc.child.exitCode !== null) throw new GiveUp(`haproxy exited (log: ${proc.logFile})`);
      return (await status(`http://127.0.0.1:${ports.get(first)}/`)) !== undefined;
    });
  };
  await start();
  return {
    socket,
    url: (backend) => `http://127.0.0.1:${ports.get(backend)}`,
    async restart() {
      await server?.kill('SIGKILL');
      await start();
    },
    async stop() {
      await server?.kill('SIGKILL');
      removeDir(dir);
    },
  };
}

/** The status of one GET (a fresh connection each time), or undefined when nothing answered. */
export function status(url: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const req = request(url, { agent: false, timeout: 2_000 }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode));
    });
    req.once('error', () => resolve(undefined));
    req.once('timeout', () => req.destroy());
    req.end();
  });
}

/** One GET: the status and body, or the error. */
export function get(url: string): Promise<{ status: number; body: string } | { error: Error }> {
  return new Promise((resolve) => {
    const req = request(url, { agent: false, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.once('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.once('error', (error) => resolve({ error }));
    });
    req.once('error', (error) => resolve({ error }));
    req.once('timeout', () => req.destroy(new Error('no answer within 5 s')));
    req.end();
  });
}

/** A request that did not come back `200`, with when it was sent. */
export interface FailedRequest {
  readonly at: number;
  readonly what: string;
}

/**
 * Requests in a loop (`concurrency` at a time, each on a fresh connection, the way a health-checked load
 * balancer's clients come and go) until `stop()`, counting the ones that failed and recording which upstream
 * (the body) answered when.
 */
export function loadGenerator(url: string, concurrency = 4) {
  let running = true;
  let ok = 0;
  const failed: FailedRequest[] = [];
  const firstSeen = new Map<string, number>();
  const lastSeen = new Map<string, number>();
  const worker = async () => {
    while (running) {
      const at = Date.now();
      const result = await get(url);
      if ('error' in result) failed.push({ at, what: result.error.message });
      else if (result.status !== 200)
        failed.push({ at, what: `status ${result.status}: ${result.body.trim()}` });
      else {
        ok += 1;
        const who = result.body.trim();
        if (!firstSeen.has(who)) firstSeen.set(who, Date.now());
        lastSeen.set(who, Date.now());
      }
    }
  };
  const workers = Array.from({ length: concurrency }, worker);
  return {
    /** When `upstream` first answered a request, if it has. */
    firstSeen: (upstream: string) => firstSeen.get(upstream),
    lastSeen: (upstream: string) => lastSeen.get(upstream),
    get ok() {
      return ok;
    },
    get failed(): readonly FailedRequest[] {
      return failed;
    },
    async stop() {
      running = false;
      await Promise.all(workers);
      return { ok, failed };
    },
  };
}
