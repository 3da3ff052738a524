import type { Registry } from '@registrar/core';
import { RegistryRejectedError } from '@registrar/core';
import { startEtcd, type EtcdServer } from '@registrar/test-servers/etcd';
import { Etcd3, Range } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEtcdRegistry } from './index.js';
import { service } from '@registrar/core/testing';
import { dump } from './test-support/helpers.js';

let etcd: EtcdServer;
let root: Etcd3;

beforeAll(async () => {
  etcd = await startEtcd();
  // What `etcdctl user add root`, `user grant-role root root`, `auth enable` do.
  const setup = new Etcd3({ hosts: [etcd.endpoint] });
  await setup.role('root').create();
  await setup.user('root').create('pw');
  await setup.user('root').addRole('root');
  await setup.auth.authEnable({});
  setup.close();
  root = new Etcd3({ hosts: [etcd.endpoint], auth: { username: 'root', password: 'pw' } });
});
afterAll(async () => {
  root?.close();
  await etcd?.close();
});

const adapter = (password: string): Registry =>
  createEtcdRegistry({
    hosts: [etcd.endpoint],
    auth: { username: 'root', password },
    nodeId: 'n1',
    prefix: '/auth',
    requestTimeout: 2000,
  });

describe('etcd auth (real etcd with auth enabled)', () => {
  it('user/password works: leased keys are written and listed', async () => {
    const registry = adapter('pw');
    await registry.register(service({ node: 'n1' }));
    expect((await registry.list()).map((entry) => entry.id)).toEqual(['n1:web-1:80']);
    const { keys } = await dump(root, '/auth/');
    expect(keys).toHaveLength(1);
    expect(keys[0].lease).not.toBe('0');
    await registry.close({ deregister: true });
    expect((await dump(root, '/auth/')).keys).toEqual([]);
  });

  it('a wrong password is a RegistryRejectedError, not a retryable connection error', async () => {
    const registry = adapter('wrong');
    const error = await registry.register(service({ node: 'n1' })).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(RegistryRejectedError);
    expect((error as RegistryRejectedError).retryable).toBe(false);
    await expect(registry.list()).rejects.toBeInstanceOf(RegistryRejectedError);
    await registry.close();
  });

  it('without credentials etcd refuses: rejected as well', async () => {
    const registry = createEtcdRegistry({ hosts: [etcd.endpoint], nodeId: 'n1', prefix: '/auth' });
    await expect(registry.list()).rejects.toBeInstanceOf(RegistryRejectedError);
    await registry.close();
  });

  it('a batch with a write the user may not make: that write is refused, the others of its transaction land', async () => {
    // A user who may write under /perm/web/ only.
    await root.role('web-only').create();
    await root.role('web-only').grant({ permission: 'Readwrite', range: Range.prefix('/perm/web/') });
    await root.user('web-only').create('pw2');
    await root.user('web-only').addRole('web-only');
    const registry = createEtcdRegistry({
      hosts: [etcd.endpoint],
      auth: { username: 'web-only', password: 'pw2' },
      nodeId: 'n1',
      prefix: '/perm',
    });
    const web = (i: number) => service({ node: 'n1', container: { id: `c${i}`, name: `web-${i}` } });
    const api = service({ node: 'n1', name: 'api', container: { id: 'a', name: 'api-1' } });
    const results = await registry.applyBatch!([
      { type: 'register', service: web(1) },
      { type: 'register', service: api },
      { type: 'register', service: web(2) },
    ]);
    expect(results.map((r) => r.ok)).toEqual([true, false, true]);
    expect(results[1].ok === false && results[1].error).toBeInstanceOf(RegistryRejectedError);
    expect((await dump(root, '/perm/')).keys.map((k) => k.key)).toEqual([
      '/perm/web/n1:web-1:80',
      '/perm/web/n1:web-2:80',
    ]);
    await registry.close({ deregister: true });
  });
});
