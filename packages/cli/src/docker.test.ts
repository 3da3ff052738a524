import Docker from 'dockerode';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { boundedInfo, describeDockerError } from './docker.js';

const dir = mkdtempSync(join(tmpdir(), 'registrar-docker-test-'));
const servers: Server[] = [];
afterAll(() => {
  for (const s of servers) s.close();
  rmSync(dir, { recursive: true, force: true });
});

async function listen(server: Server, where: string | number): Promise<number> {
  servers.push(server);
  await new Promise<void>((resolve) =>
    typeof where === 'string' ? server.listen(where, resolve) : server.listen(where, '127.0.0.1', resolve),
  );
  const address = server.address();
  return typeof address === 'object' && address !== null ? address.port : 0;
}

/** The problem a real `GET /info` against `docker` runs into, as the bridge and `check` would say it. */
async function problemOf(docker: Docker, address: string, timeoutMs = 5_000) {
  const result = await boundedInfo(docker, new AbortController().signal, timeoutMs);
  if ('info' in result) throw new Error('Docker answered');
  return describeDockerError(result.error, address, 'GET /info', result.timedOut, timeoutMs);
}

describe('describeDockerError: one sentence with the address and the likely cause', () => {
  it('a missing socket (ENOENT): mount it, or point --docker-host / DOCKER_HOST at the engine', async () => {
    const path = join(dir, 'missing.sock');
    const problem = await problemOf(new Docker({ socketPath: path }), `unix://${path}`);
    expect(problem).toEqual({
      cause: 'ENOENT',
      sentence: `no Docker socket at ${path} (ENOENT): mount it into the container (-v /var/run/docker.sock:/var/run/docker.sock:ro), or point --docker-host / DOCKER_HOST at the engine`,
    });
  });

  it('nothing listening (ECONNREFUSED): is dockerd running there?', async () => {
    const port = await listen(createServer(), 0);
    servers.pop()?.close();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const problem = await problemOf(new Docker({ host: '127.0.0.1', port }), `tcp://127.0.0.1:${port}`);
    expect(problem.cause).toBe('ECONNREFUSED');
    expect(problem.sentence).toBe(
      `nothing accepts connections at tcp://127.0.0.1:${port} (ECONNREFUSED): is dockerd running there, and do --docker-host / DOCKER_HOST name its socket or port?`,
    );
  });

  it('TLS spoken to a plain port: the certificates and DOCKER_TLS_VERIFY', async () => {
    const port = await listen(createHttpServer((_, res) => res.end('{}')) as unknown as Server, 0);
    const docker = new Docker({ host: '127.0.0.1', port, protocol: 'https' });
    const problem = await problemOf(docker, `tcp://127.0.0.1:${port}`);
    expect(problem.cause).toBe('TLS');
    expect(problem.sentence).toMatch(
      new RegExp(
        `^the TLS handshake with Docker at tcp://127\\.0\\.0\\.1:${port} failed \\((EPROTO|ERR_SSL_\\w+)\\): check DOCKER_TLS_VERIFY`,
      ),
    );
  });

  it('a proxy that refuses the call (HTTP 403): says which call and that the proxy must allow it', async () => {
    const path = join(dir, 'proxy.sock');
    await listen(
      createHttpServer((_, res) => {
        res.writeHead(403, { 'content-type': 'text/plain' });
        res.end('Forbidden');
      }) as unknown as Server,
      path,
    );
    const problem = await problemOf(new Docker({ socketPath: path }), `unix://${path}`);
    expect(problem.cause).toBe('HTTP 403');
    expect(problem.sentence).toMatch(
      /^Docker at unix:\/\/\S+ answered GET \/info with HTTP 403 \(.*\): a socket proxy in between must allow it/,
    );
  });

  it('an engine that accepts and never answers: bounded, named as a timeout of that call', async () => {
    const path = join(dir, 'hung.sock');
    await listen(
      createServer(() => undefined),
      path,
    );
    const started = performance.now();
    const problem = await problemOf(new Docker({ socketPath: path }), `unix://${path}`, 300);
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(problem).toEqual({
      cause: 'timeout',
      sentence: `Docker at unix://${path} accepted the connection but did not answer GET /info within 0.3 s: the engine is hung or overloaded, or a proxy in between holds the request`,
    });
  });

  it('permission denied (EACCES): the socket’s group, or the socket proxy', () => {
    // Root (as CI runs) is never refused a socket, so the error is built as Node reports it.
    const error = Object.assign(new Error('connect EACCES /var/run/docker.sock'), { code: 'EACCES' });
    expect(describeDockerError(error, 'unix:///var/run/docker.sock').sentence).toBe(
      'permission denied on the Docker socket /var/run/docker.sock (EACCES): run registrar in the socket\'s group (the docker group; in a container --group-add "$(stat -c %g /var/run/docker.sock)"), or use the read-only socket proxy',
    );
  });

  it('an abort by the caller (SIGTERM) ends the call at once', async () => {
    const path = join(dir, 'hung2.sock');
    await listen(
      createServer(() => undefined),
      path,
    );
    const stop = new AbortController();
    const pending = boundedInfo(new Docker({ socketPath: path }), stop.signal, 60_000);
    setTimeout(() => stop.abort(), 100);
    const started = performance.now();
    const result = await pending;
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(result).toMatchObject({ timedOut: false });
  });
});
