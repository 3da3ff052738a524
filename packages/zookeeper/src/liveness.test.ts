import type { LivenessLoss, Registry, RegistryEvent } from '@registrar/core';
import { RegistryConnectionError } from '@registrar/core';
import { startZookeeper, type ZookeeperServer } from '@registrar/test-servers/zookeeper';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import zookeeper from 'node-zookeeper-client';
import type { Client } from 'node-zookeeper-client';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createZookeeperRegistry } from './index.js';
import { connectRaw, service, type Raw } from './testing/helpers.js';

let server: ZookeeperServer;
let raw: Raw;

beforeAll(async () => {
  server = await startZookeeper();
  raw = await connectRaw(server.connectString, { sessionTimeout: 30_000 });
});

afterAll(async () => {
  raw?.close();
  await server?.close();
});

/** A TCP proxy to the server that a test can cut (drop every connection, refuse new ones) and restore. */
async function startProxy() {
  const sockets = new Set<Socket>();
  let cut = false;
  const proxy = createServer((downstream) => {
    if (cut) {
      downstream.destroy();
      return;
    }
    const upstream = connect(server.port, '127.0.0.1');
    for (const s of [downstream, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    downstream.pipe(upstream).pipe(downstream);
    downstream.on('close', () => upstream.destroy());
    upstream.on('close', () => downstream.destroy());
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const address = proxy.address();
  return {
    connectString: `127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`,
    cut() {
      cut = true;
      for (const s of sockets) s.destroy();
    },
    restore() {
      cut = false;
    },
    close: () => new Promise<void>((resolve) => proxy.close(() => resolve())),
  };
}

/** An adapter plus what a reconciler would do: re-register everything whenever lost$ fires. */
function bridge(base: string, ttl = 2, connectString = server.connectString) {
  const clients: Client[] = [];
  const registry: Registry = createZookeeperRegistry({
    client: () => {
      const c = zookeeper.createClient(connectString, { sessionTimeout: ttl * 1000, spinDelay: 100 });
      clients.push(c);
      return c;
    },
    nodeId: 'n1',
    basePath: base,
    ttl,
  });
  const losses: LivenessLoss[] = [];
  const services = [service({ node: 'n1' })];
  registry.lost$.subscribe((loss) => {
    losses.push(loss);
  });
  const events: RegistryEvent[] = [];
  registry.events$.subscribe((event) => events.push(event));
  const path = `${base}/web/n1:web1:80`;
  return { registry, clients, losses, events, services, path };
}

async function ownerOf(path: string) {
  return (await raw.exists(path))?.ephemeralOwner.toString('hex');
}

describe('zookeeper session liveness', () => {
  it('logs and uses the negotiated session timeout', async () => {
    const { registry, clients } = bridge('/s0', 2);
    await registry.register(service({ node: 'n1' }));
    expect(clients[0].getSessionTimeout()).toBe(2000);
    await registry.close({ deregister: true });
  });

  it('session expired (killed while we were cut off) → lost$ fires, a new session re-creates the nodes', async () => {
    const proxy = await startProxy();
    const b = bridge('/s1', 2, proxy.connectString);
    await b.registry.register(b.services[0]);
    const first = await ownerOf(b.path);
    const victim = b.clients[0];
    // Curator's KillSession, while our client cannot reconnect and take the session back.
    proxy.cut();
    const thief = await connectRaw(server.connectString, {
      sessionTimeout: 2000,
      sessionId: victim.getSessionId(),
      sessionPassword: victim.getSessionPassword(),
    });
    thief.close();
    await vi.waitFor(async () => expect(await raw.exists(b.path)).toBeNull(), {
      timeout: 5000,
      interval: 20,
    });
    proxy.restore();
    // The client learns of the expiry on reconnecting, before our own timer (2 s of silence) would fire.
    await vi.waitFor(() => expect(b.losses).toHaveLength(1), { timeout: 5000, interval: 20 });
    expect(b.losses[0].reason).toBe('session expired');
    await vi.waitFor(() => b.registry.register(b.services[0]), { timeout: 5000, interval: 50 });
    const second = await ownerOf(b.path);
    expect(second).toBeDefined();
    expect(second).not.toBe(first);
    expect(await b.registry.list()).toEqual([
      { id: b.services[0].id, name: 'web', fingerprint: b.registry.fingerprint(b.services[0]) },
    ]);
    await b.registry.close({ deregister: true });
    await proxy.close();
  });

  it('server silent (SIGSTOP) past the session timeout → operations fail fast, lost$ fires, re-created after', async () => {
    const b = bridge('/s2');
    await b.registry.register(b.services[0]);
    const first = await ownerOf(b.path);
    const oldFingerprint = b.registry.fingerprint(b.services[0]);
    await server.pause();
    const pausedAt = Date.now();
    try {
      // Bounded: at most the operation timeout (here min(ttl, 5 s) = 2 s), never a hang.
      const started = Date.now();
      await expect(b.registry.list()).rejects.toBeInstanceOf(RegistryConnectionError);
      expect(Date.now() - started).toBeLessThan(2600);
      await vi.waitFor(() => expect(b.losses).toHaveLength(1), { timeout: 8000, interval: 50 });
      expect(Date.now() - pausedAt).toBeLessThan(4000);
      expect(b.losses[0].reason).toMatch(/no answer from ZooKeeper/);
      const started2 = Date.now();
      await expect(b.registry.register(b.services[0])).rejects.toBeInstanceOf(RegistryConnectionError);
      expect(Date.now() - started2).toBeLessThan(2600);
    } finally {
      server.resume();
    }
    // The reconciler retries until the new session takes it.
    await vi.waitFor(() => b.registry.register(b.services[0]), { timeout: 10_000, interval: 100 });
    expect(b.registry.fingerprint(b.services[0])).not.toBe(oldFingerprint);
    const second = await ownerOf(b.path);
    expect(second).not.toBe(first);
    expect(await raw.children('/s2/web')).toEqual(['n1:web1:80']);
    expect(b.losses).toHaveLength(1);
    await b.registry.close({ deregister: true });
  });

  it('a short server restart keeps the session; operations while it is down reject at once', async () => {
    const b = bridge('/s3', 10);
    await b.registry.register(b.services[0]);
    const first = await ownerOf(b.path);
    await server.stop();
    await vi.waitFor(
      async () => {
        const started = Date.now();
        await expect(b.registry.register(b.services[0])).rejects.toBeInstanceOf(RegistryConnectionError);
        expect(Date.now() - started).toBeLessThan(200);
      },
      { timeout: 5000, interval: 50 },
    );
    await server.start();
    raw.close();
    raw = await connectRaw(server.connectString, { sessionTimeout: 30_000 });
    await vi.waitFor(() => b.registry.list(), { timeout: 10_000, interval: 100 });
    expect(await ownerOf(b.path)).toBe(first);
    expect(b.losses).toEqual([]);
    await b.registry.close({ deregister: true });
  });

  it('events$: cut off and back within the session timeout → heartbeat-failed, then recovered', async () => {
    const proxy = await startProxy();
    const b = bridge('/s5', 10, proxy.connectString);
    await b.registry.register(b.services[0]);
    const first = await ownerOf(b.path);
    proxy.cut();
    await vi.waitFor(() => expect(b.events).toHaveLength(1), { timeout: 5000, interval: 20 });
    expect(b.events[0]).toMatchObject({
      type: 'heartbeat-failed',
      error: expect.any(RegistryConnectionError),
    });
    proxy.restore();
    await vi.waitFor(() => expect(b.events).toHaveLength(2), { timeout: 10_000, interval: 20 });
    expect(b.events[1]).toEqual({ type: 'recovered' });
    await b.registry.list();
    expect(await ownerOf(b.path)).toBe(first);
    expect(b.losses).toEqual([]);
    await b.registry.close({ deregister: true });
    await proxy.close();
  });

  it('events$: server silent (SIGSTOP) past the session timeout → heartbeat-failed, then liveness-lost', async () => {
    // A session timeout long enough that the watchdog's ticks cannot skip the "silent, reconnecting" window.
    const b = bridge('/s6', 6);
    await b.registry.register(b.services[0]);
    await server.pause();
    try {
      await vi.waitFor(() => expect(b.losses).toHaveLength(1), { timeout: 12_000, interval: 50 });
    } finally {
      server.resume();
    }
    expect(b.events.map((e) => e.type)).toEqual(['heartbeat-failed', 'liveness-lost']);
    expect(b.events[1]).toEqual({ type: 'liveness-lost', reason: b.losses[0].reason });
    await vi.waitFor(() => b.registry.register(b.services[0]), { timeout: 10_000, interval: 100 });
    await b.registry.close({ deregister: true });
  });

  it('close() never hangs on a silent server', async () => {
    const b = bridge('/s4', 10);
    await b.registry.register(b.services[0]);
    await server.pause();
    try {
      const started = Date.now();
      await b.registry.close({ deregister: true });
      expect(Date.now() - started).toBeLessThan(8000);
    } finally {
      server.resume();
    }
  });

  it('SIGKILL of a process holding registrations: its nodes vanish within the session timeout', async () => {
    const dist = fileURLToPath(new URL('../dist/index.js', import.meta.url));
    expect(existsSync(dist), 'build first: pnpm exec tsc -b packages/zookeeper').toBe(true);
    const script = `
      import { createZookeeperRegistry } from ${JSON.stringify(dist)};
      const r = createZookeeperRegistry({ connectString: process.argv[1], nodeId: 'child', basePath: '/kill', ttl: 2 });
      for (const port of [1, 2, 3]) {
        await r.register({ id: 'child:c' + port + ':80', name: 'web', address: '10.0.0.9', port, protocol: 'tcp',
          containerPort: 80, tags: [], meta: {}, node: 'child', container: { id: 'c' + port, name: 'c' + port },
          health: 'passing', healthOutput: '', checks: {} });
      }
      process.stdout.write('ready\\n');
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, server.connectString], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (chunk: Buffer) => chunk.toString().includes('ready') && resolve());
      child.once('exit', (code) => reject(new Error(`child exited ${code}`)));
    });
    expect(await raw.children('/kill/web')).toHaveLength(3);
    const killedAt = Date.now();
    child.kill('SIGKILL');
    await vi.waitFor(async () => expect(await raw.children('/kill/web')).toEqual([]), {
      timeout: 8000,
      interval: 25,
    });
    const vanishedMs = Date.now() - killedAt;
    // Session timeout 2 s, rounded up to the server's 500 ms expiry tick.
    expect(vanishedMs).toBeLessThan(3000);
    process.stderr.write(
      `zookeeper: nodes vanished ${vanishedMs} ms after SIGKILL (session timeout 2000 ms)\n`,
    );
  });
});
