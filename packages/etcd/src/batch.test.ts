import type { Registry, RegistryWrite } from '@registrar/core';
import { RegistryRejectedError, RegistrySessionLostError } from '@registrar/core';
import { service } from '@registrar/core/testing';
import { firstValueFrom } from 'rxjs';
import { afterEach, describe, expect, it } from 'vitest';
import type { EtcdRegistryOptions } from './index.js';
import { createEtcdRegistry } from './index.js';
import { dump, etcdForFile, leaseOf } from './test-support/helpers.js';

const shared = etcdForFile();
const open: Registry[] = [];

afterEach(async () => {
  await Promise.all(open.splice(0).map((registry) => registry.close({ deregister: true })));
});

let prefixes = 0;
function adapter(options: Partial<EtcdRegistryOptions> = {}) {
  const registry = createEtcdRegistry({
    hosts: [shared.etcd.endpoint],
    nodeId: 'n1',
    prefix: `/batch${++prefixes}`,
    ttl: 5,
    ...options,
  });
  open.push(registry);
  return registry;
}
const prefixOf = (registry: Registry) => new URL(registry.target).pathname;
const revision = async () => Number((await dump(shared.plain, '/')).revision);
const web = (i: number, overrides: Parameters<typeof service>[0] = {}) =>
  service({ node: 'n1', port: 20000 + i, container: { id: `c${i}`, name: `web-${i}` }, ...overrides });
const registers = (count: number): RegistryWrite[] =>
  Array.from({ length: count }, (_, i) => ({ type: 'register', service: web(i) }));

describe('etcd applyBatch (real etcd)', () => {
  it('writes 300 registrations in five transactions, each on the lease and as register would write it', async () => {
    const registry = adapter();
    const twin = adapter();
    await twin.register(web(0));
    const r0 = await revision();
    const results = await registry.applyBatch!(registers(300));
    expect(results).toEqual(Array.from({ length: 300 }, () => ({ ok: true })));
    // One revision per transaction of 64 (two compares each, 128 at most): 64 × 4 + 44.
    expect((await revision()) - r0).toBe(5);
    const { keys } = await dump(shared.plain, `${prefixOf(registry)}/`);
    expect(keys).toHaveLength(300);
    const lease = leaseOf(registry.fingerprint(web(0)));
    expect(new Set(keys.map((k) => k.lease))).toEqual(new Set([lease]));
    // Byte for byte what a single register writes.
    const single = await dump(shared.plain, `${prefixOf(twin)}/`);
    expect(keys.find((k) => k.key.endsWith('/n1:web-0:80'))?.value).toBe(single.keys[0].value);
    const listed = await registry.list();
    for (const i of [0, 150, 299]) {
      expect(listed.find((e) => e.id === web(i).id)?.fingerprint).toBe(registry.fingerprint(web(i)));
    }
  });

  it('reports each write on its own: updates, renames, removals known and unknown, and refusals', async () => {
    const registry = adapter();
    const prefix = prefixOf(registry);
    await registry.applyBatch!(registers(4));
    // Written by an earlier run: this adapter's index does not know the key.
    const earlier = adapter({ prefix });
    await earlier.register(web(9));
    const results = await registry.applyBatch!([
      { type: 'register', service: web(0, { port: 30000 }) },
      { type: 'register', service: web(1, { name: 'api' }) },
      { type: 'deregister', id: web(2).id },
      { type: 'deregister', id: web(9).id },
      { type: 'deregister', id: 'n1:never:1' },
      { type: 'deregister', id: 'other:web-3:80' },
      { type: 'register', service: web(5, { node: 'other' }) },
      { type: 'register', service: web(6, { address: 'not-an-ip' }) },
      { type: 'register', service: web(7) },
    ]);
    expect(results.map((r) => r.ok)).toEqual([true, true, true, true, true, true, false, false, true]);
    for (const refused of [results[6], results[7]]) {
      expect(refused.ok === false && refused.error).toBeInstanceOf(RegistryRejectedError);
    }
    const { keys } = await dump(shared.plain, `${prefix}/`);
    expect(keys.map((k) => k.key).sort()).toEqual(
      [
        `${prefix}/api/n1:web-1:80`,
        `${prefix}/web/n1:web-0:80`,
        `${prefix}/web/n1:web-3:80`,
        `${prefix}/web/n1:web-7:80`,
      ].sort(),
    );
    expect(JSON.parse(keys.find((k) => k.key.endsWith('n1:web-0:80'))!.value)).toMatchObject({ port: 30000 });
  });

  it('a record etcd refuses fails alone: the rest of its transaction is written one by one', async () => {
    const registry = adapter();
    const huge = web(3, { meta: { blob: 'x'.repeat(1.6 * 2 ** 20) } });
    const results = await registry.applyBatch!([
      ...registers(3),
      { type: 'register', service: huge },
      { type: 'register', service: web(4) },
    ]);
    expect(results.map((r) => r.ok)).toEqual([true, true, true, false, true]);
    const { keys } = await dump(shared.plain, `${prefixOf(registry)}/`);
    expect(keys).toHaveLength(4);
  });

  it('applies two writes of one id in order, and writes nothing for records already there', async () => {
    const registry = adapter();
    const results = await registry.applyBatch!([
      { type: 'register', service: web(0) },
      { type: 'register', service: web(1) },
      { type: 'deregister', id: web(0).id },
    ]);
    expect(results.every((r) => r.ok)).toBe(true);
    expect((await dump(shared.plain, `${prefixOf(registry)}/`)).keys.map((k) => k.key)).toEqual([
      `${prefixOf(registry)}/web/n1:web-1:80`,
    ]);
    // Sent again (as after an answer lost on the way): the same record on the same lease is not written twice.
    const r0 = await revision();
    expect((await registry.applyBatch!([{ type: 'register', service: web(1) }]))[0].ok).toBe(true);
    expect(await revision()).toBe(r0);
  });

  it('a lease etcd no longer knows fails the batch as a liveness loss', async () => {
    const registry = adapter();
    await registry.applyBatch!(registers(2));
    const lost = firstValueFrom(registry.lost$);
    await shared.plain.leaseClient.leaseRevoke({ ID: leaseOf(registry.fingerprint(web(0))) });
    const results = await registry.applyBatch!(registers(3));
    for (const result of results) {
      expect(result.ok === false && result.error).toBeInstanceOf(RegistrySessionLostError);
    }
    await expect(lost).resolves.toMatchObject({ reason: expect.stringContaining('lease') as string });
    // The next batch gets a fresh lease.
    expect((await registry.applyBatch!(registers(3))).every((r) => r.ok)).toBe(true);
  });

  it('the lease is granted by list(), before any write; not with readOnly', async () => {
    const registry = adapter();
    expect(leaseOf(registry.fingerprint(web(0)))).toBe('none');
    await registry.list();
    const lease = leaseOf(registry.fingerprint(web(0)));
    expect(lease).not.toBe('none');
    const ttl = await shared.plain.leaseClient.leaseTimeToLive({ ID: lease });
    expect(Number(ttl.TTL)).toBeGreaterThan(0);

    const dry = adapter({ readOnly: true });
    await dry.list();
    expect(leaseOf(dry.fingerprint(web(0)))).toBe('none');
  });
});
