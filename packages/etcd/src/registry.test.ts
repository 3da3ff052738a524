import type { Registry } from '@registrar/core';
import { RegistryRejectedError } from '@registrar/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { EtcdRegistryOptions } from './index.js';
import { createEtcdRegistry } from './index.js';
import { service } from '@registrar/core/testing';
import { dump, etcdForFile, leaseOf, plainClient } from './test-support/helpers.js';

const shared = etcdForFile();
const open: Registry[] = [];

afterEach(async () => {
  await Promise.all(open.splice(0).map((registry) => registry.close({ deregister: true })));
});

let prefixes = 0;
/** Each test gets its own prefix so they never see each other's keys. */
function adapter(options: Partial<EtcdRegistryOptions> & { nodeId?: string } = {}) {
  const registry = createEtcdRegistry({
    hosts: [shared.etcd.endpoint],
    nodeId: 'n1',
    prefix: `/t${++prefixes}`,
    ttl: 5,
    ...options,
  });
  open.push(registry);
  return registry;
}
const prefixOf = (registry: Registry) => new URL(registry.target).pathname;

describe('etcd registry (real etcd)', () => {
  it('registers, lists and deregisters', async () => {
    const registry = adapter();
    const web = service({ node: 'n1' });
    const api = service({ node: 'n1', name: 'api', container: { id: 'c2', name: 'api-1' } });
    await registry.register(web);
    await registry.register(api);
    const listed = await registry.list();
    expect(listed.map((entry) => [entry.id, entry.name]).sort()).toEqual([
      ['n1:api-1:80', 'api'],
      ['n1:web-1:80', 'web'],
    ]);
    await registry.deregister(web.id);
    await registry.deregister(web.id); // unknown id: still fine
    await registry.deregister('n1:never:1');
    expect((await registry.list()).map((entry) => entry.id)).toEqual([api.id]);
    const { keys } = await dump(shared.plain, `${prefixOf(registry)}/`);
    expect(keys.map((kv) => kv.key)).toEqual([`${prefixOf(registry)}/api/n1:api-1:80`]);
  });

  it('json layout, byte for byte, every key on the adapter lease', async () => {
    const registry = adapter();
    const web = service({
      node: 'n1',
      address: 'fd00::5',
      tags: ['a', 'b'],
      meta: { zone: 'z1', env: 'prod' },
    });
    await registry.register(web);
    const { keys } = await dump(shared.plain, `${prefixOf(registry)}/`);
    expect(keys).toHaveLength(1);
    expect(keys[0].key).toBe(`${prefixOf(registry)}/web/n1:web-1:80`);
    expect(keys[0].value).toBe(
      '{"id":"n1:web-1:80","name":"web","address":"fd00::5","port":8080,"protocol":"tcp","tags":["a","b"],' +
        '"meta":{"env":"prod","zone":"z1"},"node":"n1","container":{"id":"c0ffee","name":"web-1"}}',
    );
    const lease = leaseOf(registry.fingerprint(web));
    expect(lease).not.toBe('0');
    expect(keys[0].lease).toBe(lease);
    const ttl = await shared.plain.leaseClient.leaseTimeToLive({ ID: lease, keys: true });
    expect(ttl.keys.map((key) => key.toString())).toEqual([keys[0].key]);
    expect(Number(ttl.grantedTTL)).toBe(5);
  });

  it('records the engine id and lists each entry with the engine it records, another engine’s included', async () => {
    const ours = adapter({ engineId: 'ENGINE-A' });
    const prefix = prefixOf(ours);
    const web = service({ node: 'n1' });
    await ours.register(web);
    expect(ours.engineId).toBe('ENGINE-A');
    const { keys } = await dump(shared.plain, `${prefix}/`);
    expect(JSON.parse(keys[0].value)).toMatchObject({ node: 'n1', engine: 'ENGINE-A' });
    expect((await ours.list()).map((e) => [e.id, e.engine])).toEqual([[web.id, 'ENGINE-A']]);
    // A clone using the same node id sees the entry as its node id's, written by engine A.
    const clone = adapter({ engineId: 'ENGINE-B', prefix });
    expect((await clone.list()).map((e) => [e.id, e.engine])).toEqual([[web.id, 'ENGINE-A']]);
    // An older version's record, without an engine: listed without one (adopted as before).
    const old = service({ node: 'n1', container: { id: 'c9', name: 'old-1' }, id: 'n1:old-1:80' });
    await shared.plain.put(`${prefix}/web/${old.id}`).value(JSON.stringify({ id: old.id, node: 'n1' }));
    const listed = new Map((await clone.list()).map((e) => [e.id, e.engine]));
    expect(listed.get(old.id)).toBeUndefined();
    expect(listed.has(old.id)).toBe(true);
    // hostport and skydns record no engine: no engine id to compare with.
    expect(adapter({ engineId: 'ENGINE-A', layout: 'hostport' }).engineId).toBeUndefined();
  });

  it('hostport layout, byte for byte', async () => {
    const registry = adapter({ layout: 'hostport' });
    await registry.register(service({ node: 'n1' }));
    await registry.register(
      service({ node: 'n1', id: 'n1:web-1:53:udp', address: 'fd00::1', port: 53, protocol: 'udp' }),
    );
    const { keys } = await dump(shared.plain, `${prefixOf(registry)}/`);
    expect(keys.map((kv) => [kv.key, kv.value])).toEqual([
      [`${prefixOf(registry)}/web/n1:web-1:53:udp`, '[fd00::1]:53'],
      [`${prefixOf(registry)}/web/n1:web-1:80`, '10.0.0.5:8080'],
    ]);
    expect(new Set(keys.map((kv) => kv.lease)).size).toBe(1);
    expect((await registry.list()).map((entry) => entry.id).sort()).toEqual([
      'n1:web-1:53:udp',
      'n1:web-1:80',
    ]);
  });

  it('skydns layout, byte for byte, as CoreDNS reads it', async () => {
    const registry = adapter({
      layout: 'skydns',
      prefix: '/skydns',
      skydnsDomain: 'dc1.example',
      nodeId: 'host.a',
    });
    const web = service({
      node: 'host.a',
      container: { id: 'c1', name: 'proj_web_1' },
      id: 'host.a:proj_web_1:80',
    });
    await registry.register(web);
    const { keys } = await dump(shared.plain, '/skydns/example/dc1/');
    expect(keys.map((kv) => [kv.key, kv.value])).toEqual([
      ['/skydns/example/dc1/web/host-2ea--proj-5fweb-5f1--80', '{"host":"10.0.0.5","port":8080,"ttl":5}'],
    ]);
    expect(await registry.list()).toEqual([
      { id: web.id, name: 'web', fingerprint: registry.fingerprint(web) },
    ]);
    await registry.deregister(web.id);
    expect((await dump(shared.plain, '/skydns/')).keys).toEqual([]);
  });

  it('a resync of unchanged services writes nothing', async () => {
    const registry = adapter();
    const services = Array.from({ length: 20 }, (_, i) =>
      service({ node: 'n1', id: `n1:c${i}:80`, container: { id: `id${i}`, name: `c${i}` }, port: 9000 + i }),
    );
    for (const svc of services) await registry.register(svc);
    const before = (await dump(shared.plain, '/')).revision;
    // What the reconciler does: list, compare fingerprints, write only what differs.
    const stored = new Map((await registry.list()).map((entry) => [entry.id, entry.fingerprint]));
    const changed = services.filter((svc) => stored.get(svc.id) !== registry.fingerprint(svc));
    expect(changed).toEqual([]);
    for (const svc of changed) await registry.register(svc);
    expect((await dump(shared.plain, '/')).revision).toBe(before);
    // A real change is seen.
    expect(registry.fingerprint({ ...services[0], port: 1 })).not.toBe(stored.get(services[0].id));
  });

  it('the first list primes the write path with a transaction etcd does not apply: nothing written', async () => {
    // etcd's own count of the transactions it answered, from its metrics endpoint.
    const txns = async () => {
      const metrics = await (await fetch(`${shared.etcd.endpoint}/metrics`)).text();
      const line = /^grpc_server_handled_total\{grpc_code="OK",grpc_method="Txn",[^}]*\} (\d+)$/m.exec(
        metrics,
      );
      return Number(line?.[1]);
    };
    const registry = adapter();
    const [r0, t0] = [(await dump(shared.plain, '/')).revision, await txns()];
    expect(await registry.list()).toEqual([]);
    expect(await txns()).toBe(t0 + 1);
    const after = await dump(shared.plain, '/');
    // The lease grant moves no revision, and the transaction wrote nothing.
    expect(after.revision).toBe(r0);
    expect(after.keys.filter((k) => k.key.startsWith(`${prefixOf(registry)}/`))).toEqual([]);
    // Once per adapter: a resync's list sends none.
    await registry.list();
    expect(await txns()).toBe(t0 + 1);
  });

  it('a put sent again after it landed writes nothing more (an attempt cut off by its deadline may have)', async () => {
    const registry = adapter();
    const web = service({ node: 'n1' });
    await registry.register(web);
    const before = await dump(shared.plain, `${prefixOf(registry)}/`);
    await registry.register(web);
    const after = await dump(shared.plain, `${prefixOf(registry)}/`);
    expect(after.revision).toBe(before.revision);
    // A real change is still written, and a key put without the lease gets it back.
    await registry.register({ ...web, port: 1 });
    expect(JSON.parse((await dump(shared.plain, `${prefixOf(registry)}/`)).keys[0].value).port).toBe(1);
    await registry.register(web);
    const stored = (await dump(shared.plain, `${prefixOf(registry)}/`)).keys[0];
    // The same value put without the lease (a plain put detaches the key from it).
    await shared.plain.put(stored.key).value(stored.value);
    expect((await dump(shared.plain, `${prefixOf(registry)}/`)).keys[0].lease).toBe('0');
    await registry.register(web);
    expect((await dump(shared.plain, `${prefixOf(registry)}/`)).keys[0].lease).toBe(stored.lease);
  });

  it('a new instance adopts the previous one’s keys: new lease, different fingerprints, re-put', async () => {
    const first = adapter();
    const web = service({ node: 'n1' });
    await first.register(web);
    const oldLease = leaseOf(first.fingerprint(web));
    // The previous bridge went away without deregistering; its lease still runs.
    await first.close();
    const second = adapter({ prefix: prefixOf(first) });
    const [entry] = await second.list();
    expect(entry.id).toBe(web.id);
    expect(leaseOf(entry.fingerprint)).toBe(oldLease);
    expect(entry.fingerprint).not.toBe(second.fingerprint(web));
    await second.register(web);
    const newLease = leaseOf(second.fingerprint(web));
    expect(newLease).not.toBe(oldLease);
    const { keys } = await dump(shared.plain, `${prefixOf(first)}/`);
    expect(keys.map((kv) => kv.lease)).toEqual([newLease]);
    expect((await second.list())[0].fingerprint).toBe(second.fingerprint(web));
  });

  it('a renamed service moves its key', async () => {
    const registry = adapter();
    const web = service({ node: 'n1' });
    await registry.register(web);
    await registry.register({ ...web, name: 'www' });
    const { keys } = await dump(shared.plain, `${prefixOf(registry)}/`);
    expect(keys.map((kv) => kv.key)).toEqual([`${prefixOf(registry)}/www/n1:web-1:80`]);
    // And after a restart (index rebuilt by list), too.
    const next = adapter({ prefix: prefixOf(registry) });
    await next.list();
    await next.register(web);
    expect((await dump(shared.plain, `${prefixOf(registry)}/`)).keys.map((kv) => kv.key)).toEqual([
      `${prefixOf(registry)}/web/n1:web-1:80`,
    ]);
  });

  it('two node ids sharing a prefix never see or touch each other’s keys', async () => {
    for (const layout of ['json', 'hostport', 'skydns'] as const) {
      const prefix = `/shared-${layout}`;
      const nodes = ['a', 'ab', 'a-b', 'a.b'];
      const registries = nodes.map((nodeId) => adapter({ nodeId, prefix, layout }));
      const services = nodes.map((node) => service({ node }));
      await Promise.all(registries.map((registry, i) => registry.register(services[i])));
      for (const [i, registry] of registries.entries()) {
        expect((await registry.list()).map((entry) => entry.id)).toEqual([services[i].id]);
      }
      // `a` cannot touch the others, not even when asked for their ids.
      for (const svc of services.slice(1)) await registries[0].deregister(svc.id);
      await expect(registries[0].register(services[1])).rejects.toBeInstanceOf(RegistryRejectedError);
      await registries[0].deregister(services[0].id);
      expect((await dump(shared.plain, `${prefix}/`)).keys).toHaveLength(3);
      for (const [i, registry] of registries.entries()) {
        expect((await registry.list()).map((entry) => entry.id)).toEqual(i === 0 ? [] : [services[i].id]);
      }
    }
  });

  it('deregister finds a key it never wrote (fresh instance, no list)', async () => {
    const first = adapter();
    await first.register(service({ node: 'n1' }));
    const second = adapter({ prefix: prefixOf(first) });
    await second.deregister(service({ node: 'n1' }).id);
    expect((await dump(shared.plain, `${prefixOf(first)}/`)).keys).toEqual([]);
  });

  it('close({ deregister: true }) removes every key at once', async () => {
    const registry = adapter();
    await registry.register(service({ node: 'n1' }));
    await registry.register(service({ node: 'n1', id: 'n1:web-1:81' }));
    await registry.close({ deregister: true });
    expect((await dump(shared.plain, `${prefixOf(registry)}/`)).keys).toEqual([]);
    await expect(registry.register(service({ node: 'n1' }))).rejects.toBeInstanceOf(RegistryRejectedError);
  });

  it('close() without deregister stops the keepalive: keys expire after the TTL', async () => {
    const registry = adapter({ ttl: 2 });
    await registry.register(service({ node: 'n1' }));
    const closedAt = Date.now();
    await registry.close();
    expect((await dump(shared.plain, `${prefixOf(registry)}/`)).keys).toHaveLength(1);
    await vi.waitFor(
      async () => expect((await dump(shared.plain, `${prefixOf(registry)}/`)).keys).toHaveLength(0),
      {
        timeout: 8000,
        interval: 100,
      },
    );
    expect(Date.now() - closedAt).toBeLessThan(4500);
  });

  it('a caller-owned client is used and left open', async () => {
    const client = plainClient(shared.etcd.endpoint);
    const registry = createEtcdRegistry({ client, nodeId: 'n1', prefix: '/owned' });
    await registry.register(service({ node: 'n1' }));
    await registry.close({ deregister: true });
    expect((await client.getAll().prefix('/owned/').keys()).length).toBe(0);
    client.close();
  });

  it('rejects services of another node', async () => {
    const registry = adapter();
    await expect(registry.register(service({ node: 'n2' }))).rejects.toBeInstanceOf(RegistryRejectedError);
    await expect(registry.register({ ...service({ node: 'n1' }), node: 'n2' })).rejects.toBeInstanceOf(
      RegistryRejectedError,
    );
  });
});
