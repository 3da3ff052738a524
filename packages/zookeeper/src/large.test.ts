// A shared base holding 20,000 other nodes' instances (~900 B each) of the service the adapter also offers.
// No ZooKeeper limit is reached here: the getChildren answer (20,000 names, ~0.7 MB) passes, as did 30,000
// names (1.7 MB) when tried, since jute.maxbuffer bounds what a server accepts, not what it answers, and
// node-zookeeper-client reads answers of any length. But a list must not read all of them, one getData
// each, every resync: the adapter reads only the children its node can own.
import type { Registry, ServiceFollower } from '@registrar/core';
import { startZookeeper, type ZookeeperServer } from '@registrar/test-servers/zookeeper';
import { watchFollow } from '@registrar/test-servers/follow';
import zookeeper from 'node-zookeeper-client';
import type { Client } from 'node-zookeeper-client';
import type { Subscription } from 'rxjs';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { codecFor } from './layout.js';
import { createZookeeperFollower, createZookeeperRegistry } from './index.js';
import { connectRaw, service, type Raw } from './testing/helpers.js';

const BASE = '/large';
const FOREIGN = 20_000;

let server: ZookeeperServer;
let raw: Raw;
const open: { close(): Promise<void> }[] = [];
const subscriptions: Subscription[] = [];

const commit = (transaction: zookeeper.Transaction) =>
  new Promise<void>((resolve, reject) =>
    transaction.commit((error: unknown) =>
      error ? reject(error instanceof Error ? error : new Error(JSON.stringify(error))) : resolve(),
    ),
  );

beforeAll(async () => {
  server = await startZookeeper();
  raw = await connectRaw(server.connectString);
  await raw.create(BASE);
  await raw.create(`${BASE}/web`);
  const codec = codecFor('curator');
  // Other nodes' curator instances, persistent (they outlive the seeding client), 500 per transaction.
  for (let i = 0; i < FOREIGN; i += 500) {
    const transaction = raw.client.transaction();
    for (let j = i; j < Math.min(FOREIGN, i + 500); j++) {
      const node = `other${j % 100}`;
      const other = service({
        node,
        name: 'web',
        address: '10.1.0.1',
        port: 1000 + j,
        container: { id: `c${j}`, name: `w${j}` },
        meta: { pad: 'x'.repeat(600) },
      });
      transaction.create(
        `${BASE}/web/${other.id}`,
        Buffer.from(codec.encode(other, node, 0)),
        [new zookeeper.ACL(zookeeper.Permission.ALL, new zookeeper.Id('world', 'anyone'))],
        zookeeper.CreateMode.PERSISTENT,
      );
    }
    await commit(transaction);
  }
  expect((await raw.exists(`${BASE}/web`))?.numChildren).toBe(FOREIGN);
}, 120_000);

afterEach(async () => {
  subscriptions.splice(0).forEach((s) => s.unsubscribe());
  await Promise.all(open.splice(0).map((x) => x.close()));
});

afterAll(async () => {
  raw?.close();
  await server?.close();
});

/** The adapter's client, counting the reads it sends. */
function countingRegistry(nodeId: string) {
  const reads: string[] = [];
  const clientFactory = (): Client => {
    const client = zookeeper.createClient(server.connectString, { sessionTimeout: 4000, spinDelay: 100 });
    const original = client.getData.bind(client) as (...args: unknown[]) => void;
    (client as unknown as Record<string, unknown>).getData = (...args: unknown[]) => {
      reads.push(String(args[0]));
      original(...args);
    };
    return client;
  };
  const registry: Registry = createZookeeperRegistry({
    connectString: server.connectString,
    nodeId,
    ttl: 4,
    basePath: BASE,
    client: clientFactory,
  });
  open.push({ close: () => registry.close({ deregister: true }) });
  return { registry, reads };
}

function follower(): ServiceFollower {
  const f = createZookeeperFollower({ connectString: server.connectString, basePath: BASE });
  open.push(f);
  return f;
}

describe(`zookeeper: ${FOREIGN} foreign instances (18 MB) in the adapter's service`, () => {
  it('list reads only the nodes this node can own, and finds exactly its own', async () => {
    const { registry, reads } = countingRegistry('n1');
    const web = service({ node: 'n1', name: 'web' });
    const api = service({ node: 'n1', name: 'api', container: { id: 'c2', name: 'api-1' } });
    await registry.register(web);
    await registry.register(api);
    reads.length = 0;
    const listed = await registry.list();
    expect(listed.map((e) => e.id).sort()).toEqual([api.id, web.id].sort());
    for (const s of [web, api]) {
      expect(listed.find((e) => e.id === s.id)?.fingerprint).toBe(registry.fingerprint(s));
    }
    // Our two nodes, not 20,000 others'.
    expect(reads.sort()).toEqual([`${BASE}/api/${api.id}`, `${BASE}/web/${web.id}`]);

    // A fresh adapter of the same node (no paths known) finds what to remove the same way.
    const fresh = countingRegistry('n1');
    await fresh.registry.deregister(web.id);
    expect(await raw.exists(`${BASE}/web/${web.id}`)).toBeNull();
    expect(fresh.reads.length).toBeLessThan(10);
  }, 60_000);

  it('the follower reads every instance of the service', async () => {
    const web = watchFollow(follower(), 'web', subscriptions);
    await vi.waitFor(() => expect(web.last()?.length).toBe(FOREIGN), { timeout: 60_000, interval: 100 });
  }, 90_000);
});
