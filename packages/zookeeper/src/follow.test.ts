import type { Instance, Registry, ServiceFollower } from '@registrar/core';
import { ConfigError } from '@registrar/core';
import { startTcpProxy, type TcpProxy } from '@registrar/test/harness/proxy';
import { startZookeeper, type ZookeeperServer } from '@registrar/test/harness/zookeeper';
import zookeeper from 'node-zookeeper-client';
import type { Client } from 'node-zookeeper-client';
import type { Subscription } from 'rxjs';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { codecFor } from './layout.js';
import type { ZookeeperFollowerOptions, ZookeeperLayout, ZookeeperRegistryOptions } from './index.js';
import { createZookeeperFollower, createZookeeperRegistry, zookeeperFollowerFromUri } from './index.js';
import { connectRaw, service, type Raw } from './testing/helpers.js';
import { warningCapture, watchFollow } from '@registrar/test/harness/follow';

let server: ZookeeperServer;
let raw: Raw;
const registries: Registry[] = [];
const followers: ServiceFollower[] = [];
const subscriptions: Subscription[] = [];
const proxies: TcpProxy[] = [];
let counter = 0;
const freshBase = () => `/follow${++counter}`;

beforeAll(async () => {
  server = await startZookeeper();
});
// A client of each test's own: the tests that stop or pause the server can outlast a shared client's
// session, and a client whose session expired waits for ever (a later test then hung in CI).
beforeEach(async () => {
  raw = await connectRaw(server.connectString);
});
afterEach(async () => {
  raw?.close();
  for (const subscription of subscriptions.splice(0)) subscription.unsubscribe();
  await Promise.all(followers.splice(0).map((f) => f.close()));
  await Promise.all(registries.splice(0).map((r) => r.close({ deregister: true }).catch(() => undefined)));
  await Promise.all(proxies.splice(0).map((proxy) => proxy.close()));
});
afterAll(async () => {
  await server?.close();
});

function registry(nodeId: string, options: Partial<ZookeeperRegistryOptions> = {}): Registry {
  const r = createZookeeperRegistry({ connectString: server.connectString, nodeId, ttl: 10, ...options });
  registries.push(r);
  return r;
}

function follower(options: Partial<ZookeeperFollowerOptions> = {}): ServiceFollower {
  const f = createZookeeperFollower({
    connectString: server.connectString,
    sessionTimeoutMs: 4000,
    ...options,
  });
  followers.push(f);
  return f;
}

const watch = (f: ServiceFollower, name: string) => watchFollow(f, name, subscriptions);

const instance = (node: string, port = 32768, address = '10.0.0.5'): Instance => ({
  id: `${node}:web1:80`,
  address,
  port,
});

const capture = warningCapture;

describe('zookeeper follower (real ZooKeeper)', () => {
  for (const layout of ['curator', 'registrator'] as const satisfies ZookeeperLayout[]) {
    it(`${layout}: two nodes' entries in one set; an update and a deregister are seen`, async () => {
      const basePath = freshBase();
      const a = registry('a', { basePath, layout });
      const b = registry('b', { basePath, layout });
      await a.register(service({ node: 'a' }));
      await b.register(service({ node: 'b', address: '10.0.0.6', port: 9090 }));
      await a.register(service({ node: 'a', name: 'api', id: 'a:api1:80', port: 1 }));
      const follow = watch(follower({ basePath, layout }), 'web');
      await follow.until([instance('a'), instance('b', 9090, '10.0.0.6')]);
      // curator: setData on the same node; registrator: the node moves to the new ip:port.
      await a.register(service({ node: 'a', port: 8081 }));
      await follow.until([instance('a', 8081), instance('b', 9090, '10.0.0.6')]);
      await b.deregister(service({ node: 'b' }).id);
      await follow.until([instance('a', 8081)]);
      expect(follow.unreachable()).toBe(0);
    });
  }

  it('a follower started before the service exists emits [] and then the instance; the parent may go and come back', async () => {
    const basePath = freshBase();
    const follow = watch(follower({ basePath }), 'web');
    await follow.until([]);
    const a = registry('a', { basePath });
    await a.register(service({ node: 'a' }));
    await follow.until([instance('a')]);
    expect(follow.updates).toHaveLength(2);
    // The last deregister removes the empty `<base>/web` too: the follower waits for it again.
    await a.deregister(service({ node: 'a' }).id);
    expect(await raw.exists(`${basePath}/web`)).toBeNull();
    await follow.until([]);
    await a.register(service({ node: 'a', port: 2 }));
    await follow.until([instance('a', 2)]);
  });

  it('reads Curator instances of other writers; skips data that is no instance with one warning each', async () => {
    const basePath = freshBase();
    const { logger, warnings } = capture();
    await raw.create(basePath);
    await raw.create(`${basePath}/web`);
    await raw.create(`${basePath}/web/garbage`, '{oops');
    // What a Curator application writes for itself (no registrar fields).
    await raw.create(
      `${basePath}/web/0b5e`,
      '{"name":"web","id":"0b5e","address":"10.1.1.1","port":8443,"sslPort":null,"payload":null,' +
        '"registrationTimeUTC":1,"serviceType":"DYNAMIC","uriSpec":null}',
    );
    const follow = watch(follower({ basePath, logger }), 'web');
    await follow.until([{ id: '0b5e', address: '10.1.1.1', port: 8443 }]);
    // More changes: the bad node is not read (nor warned about) again.
    await registry('a', { basePath }).register(service({ node: 'a' }));
    await follow.until([{ id: '0b5e', address: '10.1.1.1', port: 8443 }, instance('a')]);
    await raw.setData(`${basePath}/web/garbage`, '{"address":"10.1.1.2","port":7}');
    await follow.until([
      { id: '0b5e', address: '10.1.1.1', port: 8443 },
      instance('a'),
      { id: 'garbage', address: '10.1.1.2', port: 7 },
    ]);
    expect(warnings.filter((w) => w.includes('/garbage'))).toHaveLength(1);
    await raw.remove(`${basePath}/web/garbage`);
    await raw.remove(`${basePath}/web/0b5e`);
    await follow.until([instance('a')]);
  });

  it('reads each child once: a change reads only the child that changed', async () => {
    const basePath = freshBase();
    const nodes = ['a', 'b', 'c', 'd'];
    const registries = nodes.map((node) => registry(node, { basePath }));
    await Promise.all(registries.map((r, i) => r.register(service({ node: nodes[i] }))));
    const reads: string[] = [];
    const factory = (): Client => {
      const client = zookeeper.createClient(server.connectString, { sessionTimeout: 4000, spinDelay: 100 });
      const original = client.getData.bind(client) as (...args: unknown[]) => void;
      (client as unknown as Record<string, unknown>).getData = (...args: unknown[]) => {
        reads.push(String(args[0]));
        original(...args);
      };
      return client;
    };
    const follow = watch(follower({ basePath, client: factory, connectString: undefined }), 'web');
    await follow.until(nodes.map((node) => instance(node)));
    expect(reads).toHaveLength(4);
    reads.length = 0;
    await registries[1].register(service({ node: 'b', port: 5 }));
    await follow.until(nodes.map((node) => instance(node, node === 'b' ? 5 : 32768)));
    await registries[2].deregister(service({ node: 'c' }).id);
    await registry('e', { basePath }).register(service({ node: 'e' }));
    await follow.until(['a', 'b', 'd', 'e'].map((node) => instance(node, node === 'b' ? 5 : 32768)));
    expect(reads.sort()).toEqual([`${basePath}/web/b:web1:80`, `${basePath}/web/e:web1:80`]);
  });

  it('server stopped: unreachable once; restarted, the full set again, and changes after it', async () => {
    const basePath = freshBase();
    const a = registry('a', { basePath });
    await a.register(service({ node: 'a' }));
    await registry('b', { basePath }).register(service({ node: 'b' }));
    const follow = watch(follower({ basePath }), 'web');
    await follow.until([instance('a'), instance('b')]);
    const before = follow.updates.length;
    await server.stop();
    await vi.waitFor(() => expect(follow.unreachable()).toBe(1), { timeout: 10_000, interval: 20 });
    await server.start();
    await vi.waitFor(() => expect(follow.updates.length).toBeGreaterThan(before + 1), {
      timeout: 20_000,
      interval: 50,
    });
    expect(follow.last()).toEqual([instance('a'), instance('b')]);
    await vi.waitFor(() => a.register(service({ node: 'a', port: 1234 })), {
      timeout: 15_000,
      interval: 200,
    });
    await follow.until([instance('a', 1234), instance('b')]);
    expect(follow.unreachable()).toBe(1);
  });

  it('server paused (SIGSTOP): noticed by the session watchdog; resumed, the full set again', async () => {
    const basePath = freshBase();
    await registry('a', { basePath, ttl: 20 }).register(service({ node: 'a' }));
    const follow = watch(follower({ basePath, sessionTimeoutMs: 3000 }), 'web');
    await follow.until([instance('a')]);
    server.pause();
    try {
      await vi.waitFor(() => expect(follow.unreachable()).toBe(1), { timeout: 10_000, interval: 20 });
    } finally {
      server.resume();
    }
    await vi.waitFor(() => expect(follow.updates.at(-1)?.kind).toBe('instances'), {
      timeout: 15_000,
      interval: 50,
    });
    expect(follow.last()).toEqual([instance('a')]);
    expect(follow.unreachable()).toBe(1);
  });

  for (const expire of [false, true]) {
    it(`cut off from ZooKeeper${expire ? ' past its session timeout' : ''}: unreachable once; back, it has the changes made meanwhile`, async () => {
      const basePath = freshBase();
      const { logger, warnings } = capture();
      const a = registry('a', { basePath });
      const b = registry('b', { basePath });
      await a.register(service({ node: 'a' }));
      await b.register(service({ node: 'b' }));
      const proxy = await startTcpProxy(server.port);
      proxies.push(proxy);
      const follow = watch(
        follower({ basePath, connectString: `127.0.0.1:${proxy.port}`, sessionTimeoutMs: 2000, logger }),
        'web',
      );
      await follow.until([instance('a'), instance('b')]);
      await proxy.down();
      await vi.waitFor(() => expect(follow.unreachable()).toBe(1), { timeout: 10_000, interval: 20 });
      await a.register(service({ node: 'a', port: 4321 }));
      await b.deregister(service({ node: 'b' }).id);
      await registry('c', { basePath }).register(service({ node: 'c' }));
      if (expire) {
        await vi.waitFor(
          () => expect(warnings).toContain('zookeeper follower session lost; opening a new one'),
          {
            timeout: 10_000,
            interval: 20,
          },
        );
      }
      await proxy.up();
      await follow.until([instance('a', 4321), instance('c')], 15_000);
      expect(follow.unreachable()).toBe(1);
    });
  }

  it('from a URI: the same parsing and credentials as the registry', async () => {
    const basePath = freshBase();
    await registry('a', { basePath, layout: 'registrator' }).register(service({ node: 'a' }));
    const f = zookeeperFollowerFromUri(`zk://${server.connectString}${basePath}?layout=registrator`, {
      logger: capture().logger,
      env: {},
    });
    followers.push(f);
    expect(f.target).toBe(`zookeeper://${server.connectString}${basePath}`);
    await watch(f, 'web').until([instance('a')]);
    expect(() =>
      zookeeperFollowerFromUri('zk://127.0.0.1:1/x', {
        logger: capture().logger,
        env: { ZOOKEEPER_AUTH: 'nocolon' },
      }),
    ).toThrow(ConfigError);
    expect(() => f.follow('a/b')).toThrow(ConfigError);
  });

  it('close() completes every follow', async () => {
    const f = follower({ basePath: freshBase() });
    let completed = false;
    subscriptions.push(f.follow('web').subscribe({ complete: () => (completed = true) }));
    await f.close();
    expect(completed).toBe(true);
  });
});

describe('zookeeper layouts, read side', () => {
  it('curator and registrator data as instances, and why other data is not one', () => {
    const curator = codecFor('curator');
    expect(curator.instance('x', '{"id":"n:c:80","address":"10.0.0.1","port":80}')).toEqual({
      id: 'n:c:80',
      address: '10.0.0.1',
      port: 80,
    });
    expect(curator.instance('x', '{"address":"10.0.0.1","port":80}')).toEqual({
      id: 'x',
      address: '10.0.0.1',
      port: 80,
    });
    expect(curator.instance('x', '{"address":"10.0.0.1","port":null,"sslPort":443}')).toMatch(/port/);
    expect(curator.instance('x', '')).toMatch(/JSON/);
    const registrator = codecFor('registrator');
    expect(registrator.instance('10.0.0.1:80', '{"Name":"web","IP":"10.0.0.1","PublicPort":80}')).toEqual({
      id: '10.0.0.1:80',
      address: '10.0.0.1',
      port: 80,
    });
    expect(registrator.instance('x', '{"IP":"10.0.0.1","PublicPort":"80"}')).toMatch(/PublicPort/);
  });
});
