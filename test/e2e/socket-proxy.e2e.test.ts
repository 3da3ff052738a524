// Least privilege, proven: registrar behind the read-only Docker socket proxy of deploy/docker-socket-proxy
// (real HAProxy) registers, drains, deregisters, re-lists and checks, and every request it sends is allowed.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { until } from '@registrar/core/testing';
import { removeDir, tempDir } from '@registrar/test-servers/process';
import { runCli } from '../harness/bridge.js';
import { startBackend, type Backend } from '../harness/backends.js';
import { faultScope, idsOf } from '../faults/common.js';

const CONFIG = fileURLToPath(new URL('../../deploy/docker-socket-proxy/haproxy.cfg', import.meta.url));

interface Proxy {
  readonly socket: string;
  /** Stop HAProxy (soft stop: it logs the open event streams as they end) and return what it logged. */
  stop(): Promise<{ method: string; path: string; status: number }[]>;
}
const proxies: Proxy[] = [];

/** `curl --unix-socket`: Node's fetch cannot reach a unix socket. Resolves with the status code. */
const curl = (socket: string, args: string[]) =>
  new Promise<string>((resolve) => {
    const child = spawn('curl', [
      '-s',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '--unix-socket',
      socket,
      ...args,
    ]);
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.once('close', () => resolve(out));
  });

async function startProxy(): Promise<Proxy> {
  const dir = tempDir('socket-proxy');
  const socket = join(dir, 'docker.sock');
  const child = spawn('haproxy', ['-f', CONFIG], {
    env: { ...process.env, PROXY_BIND: `unix@${socket}`, DOCKER_SOCKET: '/var/run/docker.sock' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout.on('data', (chunk: Buffer) => (log += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (log += chunk.toString()));
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const proxy: Proxy = {
    socket,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGUSR1');
      await closed;
      removeDir(dir);
      return [...log.matchAll(/ (\d{3}) \d+ .*"([A-Z]+) (\S+) HTTP\/1\.1"$/gm)].map((m) => ({
        status: Number(m[1]),
        method: m[2]!,
        path: m[3]!.split('?')[0]!,
      }));
    },
  };
  proxies.push(proxy);
  await until('haproxy answering on its socket', async () => {
    if (child.exitCode !== null) throw new Error(`haproxy exited: ${log}`);
    return (await curl(socket, ['http://docker/info'])) === '200';
  });
  return proxy;
}

let backend: Backend;
beforeAll(async () => {
  backend = await startBackend('etcd');
});
afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.stop()));
});
afterAll(async () => {
  await backend?.close();
});

describe('the read-only socket proxy (deploy/docker-socket-proxy/haproxy.cfg, real HAProxy)', () => {
  it('refuses writes and every read registrar does not need', async () => {
    const { socket } = await startProxy();
    expect(await curl(socket, ['-X', 'POST', 'http://docker/containers/create'])).toBe('403');
    expect(await curl(socket, ['-X', 'DELETE', 'http://docker/containers/abc'])).toBe('403');
    expect(await curl(socket, ['http://docker/containers/abc/archive?path=/'])).toBe('403');
    expect(await curl(socket, ['http://docker/images/json'])).toBe('403');
    expect(await curl(socket, ['http://docker/v1.41/containers/json'])).toBe('200');
  });

  it('registrar does its whole job through it and sends nothing the proxy refuses', async () => {
    const proxy = await startProxy();
    const env = { DOCKER_HOST: `unix://${proxy.socket}` };
    const t = faultScope('etcd');
    try {
      expect((await runCli(['check', backend.uri(t.scope)], env)).code).toBe(0);
      // The stall check (bounded /events queries) every second, a full re-list every second.
      const b = t.bridge(backend.uri(t.scope), t.node, ['--stall-check', '1', '--resync', '1'], env);
      const a = await t.container('a');
      await t.converged(backend, 'a registered through the proxy', idsOf(t.node, [a.name]));
      await a.container.stop({ t: 5 });
      await t.converged(backend, 'a withdrawn at its stop signal and removed', []);
      // Its own container's line: the bridge logs other test files' containers stopping too.
      await b.waitForLog(
        'the withdrawal',
        (l) => l.msg === 'container stopping: withdrawing its services' && l.container === a.name,
      );
      const c = await t.container('c');
      await t.converged(backend, 'c registered', idsOf(t.node, [c.name]));
    } finally {
      await t.cleanup();
    }
    proxies.splice(proxies.indexOf(proxy), 1);
    const seen = await proxy.stop();
    // 403 is the proxy refusing; a 404 is Docker's answer for a container gone meanwhile (it passed the proxy).
    expect(seen.filter((r) => r.status === 403)).toEqual([]);
    expect(seen.filter((r) => r.method !== 'GET')).toEqual([]);
    const paths = new Set(seen.map((r) => `${r.method} ${r.path.replace(/\/[0-9a-f]{64}\//, '/<id>/')}`));
    for (const path of ['GET /info', 'GET /events', 'GET /containers/json', 'GET /containers/<id>/json']) {
      expect(
        [...paths].some((p) => p.endsWith(path.slice(4)) && p.startsWith('GET ')),
        `${path} among ${[...paths].join(', ')}`,
      ).toBe(true);
    }
  });
});
