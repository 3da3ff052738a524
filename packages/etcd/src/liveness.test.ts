import { execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { LivenessLoss, Registry, RegistryEvent } from '@registrar/core';
import { RegistryConnectionError } from '@registrar/core';
import { tempDir } from '@registrar/test-servers/process';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createEtcdRegistry } from './index.js';
import { service } from '@registrar/core/testing';
import { dump, etcdForFile, leaseOf } from './test-support/helpers.js';

const shared = etcdForFile();
const open: Registry[] = [];

afterEach(async () => {
  await Promise.all(
    open.splice(0).map((registry) => registry.close({ deregister: true }).catch(() => undefined)),
  );
});

function adapter(prefix: string, ttl = 3, requestTimeout = 1000, keepaliveInterval?: number) {
  const registry = createEtcdRegistry({
    hosts: [shared.etcd.endpoint],
    nodeId: 'n1',
    prefix,
    ttl,
    requestTimeout,
    ...(keepaliveInterval !== undefined && { keepaliveInterval }),
  });
  open.push(registry);
  const losses: LivenessLoss[] = [];
  registry.lost$.subscribe((loss) => losses.push(loss));
  const events: RegistryEvent[] = [];
  registry.events$.subscribe((event) => events.push(event));
  return { registry, losses, events };
}

/** The event types in order, a run of heartbeat failures counted once (their number depends on timing). */
const sequence = (events: readonly RegistryEvent[]) =>
  events.map((e) => e.type).filter((type, i, all) => type !== 'heartbeat-failed' || all[i - 1] !== type);

describe('etcd liveness (real etcd)', () => {
  it('etcd frozen shorter than the TTL: events$ reports the failed keepalives, then recovered; the lease is kept', async () => {
    const { registry, losses, events } = adapter('/blip', 8, 500, 0.5);
    const web = service({ node: 'n1' });
    await registry.register(web);
    const lease = leaseOf(registry.fingerprint(web));
    await shared.etcd.process.pause();
    try {
      await vi.waitFor(() => expect(events.map((e) => e.type)).toContain('heartbeat-failed'), {
        timeout: 5000,
        interval: 20,
      });
    } finally {
      shared.etcd.process.resume();
    }
    await vi.waitFor(() => expect(events.at(-1)?.type).toBe('recovered'), { timeout: 5000, interval: 20 });
    expect(sequence(events)).toEqual(['heartbeat-failed', 'recovered']);
    expect(events[0]).toMatchObject({ type: 'heartbeat-failed', error: expect.any(RegistryConnectionError) });
    expect(losses).toEqual([]);
    expect(leaseOf(registry.fingerprint(web))).toBe(lease);
  });

  it('etcd frozen longer than the TTL: events$ reports failed keepalives, then liveness-lost with lost$', async () => {
    // Keepalives well inside the TTL, so that at least one fails before the deadline even on a loaded machine.
    const { registry, losses, events } = adapter('/frozen-events', 3, 500, 0.5);
    await registry.register(service({ node: 'n1' }));
    await shared.etcd.process.pause();
    try {
      await vi.waitFor(() => expect(losses).toHaveLength(1), { timeout: 5000, interval: 20 });
    } finally {
      shared.etcd.process.resume();
    }
    expect(sequence(events)).toEqual(['heartbeat-failed', 'liveness-lost']);
    expect(events.at(-1)).toEqual({ type: 'liveness-lost', reason: losses[0].reason });
  });

  it('a lease revoked behind the adapter’s back fires lost$; re-registering brings the keys back', async () => {
    const { registry, losses } = adapter('/revoked');
    const web = service({ node: 'n1' });
    await registry.register(web);
    const lease = leaseOf(registry.fingerprint(web));
    await shared.plain.leaseClient.leaseRevoke({ ID: lease });
    expect((await dump(shared.plain, '/revoked/')).keys).toEqual([]);
    await vi.waitFor(() => expect(losses).toHaveLength(1), { timeout: 5000, interval: 50 });
    // What the reconciler does on lost$: every stored fingerprint now differs, so everything is re-put.
    expect(registry.fingerprint(web)).not.toContain(`lease=${lease}`);
    await registry.register(web);
    const { keys } = await dump(shared.plain, '/revoked/');
    expect(keys).toHaveLength(1);
    expect(keys[0].lease).not.toBe(lease);
    expect(keys[0].lease).toBe(leaseOf(registry.fingerprint(web)));
  });

  it('keys of a process killed with SIGKILL expire within the TTL', async ({ annotate }) => {
    const root = join(fileURLToPath(import.meta.url), '../../../..');
    const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
    execFileSync(process.execPath, [tsc, '-b', join(root, 'packages/etcd')], { cwd: root });
    const dist = pathToFileURL(join(root, 'packages/etcd/dist/index.js')).href;
    const dir = tempDir('etcd-child');
    const script = join(dir, 'hold.mjs');
    writeFileSync(
      script,
      `import { createEtcdRegistry } from ${JSON.stringify(dist)};
const registry = createEtcdRegistry({ hosts: [process.argv[2]], nodeId: 'child', prefix: '/child', ttl: 2 });
await registry.register(JSON.parse(process.argv[3]));
process.stdout.write('ready\\n');
setInterval(() => undefined, 1000);
`,
    );
    const child = spawn(
      process.execPath,
      [script, shared.etcd.endpoint, JSON.stringify(service({ node: 'child' }))],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const exited = new Promise((resolve) => child.once('exit', resolve));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (chunk: Buffer) => chunk.toString().includes('ready') && resolve());
      child.once('exit', (code) => reject(new Error(`child exited with ${code}`)));
    });
    const readyAt = Date.now();
    expect((await dump(shared.plain, '/child/')).keys).toHaveLength(1);
    // Outlive a few keepalives first: the key must be held by the keepalive, not by the grant alone.
    const lease = (await dump(shared.plain, '/child/')).keys[0].lease;
    await vi.waitFor(
      async () => {
        const ttl = await shared.plain.leaseClient.leaseTimeToLive({ ID: lease });
        expect(Number(ttl.TTL)).toBeGreaterThan(0);
        expect(Date.now() - readyAt).toBeGreaterThan(3000);
      },
      { timeout: 10_000, interval: 200 },
    );
    const killedAt = Date.now();
    child.kill('SIGKILL');
    await exited;
    await vi.waitFor(async () => expect((await dump(shared.plain, '/child/')).keys).toEqual([]), {
      timeout: 10_000,
      interval: 50,
    });
    const gone = Date.now() - killedAt;
    await annotate(`keys of the killed holder (ttl 2 s) expired after ${gone} ms`);
    expect(gone).toBeLessThan(2000 + 1500);
  });

  it('etcd stopped: register fails fast with RegistryConnectionError and works again after a restart', async ({
    annotate,
  }) => {
    const { registry } = adapter('/outage', 3, 1000);
    await registry.register(service({ node: 'n1' }));
    await shared.etcd.stop();
    const startedAt = Date.now();
    const error = await registry
      .register(service({ node: 'n1', port: 1 }))
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(RegistryConnectionError);
    const failedAfter = Date.now() - startedAt;
    expect(failedAfter).toBeLessThan(2500);
    await expect(registry.list()).rejects.toBeInstanceOf(RegistryConnectionError);
    await shared.etcd.start();
    const restartedAt = Date.now();
    await vi.waitFor(() => registry.register(service({ node: 'n1', port: 2 })), {
      timeout: 15_000,
      interval: 200,
    });
    const recovery = Date.now() - restartedAt;
    const { keys } = await dump(shared.plain, '/outage/');
    expect(keys.map((kv) => (JSON.parse(kv.value) as { port: number }).port)).toEqual([2]);
    expect(recovery).toBeLessThan(5000);
    await annotate(
      `etcd down: register rejected after ${failedAfter} ms; working again ${recovery} ms after restart`,
    );
  });

  it('etcd frozen longer than the TTL: the local timer reports the loss, and the adapter recovers', async ({
    annotate,
  }) => {
    const { registry, losses } = adapter('/frozen', 2, 500);
    const web = service({ node: 'n1' });
    await registry.register(web);
    const lease = leaseOf(registry.fingerprint(web));
    await shared.etcd.process.pause();
    try {
      const pausedAt = Date.now();
      await expect(registry.register(web)).rejects.toBeInstanceOf(RegistryConnectionError);
      expect(Date.now() - pausedAt).toBeLessThan(1500);
      // etcd answers nothing, so the client never hears "lease not found": only our timer can tell.
      await vi.waitFor(() => expect(losses).toHaveLength(1), { timeout: 5000, interval: 50 });
      const lostAfter = Date.now() - pausedAt;
      expect(lostAfter).toBeLessThan(2000 + 1500);
      await annotate(`etcd frozen (ttl 2 s): lost$ after ${lostAfter} ms`);
    } finally {
      shared.etcd.process.resume();
    }
    await vi.waitFor(() => registry.register(web), { timeout: 15_000, interval: 200 });
    const { keys } = await dump(shared.plain, '/frozen/');
    expect(keys).toHaveLength(1);
    expect(keys[0].lease).not.toBe(lease);
    expect(keys[0].lease).toBe(leaseOf(registry.fingerprint(web)));
  });
});
