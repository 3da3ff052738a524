import type { Registry, RegistryWrite } from '@registrar/core';
import { RegistryRejectedError } from '@registrar/core';
import { fourLetter, startZookeeper, type ZookeeperServer } from '@registrar/test-servers/zookeeper';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createZookeeperRegistry, type ZookeeperRegistryOptions } from './index.js';
import { connectRaw, service, type Raw } from './testing/helpers.js';

let server: ZookeeperServer;
let raw: Raw;
const open: Registry[] = [];
let counter = 0;
const freshBase = () => `/batch${++counter}`;

function registry(options: Partial<ZookeeperRegistryOptions> & { nodeId?: string } = {}): Registry {
  const r = createZookeeperRegistry({
    connectString: server.connectString,
    ttl: 5,
    nodeId: 'n1',
    ...options,
  });
  open.push(r);
  return r;
}

/** The server's last zxid: one per transaction, a `multi` included. */
async function zxid(): Promise<number> {
  const match = /Zxid: 0x([0-9a-f]+)/i.exec(await fourLetter(server.port, 'srvr'));
  return Number.parseInt(match![1], 16);
}

const web = (i: number, overrides: Partial<Parameters<typeof service>[0]> = {}) =>
  service({
    node: 'n1',
    port: 20000 + i,
    container: { id: `c${i}`.padEnd(32, '0'), name: `web${i}` },
    ...overrides,
  });
const registers = (from: number, count: number): RegistryWrite[] =>
  Array.from({ length: count }, (_, i) => ({ type: 'register', service: web(from + i) }));

beforeAll(async () => {
  server = await startZookeeper();
  raw = await connectRaw(server.connectString);
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((r) => r.close({ deregister: true })));
});
afterAll(async () => {
  raw?.close();
  await server?.close();
});

describe('zookeeper applyBatch (real ZooKeeper)', () => {
  it('creates 300 instances in three multis after their service node, each as register writes it', async () => {
    const base = freshBase();
    const r = registry({ basePath: base });
    await r.list();
    const z0 = await zxid();
    const results = await r.applyBatch!(registers(0, 300));
    expect(results).toEqual(Array.from({ length: 300 }, () => ({ ok: true })));
    // The base and its service node, then 128 + 128 + 44 creates in one transaction each.
    expect((await zxid()) - z0).toBe(2 + 3);
    expect(await raw.children(`${base}/web`)).toHaveLength(300);
    const listed = await r.list();
    for (const i of [0, 150, 299]) {
      expect(listed.find((e) => e.id === web(i).id)?.fingerprint).toBe(r.fingerprint(web(i)));
    }
    // The service node is known now: the next batch in it is one transaction.
    const z1 = await zxid();
    expect((await r.applyBatch!(registers(300, 5))).every((x) => x.ok)).toBe(true);
    expect((await zxid()) - z1).toBe(1);
  });

  it('reports each write on its own: updates, renames, removals of its own and of others, refusals', async () => {
    const base = freshBase();
    const r = registry({ basePath: base });
    await r.applyBatch!(registers(0, 4));
    const earlier = registry({ basePath: base });
    await earlier.register(web(9));
    const results = await r.applyBatch!([
      { type: 'register', service: web(0, { port: 30000 }) },
      { type: 'register', service: web(1, { name: 'api' }) },
      { type: 'deregister', id: web(2).id },
      { type: 'deregister', id: web(9).id },
      { type: 'deregister', id: 'n1:never:1' },
      { type: 'register', service: web(5, { name: 'a/b' }) },
      { type: 'register', service: web(7) },
    ]);
    expect(results.map((x) => x.ok)).toEqual([true, true, true, true, true, false, true]);
    expect(results[5].ok === false && results[5].error).toBeInstanceOf(RegistryRejectedError);
    expect((await raw.children(`${base}/web`)).sort()).toEqual([web(0).id, web(3).id, web(7).id].sort());
    expect(await raw.children(`${base}/api`)).toEqual([web(1).id]);
    expect(JSON.parse((await raw.getData(`${base}/web/${web(0).id}`)).data)).toMatchObject({ port: 30000 });
  });

  it('a node left by another session (NODE_EXISTS) makes its multi fall back to one write each', async () => {
    const base = freshBase();
    const earlier = registry({ basePath: base });
    await earlier.register(web(0));
    const r = registry({ basePath: base });
    const results = await r.applyBatch!(registers(0, 3));
    expect(results.every((x) => x.ok)).toBe(true);
    expect((await raw.children(`${base}/web`)).sort()).toEqual([web(0).id, web(1).id, web(2).id].sort());
    // Replaced by a node of this adapter's session.
    const mine = (await raw.exists(`${base}/web/${web(1).id}`))!.ephemeralOwner.toString('hex');
    expect((await raw.exists(`${base}/web/${web(0).id}`))!.ephemeralOwner.toString('hex')).toBe(mine);
  });

  it('a service node reaped behind its back (NO_NODE) is made again', async () => {
    const base = freshBase();
    const r = registry({ basePath: base });
    await r.applyBatch!(registers(0, 1));
    await r.applyBatch!([{ type: 'deregister', id: web(0).id }]);
    // Another bridge reaped the empty node: this adapter still believes it exists.
    await raw.remove(`${base}/web`);
    const results = await r.applyBatch!(registers(1, 3));
    expect(results.every((x) => x.ok)).toBe(true);
    expect(await raw.children(`${base}/web`)).toHaveLength(3);
  });

  it('removes are versioned, version 0 included: a node changed since (BAD_VERSION) is looked at first', async () => {
    const base = freshBase();
    const r = registry({ basePath: base });
    await r.applyBatch!(registers(0, 2));
    // web0 now holds another node's record (version 1): not ours to remove any more.
    const path = `${base}/web/${web(0).id}`;
    const record = JSON.parse((await raw.getData(path)).data) as Record<string, unknown>;
    await raw.setData(path, JSON.stringify({ ...record, 'registrar.node': 'someone-else' }));
    const results = await r.applyBatch!([
      { type: 'deregister', id: web(0).id },
      { type: 'deregister', id: web(1).id },
    ]);
    expect(results.every((x) => x.ok)).toBe(true);
    expect(await raw.children(`${base}/web`)).toEqual([web(0).id]);
  });

  it('applies two writes of one id in order', async () => {
    const base = freshBase();
    const r = registry({ basePath: base });
    const results = await r.applyBatch!([
      { type: 'register', service: web(0) },
      { type: 'register', service: web(1) },
      { type: 'deregister', id: web(0).id },
    ]);
    expect(results.every((x) => x.ok)).toBe(true);
    expect(await raw.children(`${base}/web`)).toEqual([web(1).id]);
  });
});
