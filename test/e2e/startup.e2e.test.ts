// What an operator sees before Docker answers (issue 24, findings 1 and 2; issue 20's hung `/info`): the start
// line first, /healthz, /metrics and /readyz from the first second with the reason Docker is waited for, one
// WARN per cause with the address and a hint, one line once Docker is reached, and a prompt exit on SIGTERM
// whatever call is in flight. The Docker sockets are unix-socket servers of the test's own.
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort, until } from '@registrar/core/testing';
import { removeDir, tempDir } from '@registrar/test-servers/process';
import { spawnBridge, type BridgeProcess } from '../harness/bridge.js';

const servers: Server[] = [];
const dirs: string[] = [];
const bridges: BridgeProcess[] = [];

afterEach(async () => {
  await Promise.all(bridges.splice(0).map((b) => b.kill()));
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
  for (const dir of dirs.splice(0)) removeDir(dir);
});

function socketPath(): string {
  const dir = tempDir('docker-sock');
  dirs.push(dir);
  return join(dir, 'docker.sock');
}

/** A Docker socket that accepts every connection and never answers; it keeps what each request began with. */
async function hungDocker(path: string) {
  const requests: string[] = [];
  const held: Socket[] = [];
  const server = createServer((socket) => {
    held.push(socket);
    socket.once('data', (chunk) => requests.push(chunk.toString().split('\r\n')[0] ?? ''));
    socket.on('error', () => undefined);
  });
  servers.push(server);
  server.on('close', () => held.forEach((s) => s.destroy()));
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return { requests };
}

/** A Docker socket that passes everything on to the real engine. */
async function proxyToDocker(path: string, engine = '/var/run/docker.sock') {
  const server = createServer((client) => {
    const upstream = createConnection(engine);
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(path, resolve));
}

async function get(port: number, path: string) {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(2_000) });
  return { status: res.status, body: await res.text() };
}

interface Readyz {
  ready: boolean;
  docker: boolean;
  reasons: Record<string, string>;
}

describe('before Docker answers', () => {
  it('a Docker that accepts but never answers: start line, health at once, a WARN naming GET /info, exit 0 on SIGTERM', async () => {
    const path = socketPath();
    const docker = await hungDocker(path);
    const port = await freePort();
    const uri = 'etcd://127.0.0.1:2379/services';
    const spawnedAt = Date.now();
    const bridge = spawnBridge([
      '--docker-host',
      `unix://${path}`,
      '--metrics-addr',
      `127.0.0.1:${port}`,
      uri,
    ]);
    bridges.push(bridge);

    const start = await bridge.waitForLog('the start line', (l) => l.msg === 'registrar starting');
    expect(start).toMatchObject({ docker: `unix://${path}`, uris: [uri], metrics: `127.0.0.1:${port}` });
    expect(bridge.logs[0]).toBe(start);

    // Health from the first second, while the first GET /info hangs (its bound is 5 s).
    await until('/healthz', async () => (await get(port, '/healthz')).status === 200, 5_000);
    const first = await get(port, '/readyz');
    const answeredAfter = Date.now() - spawnedAt;
    expect(first.status).toBe(503);
    const readyz = JSON.parse(first.body) as Readyz;
    expect(readyz).toMatchObject({ ready: false, docker: false });
    expect(readyz.reasons.docker).toBe('asking Docker for its info (GET /info)');
    expect(readyz.reasons[uri]).toMatch(/^not connected yet: waiting for Docker/);
    expect(
      bridge.logs.filter((l) => l.level >= 40),
      'no WARN yet: the call is still in flight',
    ).toEqual([]);
    expect(answeredAfter).toBeLessThan(5_000);
    const metrics = await get(port, '/metrics');
    expect(metrics.body).toMatch(/^registrar_docker_up 0$/m);
    expect(metrics.body).toMatch(/^registrar_build_info\{version="[^"]+"\} 1$/m);
    expect(docker.requests.some((r) => /^GET \/v[\d.]+\/info HTTP|^GET \/info HTTP/.test(r))).toBe(true);

    const warning = await bridge.waitForLog('the hung call named', (l) => l.level === 40, 15_000);
    expect(warning.msg).toBe(
      `waiting for Docker: Docker at unix://${path} accepted the connection but did not answer GET /info within 5 s: the engine is hung or overloaded, or a proxy in between holds the request`,
    );
    expect(warning).toMatchObject({ docker: `unix://${path}`, cause: 'timeout' });
    const after = JSON.parse((await get(port, '/readyz')).body) as Readyz;
    expect(after.reasons.docker).toContain('did not answer GET /info within 5 s');
    // The bound is a retry, not a give-up: the next call goes out, and hangs too.
    await until('GET /info asked again', () => docker.requests.length >= 2, 10_000);

    const signalledAt = Date.now();
    bridge.child.kill('SIGTERM');
    const { code } = await bridge.exited;
    expect(code).toBe(0);
    expect(Date.now() - signalledAt).toBeLessThan(2_000);
    expect(bridge.logs.filter((l) => l.level === 40)).toHaveLength(1);
    expect(bridge.logs.at(-1)).toMatchObject({ msg: 'stopped while waiting for Docker', signal: 'SIGTERM' });
  }, 60_000);

  it('a missing socket: one WARN with the address and the hint however often it is retried, then one line when Docker is reached', async () => {
    const path = socketPath();
    const port = await freePort();
    const bridge = spawnBridge([
      '--docker-host',
      `unix://${path}`,
      '--metrics-addr',
      `127.0.0.1:${port}`,
      '--node-id',
      'startup-test',
      'etcd://127.0.0.1:1/startup-test',
    ]);
    bridges.push(bridge);
    const warning = await bridge.waitForLog('the missing socket', (l) => l.level === 40);
    expect(warning.msg).toBe(
      `waiting for Docker: no Docker socket at ${path} (ENOENT): mount it into the container (-v /var/run/docker.sock:/var/run/docker.sock:ro), or point --docker-host / DOCKER_HOST at the engine`,
    );
    await until('/readyz says why', async () => {
      const r = JSON.parse((await get(port, '/readyz')).body) as Readyz;
      return r.reasons.docker === warning.msg.replace(/^waiting for Docker: /, '');
    });
    // Retried with backoff from 250 ms: in 2 s it has tried at least three times, and said so once.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    await proxyToDocker(path);
    const reached = await bridge.waitForLog(
      'Docker reached',
      (l) => l.msg === `docker reached at unix://${path}`,
    );
    expect(reached.level).toBe(30);
    expect(bridge.logs.filter((l) => l.level === 40 && l.msg.startsWith('waiting for Docker'))).toEqual([
      warning,
    ]);
    await bridge.waitForLog('the bridge started', (l) => l.msg === 'bridge starting');
    await until('/readyz: Docker streams, the registry is the reason now', async () => {
      const r = JSON.parse((await get(port, '/readyz')).body) as Readyz;
      return (
        r.docker &&
        r.reasons.docker === undefined &&
        r.reasons['etcd://127.0.0.1:1/startup-test'] !== undefined
      );
    });
    bridge.child.kill('SIGTERM');
    expect((await bridge.exited).code).toBe(0);
  }, 60_000);
});
