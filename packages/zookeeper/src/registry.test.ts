import type { Registry } from '@registrar/core';
import { NodeIdConflictError, RegistryRejectedError } from '@registrar/core';
import { startZookeeper, type ZookeeperServer } from '@registrar/test-servers/zookeeper';
import zookeeper from 'node-zookeeper-client';
import type { Client } from 'node-zookeeper-client';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createZookeeperRegistry, type ZookeeperRegistryOptions } from './index.js';
import { connectRaw, service, zkErrorName, type Raw } from './testing/helpers.js';

let server: ZookeeperServer;
let raw: Raw;
const open: Registry[] = [];
let counter = 0;
const freshBase = () => `/t${++counter}`;

/** A registry on the test server that the test closes itself. */
function unmanagedRegistry(options: Partial<ZookeeperRegistryOptions> & { nodeId: string }): Registry {
  return createZookeeperRegistry({ connectString: server.connectString, ttl: 2, ...options });
}

/** A registry closed (deregistering) after the test. */
function registry(options: Partial<ZookeeperRegistryOptions> & { nodeId: string }): Registry {
  const r = unmanagedRegistry(options);
  open.push(r);
  return r;
}

/** A client factory that counts the writes the adapter sends. */
function countingFactory() {
  const writes: string[] = [];
  const factory = (): Client => {
    const client = zookeeper.createClient(server.connectString, { sessionTimeout: 2000, spinDelay: 100 });
    for (const op of ['create', 'setData', 'remove'] as const) {
      const original = client[op].bind(client) as (...args: unknown[]) => void;
      (client as unknown as Record<string, unknown>)[op] = (...args: unknown[]) => {
        writes.push(`${op} ${String(args[0])}`);
        original(...args);
      };
    }
    return client;
  };
  return { writes, factory };
}

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

describe('zookeeper registry', () => {
  it('registers ephemeral nodes, lists them with matching fingerprints, deregisters; reap() drops the empty parent', async () => {
    const base = freshBase();
    const r = registry({ nodeId: 'n1', basePath: base });
    const a = service({ node: 'n1' });
    const b = service({
      node: 'n1',
      name: 'api',
      container: { id: 'ffff', name: 'api1' },
      id: 'n1:api1:8080',
    });
    await r.register(a);
    await r.register(b);

    const stat = await raw.exists(`${base}/web/n1:web1:80`);
    expect(stat).not.toBeNull();
    expect(stat!.ephemeralOwner.toString('hex')).not.toBe('0000000000000000');
    expect((await raw.exists(base))!.ephemeralOwner.toString('hex')).toBe('0000000000000000');

    const listed = await r.list();
    expect(listed.sort((x, y) => x.id.localeCompare(y.id))).toEqual([
      { id: 'n1:api1:8080', name: 'api', fingerprint: r.fingerprint(b) },
      { id: 'n1:web1:80', name: 'web', fingerprint: r.fingerprint(a) },
    ]);

    await r.deregister(a.id);
    expect(await raw.exists(`${base}/web/n1:web1:80`)).toBeNull();
    // Kept on the write path (the next start in it is one create), reaped when asked.
    expect(await raw.exists(`${base}/web`)).not.toBeNull();
    await r.reap!();
    expect(await raw.exists(`${base}/web`)).toBeNull();
    expect(await raw.exists(`${base}/api`)).not.toBeNull();
    await r.deregister('n1:never:1');
    expect((await r.list()).map((e) => e.id)).toEqual(['n1:api1:8080']);
  });

  it('records the engine; a clone with the same node id lists it as another engine’s and never changes or removes it', async () => {
    const base = freshBase();
    const ours = registry({ nodeId: 'n1', engineId: 'ENGINE-A', basePath: base });
    const a = service({ node: 'n1' });
    await ours.register(a);
    const path = `${base}/web/n1:web1:80`;
    const written = await raw.getData(path);
    expect(JSON.parse(written.data)).toMatchObject({
      'registrar.node': 'n1',
      'registrar.engine': 'ENGINE-A',
    });
    expect((await ours.list()).map((e) => [e.id, e.engine])).toEqual([[a.id, 'ENGINE-A']]);

    const clone = registry({ nodeId: 'n1', engineId: 'ENGINE-B', basePath: base });
    expect((await clone.list()).map((e) => [e.id, e.engine])).toEqual([[a.id, 'ENGINE-A']]);
    const refused = await clone.register({ ...a, port: 1 }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(NodeIdConflictError);
    expect((refused as NodeIdConflictError).engine).toBe('ENGINE-A');
    await clone.deregister(a.id);
    await clone.close({ deregister: true });
    const after = await raw.getData(path);
    expect(after.data).toBe(written.data);
    expect(after.stat.mzxid.toString('hex')).toBe(written.stat.mzxid.toString('hex'));
  });

  it('adopts a node of its node id that records no engine (an older version wrote it)', async () => {
    const base = freshBase();
    const old = registry({ nodeId: 'n1', basePath: base });
    const a = service({ node: 'n1' });
    await old.register(a);
    const upgraded = registry({ nodeId: 'n1', engineId: 'ENGINE-A', basePath: base });
    const listed = await upgraded.list();
    expect(listed.map((e) => e.id)).toEqual([a.id]);
    expect(listed[0]!.engine).toBeUndefined();
    // Rewritten once with the engine (another session's node: replaced by ours).
    await upgraded.register(a);
    const { data } = await raw.getData(`${base}/web/n1:web1:80`);
    expect(JSON.parse(data)).toMatchObject({ 'registrar.engine': 'ENGINE-A' });
  });

  it('writes Curator ServiceInstance JSON byte for byte, with a Spring Cloud Zookeeper payload', async () => {
    const base = freshBase();
    const r = registry({ nodeId: 'n1', basePath: base, payload: 'spring' });
    const before = Date.now();
    await r.register(service({ node: 'n1' }));
    const { data } = await raw.getData(`${base}/web/n1:web1:80`);
    const parsed = JSON.parse(data) as Record<string, unknown>;
    const time = parsed.registrationTimeUTC as number;
    expect(time).toBeGreaterThanOrEqual(before);
    expect(time).toBeLessThanOrEqual(Date.now());
    expect(data).toBe(
      '{"name":"web","id":"n1:web1:80","address":"10.0.0.5","port":32768,"sslPort":null,' +
        '"payload":{"@class":"org.springframework.cloud.zookeeper.discovery.ZookeeperInstance","id":"n1:web1:80",' +
        '"name":"web","metadata":{"env":"test","version":"1.2","tags":"blue,v1","protocol":"tcp",' +
        '"registrar.node":"n1","registrar.container.id":"0123456789abcdef0123456789abcdef",' +
        '"registrar.container.name":"web1"}},' +
        `"registrationTimeUTC":${time},"serviceType":"DYNAMIC","uriSpec":null}`,
    );
    // Every field as a Curator reader (Jackson, ServiceInstance<ZookeeperInstance>) sees it.
    expect(Object.keys(parsed)).toEqual([
      'name',
      'id',
      'address',
      'port',
      'sslPort',
      'payload',
      'registrationTimeUTC',
      'serviceType',
      'uriSpec',
    ]);
    expect(parsed).toMatchObject({
      name: 'web',
      id: 'n1:web1:80',
      address: '10.0.0.5',
      port: 32768,
      sslPort: null,
      serviceType: 'DYNAMIC',
      uriSpec: null,
      payload: {
        '@class': 'org.springframework.cloud.zookeeper.discovery.ZookeeperInstance',
        id: 'n1:web1:80',
        name: 'web',
        metadata: { env: 'test', version: '1.2', tags: 'blue,v1', protocol: 'tcp', 'registrar.node': 'n1' },
      },
    });
    expect(Number.isSafeInteger(time)).toBe(true);
  });

  it('writes a null payload by default, with the owner beside it, and lists it as its own', async () => {
    const base = freshBase();
    const r = registry({ nodeId: 'n1', basePath: base });
    const s = service({ node: 'n1' });
    await r.register(s);
    const parsed = JSON.parse((await raw.getData(`${base}/web/${s.id}`)).data) as Record<string, unknown>;
    expect(parsed.payload).toBeNull();
    expect(parsed['registrar.node']).toBe('n1');
    expect(await r.list()).toEqual([{ id: s.id, name: 'web', fingerprint: r.fingerprint(s) }]);
  });

  it('a bridge restarted with another payload mode takes over its nodes and rewrites them', async () => {
    const base = freshBase();
    const s = service({ node: 'n1' });
    const before = registry({ nodeId: 'n1', basePath: base, payload: 'spring' });
    await before.register(s);
    await before.close();
    const after = registry({ nodeId: 'n1', basePath: base, payload: 'plain' });
    const listed = await after.list();
    expect(listed.map((e) => e.id)).toEqual([s.id]);
    expect(listed[0]!.fingerprint).not.toBe(after.fingerprint(s));
    await after.register(s);
    const parsed = JSON.parse((await raw.getData(`${base}/web/${s.id}`)).data) as Record<string, unknown>;
    expect((parsed.payload as Record<string, unknown>)['@class']).toBe('java.util.LinkedHashMap');
    expect(await after.list()).toEqual([{ id: s.id, name: 'web', fingerprint: after.fingerprint(s) }]);
  });

  it('refuses a payload with the registrator layout', () => {
    expect(() =>
      createZookeeperRegistry({
        connectString: server.connectString,
        nodeId: 'n1',
        layout: 'registrator',
        payload: 'plain',
      }),
    ).toThrow('zookeeper registry: payload applies to the curator layout only');
  });

  it("writes registrator's JSON at <base>/<name>/<ip>:<port> with the registrator layout", async () => {
    const base = freshBase();
    const r = registry({ nodeId: 'n1', basePath: base, layout: 'registrator' });
    const s = service({ node: 'n1' });
    await r.register(s);
    expect(await raw.children(`${base}/web`)).toEqual(['10.0.0.5:32768']);
    const { data, stat } = await raw.getData(`${base}/web/10.0.0.5:32768`);
    expect(data).toBe(
      '{"Name":"web","IP":"10.0.0.5","PublicPort":32768,"PrivatePort":80,"ContainerID":"0123456789ab",' +
        '"Tags":["blue","v1"],"Attrs":{"env":"test","version":"1.2"},"ID":"n1:web1:80","Node":"n1"}',
    );
    expect(stat.ephemeralOwner.toString('hex')).not.toBe('0000000000000000');
    expect(await r.list()).toEqual([{ id: s.id, name: 'web', fingerprint: r.fingerprint(s) }]);
    await r.deregister(s.id);
    expect(await raw.children(`${base}/web`)).toEqual([]);
  });

  it('writes nothing on a resync of unchanged services; keeps the registration time on an update', async () => {
    const base = freshBase();
    const { writes, factory } = countingFactory();
    const r = registry({ nodeId: 'n1', basePath: base, client: factory });
    const s = service({ node: 'n1' });
    await r.register(s);
    const path = `${base}/web/n1:web1:80`;
    const first = await raw.getData(path);
    writes.length = 0;

    // What the reconciler does: compare fingerprints, write only what differs.
    const listed = await r.list();
    expect(listed.map((e) => e.fingerprint)).toEqual([r.fingerprint(s)]);
    // Even a blind re-register of an unchanged service changes nothing: the node this session holds is read,
    // found equal, and neither created again (a refused create is still a write on the server) nor set.
    await r.register(s);
    expect(writes).toEqual([]);
    writes.length = 0;
    const again = await raw.getData(path);
    expect(again.stat.version).toBe(first.stat.version);
    expect(again.stat.mzxid.equals(first.stat.mzxid)).toBe(true);

    // The default payload (none) stores no tags or metadata, so only a change of what is stored is drift.
    expect(r.fingerprint({ ...s, tags: ['green'] })).toBe(r.fingerprint(s));
    const changed = { ...s, port: 40000 };
    expect(r.fingerprint(changed)).not.toBe(r.fingerprint(s));
    await r.register(changed);
    expect(writes).toEqual([`setData ${path}`]);
    const updated = await raw.getData(path);
    const time = (d: string) => (JSON.parse(d) as { registrationTimeUTC: number }).registrationTimeUTC;
    expect(time(updated.data)).toBe(time(first.data));
    expect((await r.list())[0].fingerprint).toBe(r.fingerprint(changed));
  });

  it('replaces a node left by an earlier session of the same node id instead of duplicating it', async () => {
    const base = freshBase();
    const s = service({ node: 'n1' });
    const old = registry({ nodeId: 'n1', basePath: base, ttl: 20 });
    await old.register(s);
    const path = `${base}/web/n1:web1:80`;
    const oldOwner = (await raw.exists(path))!.ephemeralOwner.toString('hex');

    const r = registry({ nodeId: 'n1', basePath: base });
    const listed = await r.list();
    expect(listed).toHaveLength(1);
    expect(listed[0].fingerprint).not.toBe(r.fingerprint(s));
    await r.register(s);
    expect(await raw.children(`${base}/web`)).toEqual(['n1:web1:80']);
    const owner = (await raw.exists(path))!.ephemeralOwner.toString('hex');
    expect(owner).not.toBe(oldOwner);
    expect(await r.list()).toEqual([{ id: s.id, name: 'web', fingerprint: r.fingerprint(s) }]);
  });

  it('renaming a service moves its node', async () => {
    const base = freshBase();
    const r = registry({ nodeId: 'n1', basePath: base });
    const s = service({ node: 'n1' });
    await r.register(s);
    await r.register({ ...s, name: 'www' });
    expect(await raw.children(`${base}/web`)).toEqual([]);
    expect(await raw.children(`${base}/www`)).toEqual([s.id]);
  });

  it('two bridges with prefix-similar node ids sharing a base never touch each other', async () => {
    for (const layout of ['curator', 'registrator'] as const) {
      const base = freshBase();
      const a = registry({ nodeId: 'host', basePath: base, layout });
      const b = registry({ nodeId: 'host-2', basePath: base, layout });
      const sa = service({ node: 'host', port: 1001 });
      const sb = service({ node: 'host-2', port: 1002 });
      await a.register(sa);
      await b.register(sb);
      expect((await a.list()).map((e) => e.id)).toEqual([sa.id]);
      expect((await b.list()).map((e) => e.id)).toEqual([sb.id]);

      await a.deregister(sb.id);
      expect((await b.list()).map((e) => e.id)).toEqual([sb.id]);

      if (layout === 'registrator') {
        // Same ip:port under the same name, owned by the other node: refused, untouched.
        const clash = { ...sb, id: 'host:other:80', node: 'host' };
        await expect(a.register(clash)).rejects.toBeInstanceOf(RegistryRejectedError);
        expect((await b.list()).map((e) => e.id)).toEqual([sb.id]);
      }
      await a.close({ deregister: true });
      expect((await b.list()).map((e) => e.id)).toEqual([sb.id]);
      expect(await raw.children(`${base}/web`)).toHaveLength(1);
    }
  });

  it('never modifies a node another node owns even when the ids collide', async () => {
    const base = freshBase();
    const a = registry({ nodeId: 'a', basePath: base });
    const b = registry({ nodeId: 'b', basePath: base });
    const s = service({ node: 'a' });
    await a.register(s);
    const before = await raw.getData(`${base}/web/${s.id}`);
    await expect(b.register({ ...s, node: 'b' })).rejects.toThrow(/belongs to node a/);
    await b.deregister(s.id);
    const after = await raw.getData(`${base}/web/${s.id}`);
    expect(after.data).toBe(before.data);
    expect(after.stat.mzxid.equals(before.stat.mzxid)).toBe(true);
  });

  it('enforces digest ACLs: without credentials nothing can be changed, and read only when world-readable', async () => {
    const auth = { scheme: 'digest', credentials: 'bridge:s3cret' } as const;
    const closed = freshBase();
    const r = registry({ nodeId: 'n1', basePath: closed, auth });
    await r.register(service({ node: 'n1' }));
    const path = `${closed}/web/n1:web1:80`;
    expect(await zkErrorName(raw.getData(path))).toBe('NO_AUTH');
    expect(await zkErrorName(raw.setData(path, 'x'))).toBe('NO_AUTH');
    expect(await zkErrorName(raw.remove(path))).toBe('NO_AUTH');
    expect(await zkErrorName(raw.create(`${closed}/web/intruder`))).toBe('NO_AUTH');
    expect(await zkErrorName(raw.getACL(path))).toBe('NO_AUTH');
    const authed = await connectRaw(server.connectString, { auth: 'bridge:s3cret' });
    const acls = await authed.getACL(path);
    // digest id = user:base64(sha1("user:password"))
    // The typings say `perms`; the library object carries `permission`.
    expect(
      acls.map((a) => `${a.id.scheme}:${a.id.id}:${(a as unknown as { permission: number }).permission}`),
    ).toEqual(['digest:bridge:RSWMkMa9JnU0KR70DOMswaETP4M=:31']);
    expect(JSON.parse((await authed.getData(path)).data)).toMatchObject({ id: 'n1:web1:80' });
    authed.close();
    expect(await r.list()).toHaveLength(1);

    const open = freshBase();
    const w = registry({ nodeId: 'n1', basePath: open, auth, worldReadable: true });
    await w.register(service({ node: 'n1' }));
    const wpath = `${open}/web/n1:web1:80`;
    expect(JSON.parse((await raw.getData(wpath)).data)).toMatchObject({ id: 'n1:web1:80' });
    expect(await raw.children(`${open}/web`)).toEqual(['n1:web1:80']);
    expect(await zkErrorName(raw.setData(wpath, 'x'))).toBe('NO_AUTH');
    expect(await zkErrorName(raw.remove(wpath))).toBe('NO_AUTH');
  });

  it('reap() removes an empty parent only, and races safely with a bridge creating an instance in it', async () => {
    const base = freshBase();
    const a = registry({ nodeId: 'a', basePath: base });
    const b = registry({ nodeId: 'b', basePath: base });
    const sa = service({ node: 'a', port: 1 });
    const sb = service({ node: 'b', port: 2 });

    // Someone else's persistent child keeps the parent.
    await raw.create(`${base}`);
    await raw.create(`${base}/web`);
    await raw.create(`${base}/web/foreign`);
    await a.register(sa);
    await a.deregister(sa.id);
    await a.reap!();
    expect(await raw.children(`${base}/web`)).toEqual(['foreign']);
    await raw.remove(`${base}/web/foreign`);

    for (let i = 0; i < 25; i++) {
      // a's reap races b's create (b believes the node exists after its first round).
      await a.register(sa);
      await a.deregister(sa.id);
      await Promise.all([a.reap!(), b.register(sb)]);
      expect(await raw.children(`${base}/web`)).toEqual([sb.id]);
      await b.deregister(sb.id);
      await Promise.all([b.reap!(), a.register(sa)]);
      expect(await raw.children(`${base}/web`)).toEqual([sa.id]);
      await a.deregister(sa.id);
      await a.reap!();
      expect(await raw.exists(`${base}/web`)).toBeNull();
    }
  });

  it('the next start in a service whose last instance went is one create', async () => {
    const base = freshBase();
    const { writes, factory } = countingFactory();
    const r = registry({ nodeId: 'n1', basePath: base, client: factory });
    const a = service({ node: 'n1' });
    await r.register(a);
    await r.deregister(a.id);
    writes.length = 0;
    await r.register(a);
    expect(writes).toEqual([`create ${base}/web/n1:web1:80`]);
  });

  it('rejects names that cannot be a node name', async () => {
    const r = registry({ nodeId: 'n1', basePath: freshBase() });
    await expect(r.register(service({ node: 'n1', name: 'a/b' }))).rejects.toBeInstanceOf(
      RegistryRejectedError,
    );
  });

  it('close() without deregister abandons the session: nodes stay, then vanish with the session timeout', async () => {
    const base = freshBase();
    const r = unmanagedRegistry({ nodeId: 'n1', basePath: base });
    await r.register(service({ node: 'n1' }));
    const path = `${base}/web/n1:web1:80`;
    const closedAt = Date.now();
    await r.close();
    expect(await raw.exists(path)).not.toBeNull();
    await vi.waitFor(async () => expect(await raw.exists(path)).toBeNull(), { timeout: 6000, interval: 50 });
    expect(Date.now() - closedAt).toBeLessThan(4000);
  });

  it('close({ deregister: true }) removes everything at once', async () => {
    const base = freshBase();
    const r = unmanagedRegistry({ nodeId: 'n1', basePath: base });
    await r.register(service({ node: 'n1' }));
    await r.close({ deregister: true });
    expect(await raw.exists(`${base}/web`)).toBeNull();
  });
});
