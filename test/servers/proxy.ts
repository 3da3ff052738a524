import {
  createServer as createHttpServer,
  request,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { existsSync, rmSync } from 'node:fs';
import { freePort } from '@registrar/core/testing';

/**
 * A TCP proxy on loopback in front of a server, for fault injection: `down()` refuses connections and cuts
 * the open ones (the server looks gone), `up()` listens again on the same port.
 */
export interface TcpProxy {
  readonly port: number;
  down(): Promise<void>;
  up(): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const port = await freePort();
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      if (server) return resolve();
      const s = createServer((client) => {
        const upstream = createConnection(targetPort, targetHost);
        sockets.add(client).add(upstream);
        const drop = () => {
          client.destroy();
          upstream.destroy();
          sockets.delete(client);
          sockets.delete(upstream);
        };
        client.on('error', drop).on('close', drop);
        upstream.on('error', drop).on('close', drop);
        client.pipe(upstream).pipe(client);
      });
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => resolve());
      server = s;
    });
  const down = async () => {
    const s = server;
    server = undefined;
    for (const socket of sockets) socket.destroy();
    sockets.clear();
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  };
  await listen();
  return { port, down, up: listen, close: down };
}

/** Modes of the Docker API proxy. */
export interface DockerProxy {
  /** For `DOCKER_HOST`. */
  readonly host: string;
  /** Answer `GET /containers/json` with `[]` (a Docker API that briefly lists nothing). */
  emptyList: boolean;
  /** Hold the response to every new live `/events` request: no status line, no headers, nothing. */
  holdEventStreams: boolean;
  /** Keep the event streams open now, but deliver nothing more on them (a silently stalled stream). */
  stallOpenEventStreams(): number;
  /** Cut every connection and refuse new ones (the engine restarting). */
  down(): Promise<void>;
  up(): Promise<void>;
  /** Requests seen, as `METHOD path`. */
  readonly requests: string[];
  close(): Promise<void>;
}

/** An HTTP proxy on a unix socket in front of the real Docker socket, with fault switches. */
export async function startDockerProxy(
  socketPath: string,
  dockerSocket = '/var/run/docker.sock',
): Promise<DockerProxy> {
  const connections = new Set<Socket>();
  const responses = new Set<ServerResponse>();
  const stalled = new WeakSet<ServerResponse>();
  let server: ReturnType<typeof createHttpServer> | undefined;
  const proxy: DockerProxy = {
    host: `unix://${socketPath}`,
    emptyList: false,
    holdEventStreams: false,
    stallOpenEventStreams: () => {
      for (const res of responses) stalled.add(res);
      return responses.size;
    },
    requests: [],
    down: async () => {
      const s = server;
      server = undefined;
      for (const res of responses) res.destroy();
      for (const socket of connections) socket.destroy();
      if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
    },
    up: () => listen(),
    close: () => proxy.down(),
  };
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const path = req.url ?? '/';
    proxy.requests.push(`${req.method} ${path}`);
    if (proxy.emptyList && req.method === 'GET' && /^(\/v[\d.]+)?\/containers\/json/.test(path)) {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('[]');
      return;
    }
    // Only live event streams (no `until`) are held or tracked for stalling.
    const isEvents = /^(\/v[\d.]+)?\/events/.test(path) && !/[?&]until=/.test(path);
    if (isEvents && proxy.holdEventStreams) {
      // Answer nothing until the client gives up (its close destroys the socket).
      req.resume();
      responses.add(res);
      res.on('close', () => responses.delete(res));
      return;
    }
    const upstream = request(
      { socketPath: dockerSocket, path, method: req.method, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        // Node sends the headers with the first body chunk; an event stream may have none for a long time,
        // and Docker itself flushes them at once.
        res.flushHeaders();
        if (isEvents) {
          responses.add(res);
          res.on('close', () => responses.delete(res));
          up.on('data', (chunk: Buffer) => {
            if (!stalled.has(res)) res.write(chunk);
          });
          up.on('end', () => res.end());
        } else up.pipe(res);
        res.on('close', () => up.destroy());
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  };
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      if (server) return resolve();
      if (existsSync(socketPath)) rmSync(socketPath);
      const s = createHttpServer(handle);
      s.on('connection', (socket) => {
        connections.add(socket);
        socket.on('close', () => connections.delete(socket));
      });
      s.once('error', reject);
      s.listen(socketPath, () => resolve());
      server = s;
    });
  await listen();
  return proxy;
}
