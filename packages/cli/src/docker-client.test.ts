import { startSyntheticEngine, type SyntheticEngine } from '@registrar/core/testing';
import { makeCertificates } from '@registrar/test-servers/tls';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, request as httpRequest } from 'node:http';
import { createServer, type Server } from 'node:https';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerApiError, dockerEndpoint, LeanDocker } from './docker-client.js';
import { createDocker } from './docker.js';

let engine: SyntheticEngine;
let docker: LeanDocker;
beforeAll(async () => {
  engine = await startSyntheticEngine();
  docker = new LeanDocker({ socketPath: engine.socketPath });
});
afterAll(async () => {
  docker?.close();
  await engine?.close();
});

describe('dockerEndpoint: DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH as the Docker CLI reads them', () => {
  it('unix sockets, plain TCP, and the schemes left to dockerode', () => {
    expect(dockerEndpoint('unix:///run/docker.sock', {})).toEqual({ socketPath: '/run/docker.sock' });
    expect(dockerEndpoint(undefined, {})).toMatchObject({
      socketPath: expect.stringMatching(/docker\.sock$/) as string,
    });
    expect(dockerEndpoint('tcp://10.0.0.1:2375', {})).toEqual({ host: '10.0.0.1', port: 2375 });
    expect(dockerEndpoint('tcp://[fd00::1]:2375', {})).toEqual({ host: 'fd00::1', port: 2375 });
    expect(dockerEndpoint('ssh://me@host', {})).toBeUndefined();
    expect(dockerEndpoint('npipe:////./pipe/docker_engine', {})).toBeUndefined();
  });

  it('createDocker: the lean client, or dockerode (loaded then) for ssh://', async () => {
    expect(await createDocker(`unix://${engine.socketPath}`)).toBeInstanceOf(LeanDocker);
    expect(await createDocker('ssh://me@127.0.0.1')).toHaveProperty('modem');
  });

  it('TLS with DOCKER_TLS_VERIFY=1 or port 2376, with the files of DOCKER_CERT_PATH', () => {
    const dir = mkdtempSync(join(tmpdir(), 'docker-certs-'));
    try {
      makeCertificates(dir);
      copyFileSync(join(dir, 'client.pem'), join(dir, 'cert.pem'));
      copyFileSync(join(dir, 'client.key'), join(dir, 'key.pem'));
      const env = { DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: dir };
      const tls = dockerEndpoint('tcp://127.0.0.1:2375', env);
      expect(tls).toMatchObject({ host: '127.0.0.1', port: 2375 });
      expect(tls && 'tls' in tls && tls.tls?.ca?.toString()).toBe(readFileSync(join(dir, 'ca.pem'), 'utf8'));
      expect(dockerEndpoint('tcp://127.0.0.1:2376', {})).toEqual({ host: '127.0.0.1', port: 2376, tls: {} });
      expect(() =>
        dockerEndpoint('tcp://127.0.0.1:2376', { DOCKER_CERT_PATH: join(dir, 'missing') }),
      ).toThrow(/ca\.pem/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('LeanDocker against the synthetic engine (the Engine API on a unix socket)', () => {
  it('info, the container list and an inspect; a container that is gone is a 404 with statusCode', async () => {
    const id = engine.add({ name: 'lean-a', service: 'web' });
    expect(await docker.info()).toMatchObject({ Name: 'synthetic-engine' });
    expect((await docker.listContainers()).map((c) => c.Id)).toContain(id);
    expect((await docker.getContainer(id).inspect()).Name).toBe('/lean-a');
    const gone = await docker
      .getContainer('0'.repeat(64))
      .inspect()
      .catch((error: unknown) => error);
    expect(gone).toBeInstanceOf(DockerApiError);
    expect(gone).toMatchObject({
      statusCode: 404,
      message: expect.stringMatching(/^\(HTTP code 404\)/) as string,
    });
  });

  it('the event stream delivers lines as they come, with the filters given', async () => {
    const stream = await docker.getEvents({ filters: { type: ['container'], event: ['start'] } });
    const lines: string[] = [];
    stream.on('data', (chunk: Buffer) => lines.push(...chunk.toString().split('\n').filter(Boolean)));
    engine.stop(engine.start({ name: 'lean-ev', service: 'web' }));
    await expect.poll(() => lines.length).toBe(1);
    expect(JSON.parse(lines[0])).toMatchObject({
      Action: 'start',
      Actor: { Attributes: { name: 'lean-ev' } },
    });
    (stream as unknown as { destroy(): void }).destroy();
  });

  it('an abort ends a call whose answer never comes, and one whose body stalls, and frees the connection', async () => {
    const id = engine.add({ name: 'lean-hang', service: 'web' });
    for (const kind of ['hang', 'stall'] as const) {
      engine.fault('inspect', { kind }, id);
      const abort = new AbortController();
      const pending = docker.getContainer(id).inspect({ abortSignal: abort.signal });
      await expect.poll(() => engine.held()).toBe(1);
      abort.abort(new Error(`gave up (${kind})`));
      await expect(pending).rejects.toThrow(`gave up (${kind})`);
      await expect.poll(() => engine.held()).toBe(0);
      engine.fault('inspect', undefined, id);
    }
    const events = new AbortController();
    engine.fault('events', { kind: 'stall' });
    const stream = await docker.getEvents({ abortSignal: events.signal });
    const closed = new Promise((resolve) => stream.once('close', resolve));
    events.abort();
    await closed;
    engine.fault('events', undefined);
  });
});

describe('LeanDocker and an answer that never ends', () => {
  it('refuses an answer above its size bound at once, closing the connection, instead of holding it all', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'docker-endless-'));
    const socketPath = join(dir, 'docker.sock');
    let closed = false;
    const server = createHttpServer((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      const chunk = Buffer.alloc(64 * 1024, 'a');
      const pump = () => {
        while (!res.destroyed && res.write(chunk));
        if (!res.destroyed) res.once('drain', pump);
      };
      res.once('close', () => (closed = true));
      pump();
    });
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    const client = new LeanDocker({ socketPath }, { maxAnswerBytes: 2 * 2 ** 20 });
    try {
      const error = await client
        .getContainer('a'.repeat(64))
        .inspect()
        .catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(DockerApiError);
      expect((error as Error).message).toMatch(/^Docker \/containers\/a+\/json: the answer exceeds 2 MiB/);
      await expect.poll(() => closed).toBe(true);
    } finally {
      client.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('LeanDocker on a kept-alive connection the engine closes', () => {
  it('a request that meets the closed connection is sent once more on a fresh one', async () => {
    // Answers the first request of each connection; a second one on the same connection finds it closed,
    // as when the engine's idle timeout and the client's reuse cross.
    const dir = mkdtempSync(join(tmpdir(), 'docker-stale-'));
    const socketPath = join(dir, 'docker.sock');
    let connections = 0;
    const server = createHttpServer((req, res) => {
      const socket = req.socket as typeof req.socket & { served?: boolean };
      if (socket.served === true) {
        socket.destroy();
        return;
      }
      socket.served = true;
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{"Name":"stale"}');
    });
    server.on('connection', () => (connections += 1));
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    const client = new LeanDocker({ socketPath });
    try {
      expect(await client.info()).toEqual({ Name: 'stale' });
      expect(await client.info()).toEqual({ Name: 'stale' });
      expect(connections).toBe(2);
    } finally {
      client.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('LeanDocker over TLS (DOCKER_TLS_VERIFY=1, DOCKER_CERT_PATH; the engine behind a mutual-TLS front)', () => {
  let dir: string;
  let front: Server;
  let port: number;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'docker-tls-'));
    makeCertificates(dir);
    copyFileSync(join(dir, 'client.pem'), join(dir, 'cert.pem'));
    copyFileSync(join(dir, 'client.key'), join(dir, 'key.pem'));
    // What dockerd --tlsverify does: a server certificate for 127.0.0.1, and a client certificate required.
    front = createServer(
      {
        ca: readFileSync(join(dir, 'ca.pem')),
        cert: readFileSync(join(dir, 'server.pem')),
        key: readFileSync(join(dir, 'server.key')),
        requestCert: true,
        rejectUnauthorized: true,
      },
      (req, res) => {
        const up = httpRequest(
          { socketPath: engine.socketPath, path: req.url, method: req.method },
          (answer) => {
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            answer.pipe(res);
          },
        );
        up.on('error', () => res.destroy());
        up.end();
      },
    );
    await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
    port = (front.address() as { port: number }).port;
  });
  afterAll(async () => {
    front?.closeAllConnections();
    await new Promise((resolve) => front?.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists with the client certificate; without one the engine refuses', async () => {
    const id = engine.add({ name: 'lean-tls', service: 'web' });
    const env = { DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: dir };
    const tls = new LeanDocker(dockerEndpoint(`tcp://127.0.0.1:${port}`, env)!);
    try {
      expect((await tls.listContainers()).map((c) => c.Id)).toContain(id);
    } finally {
      tls.close();
    }
    const anonymous = new LeanDocker({
      host: '127.0.0.1',
      port,
      tls: { ca: readFileSync(join(dir, 'ca.pem')) },
    });
    try {
      await expect(anonymous.info()).rejects.toThrow();
    } finally {
      anonymous.close();
    }
  });
});

describe('start-up cost', () => {
  it('the daemon’s HTTP modules leave undici unloaded: no ES import of node:http, whose facade loads it', () => {
    // Importing node:http as an ES module builds a facade that reads every export; the lazy WebSocket ones load
    // undici, ~15 ms of every start.
    const modules = ['docker-client.js', 'metrics.js'].map((name) =>
      fileURLToPath(new URL(`../dist/${name}`, import.meta.url)),
    );
    const script = `${modules.map((m) => `await import(${JSON.stringify(m)});`).join(' ')}
      console.log(JSON.stringify(process.moduleLoadList.filter((m) => m.includes('undici'))));`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(JSON.parse(out)).toEqual([]);
  });
});
