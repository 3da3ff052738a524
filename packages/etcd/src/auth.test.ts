import type { Registry } from '@registrar/core';
import { RegistryRejectedError } from '@registrar/core';
import { startEtcd, type EtcdServer } from '@registrar/test-servers/etcd';
import { Etcd3 } from 'etcd3';
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
});
