import type { Instance, Registry, ServiceFollower } from '@registrar/core';
import { startZookeeper, type ZookeeperServer } from '@registrar/test-servers/zookeeper';
import zookeeper from 'node-zookeeper-client';
import type { Client } from 'node-zookeeper-client';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { codecFor } from './layout.js';
import type { ZookeeperFollowerOptions, ZookeeperLayout, ZookeeperRegistryOptions } from './index.js';
import { createZookeeperFollower, createZookeeperRegistry, zookeeperFollowerFromUri } from './index.js';
import { connectRaw, service, type Raw } from './testing/helpers.js';
import { warningCapture, watchFollow } from '@registrar/test-servers/follow';
import * as contract from '@registrar/test-servers/follower-contract';

let server: ZookeeperServer;
let raw: Raw;
const { registries, followers, subscriptions, proxies } = contract.closedAfterEachTest();
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
afterEach(() => raw?.close());
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

/** The registrator layout also stores the fixture service's tags and metadata. */
const registratorInstance = (node: string, port?: number, address?: string): Instance => ({
  ...instance(node, port, address),
  tags: ['blue', 'v1'],
  meta: { env: 'test', version: '1.2' },
});

const capture = warningCapture;

/** The contract scenarios' view of ZooKeeper, with these registry and follower options. */
const backend = (
  options: Partial<ZookeeperFollowerOptions & ZookeeperRegistryOptions> = {},
): contract.FollowerBackend => ({
  registry: (nodeId) => registry(nodeId, options),
  follow: () => watch(follower(options), 'web'),
  service,
  instance: options.layout === 'registrator' ? registratorInstance : instance,
});

describe('zookeeper follower (real ZooKeeper)', () => {
  for (const layout of ['curator', 'registrator'] as const satisfies ZookeeperLayout[]) {
    // The update: curator sets the same node's data; registrator moves the node to the new ip:port.
    it(`${layout}: two nodes' entries in one set; an update and a deregister are seen`, async () => {
      await contract.twoNodesThenUpdateAndDeregister(backend({ basePath: freshBase(), layout }), {
        addressOfB: '10.0.0.6',
        other: { name: 'api', id: 'a:api1:80', port: 1 },
      });
    });
  }

  for (const [layout, payload] of [
    ['curator', 'none'],
    ['curator', 'spring'],
    ['curator', 'plain'],
    ['registrator', undefined],
  ] as const) {
    const carried = payload !== 'none';
    it(`${layout}${payload ? ` (payload ${payload})` : ''}: tags and metadata ${carried ? 'are read back as written' : 'are not stored'}`, async () => {
      await contract.tagsAndMeta(
        backend({ basePath: freshBase(), layout, ...(payload && { payload }) }),
        carried,
      );
    });
  }

  it('a follower started before the service exists emits [] and then the instance; the parent may go and come back', async () => {
    const basePath = freshBase();
    const { follow, a } = await contract.emptyThenInstance(backend({ basePath }));
    // The last deregister leaves `<base>/web` empty; a reap removes it: the follower waits for it again.
    await a.deregister(service({ node: 'a' }).id);
    await follow.until([]);
    await a.reap!();
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
    await contract.stoppedThenRestarted(backend({ basePath: freshBase() }), server, 20_000);
  });

  it('server paused (SIGSTOP): noticed by the session watchdog; resumed, the full set again', async () => {
    const basePath = freshBase();
    await contract.pausedThenResumed(
      {
        ...backend({ basePath }),
        registry: (nodeId) => registry(nodeId, { basePath, ttl: 20 }),
        follow: () => watch(follower({ basePath, sessionTimeoutMs: 3000 }), 'web'),
      },
      server,
      { timeout: 10_000, interval: 20 },
    );
  });

  for (const expire of [false, true]) {
    it(`cut off from ZooKeeper${expire ? ' past its session timeout' : ''}: unreachable once; back, it has the changes made meanwhile`, async () => {
      const basePath = freshBase();
      const { logger, warnings } = capture();
      await contract.cutOffThenBack(backend({ basePath }), {
        serverPort: server.port,
        proxies,
        followThrough: (port) =>
          watch(
            follower({ basePath, connectString: `127.0.0.1:${port}`, sessionTimeoutMs: 2000, logger }),
            'web',
          ),
        whileCut: async () => {
          if (!expire) return;
          await vi.waitFor(
            () => expect(warnings).toContain('zookeeper follower session lost; opening a new one'),
            { timeout: 10_000, interval: 20 },
          );
        },
      });
    });
  }

  it('from a URI: the same parsing and credentials as the registry', async () => {
    const basePath = freshBase();
    await registry('a', { basePath, layout: 'registrator' }).register(service({ node: 'a' }));
    await contract.fromUri({
      open: zookeeperFollowerFromUri,
      uri: `zk://${server.connectString}${basePath}?layout=registrator`,
      target: `zookeeper://${server.connectString}${basePath}`,
      followers,
      watch,
      expected: [registratorInstance('a')],
      invalid: { uri: 'zk://127.0.0.1:1/x', env: { ZOOKEEPER_AUTH: 'nocolon' } },
      badName: 'a/b',
    });
  });

  it('close() completes every follow', async () => {
    await contract.closeCompletesEveryFollow(follower({ basePath: freshBase() }), subscriptions);
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
