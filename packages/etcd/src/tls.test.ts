import { join } from 'node:path';
import { RegistryConnectionError, silentLogger } from '@registrar/core';
import { startEtcd, type EtcdServer } from '@registrar/test-servers/etcd';
import { removeDir, tempDir } from '@registrar/test-servers/process';
import { makeCertificates } from '@registrar/test-servers/tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdRegistryFromUri } from './index.js';
import { service } from '@registrar/core/testing';

let etcd: EtcdServer;
let dir: string;
const pem = (name: string) => join(dir, name);

beforeAll(async () => {
  dir = tempDir('etcd-tls');
  makeCertificates(dir);
  etcd = await startEtcd({
    tls: { cert: pem('server.pem'), key: pem('server.key'), ca: pem('ca.pem'), clientCertAuth: true },
  });
});
afterAll(async () => {
  await etcd?.close();
  removeDir(dir);
});

const ctx = (env: Record<string, string>) => ({ nodeId: 'n1', ttl: 5, logger: silentLogger, env });
const uri = () => `etcds://127.0.0.1:${etcd.port}/tls?timeout=2`;

describe('etcd over TLS (real etcd with client-certificate auth)', () => {
  it('etcds:// with ETCD_CACERT, ETCD_CERT and ETCD_KEY registers and lists', async () => {
    const registry = etcdRegistryFromUri(
      uri(),
      ctx({ ETCD_CACERT: pem('ca.pem'), ETCD_CERT: pem('client.pem'), ETCD_KEY: pem('client.key') }),
    );
    expect(registry.target).toBe(`etcds://127.0.0.1:${etcd.port}/tls`);
    await registry.register(service({ node: 'n1' }));
    expect((await registry.list()).map((entry) => entry.id)).toEqual(['n1:web-1:80']);
    await registry.close({ deregister: true });
  });

  it('an untrusted server (system roots only) fails as a connection error, in bounded time', async () => {
    const registry = etcdRegistryFromUri(
      uri(),
      ctx({ ETCD_CERT: pem('client.pem'), ETCD_KEY: pem('client.key') }),
    );
    const startedAt = Date.now();
    await expect(registry.list()).rejects.toBeInstanceOf(RegistryConnectionError);
    expect(Date.now() - startedAt).toBeLessThan(3000);
    await registry.close();
  });
});
