import {
  RegistryConnectionError,
  RegistryError,
  RegistryRejectedError,
  RegistrySessionLostError,
} from '@registrar/core';
import { startZookeeper, type ZookeeperServer } from '@registrar/test-servers/zookeeper';
import { createHash } from 'node:crypto';
import zookeeper from 'node-zookeeper-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createZookeeperRegistry } from './index.js';
import { toRegistryError, ZkCodeError } from './errors.js';
import { connectRaw, service, type Raw } from './testing/helpers.js';

const E = zookeeper.Exception;
const zk = (code: number, name: string) => new ZkCodeError(code, `Exception: ${name}[${code}]`);

/** The ZooKeeper codes (by name) that become each registry error, and the kind it carries. */
const mappings: [
  kind: string,
  type: new (...args: never[]) => RegistryError,
  names: Exclude<keyof typeof E, 'prototype'>[],
][] = [
  ['connection', RegistryConnectionError, ['CONNECTION_LOSS', 'OPERATION_TIMEOUT']],
  // Races the adapter retries itself; one that escapes is worth another try later.
  ['connection', RegistryConnectionError, ['NODE_EXISTS', 'BAD_VERSION', 'SYSTEM_ERROR']],
  ['liveness-lost', RegistrySessionLostError, ['SESSION_EXPIRED']],
  [
    'rejected',
    RegistryRejectedError,
    ['NO_AUTH', 'AUTH_FAILED', 'INVALID_ACL', 'BAD_ARGUMENTS', 'NO_CHILDREN_FOR_EPHEMERALS', 'UNIMPLEMENTED'],
  ],
];

describe('toRegistryError', () => {
  it.each(
    mappings.flatMap(([kind, type, names]) => names.map((name) => [name, E[name], type, kind] as const)),
  )('%s → %s', (name, code, type, kind) => {
    const mapped = toRegistryError(zk(code, name), 'register web');
    expect(mapped).toBeInstanceOf(type);
    expect(mapped.kind).toBe(kind);
    expect(mapped.retryable).toBe(kind !== 'rejected');
    expect(mapped.backend).toBe('zookeeper');
    expect(mapped.message).toBe(`register web: Exception: ${name}[${code}]`);
  });

  it('anything else becomes a retryable connection error, never a plain Error', () => {
    for (const thrown of [
      new Error('socket hang up'),
      'a string',
      undefined,
      new RegistryError('/services/web kept changing under us', 'zookeeper'),
    ]) {
      const mapped = toRegistryError(thrown, 'list');
      expect(mapped).toBeInstanceOf(RegistryConnectionError);
      expect(mapped.kind).toBe('connection');
      expect(mapped.message).toMatch(/^list: /);
      expect(mapped.cause).toBe(thrown);
    }
  });

  it('errors already mapped pass through unchanged', () => {
    for (const error of [
      new RegistryConnectionError('down', 'zookeeper'),
      new RegistrySessionLostError('gone', 'zookeeper'),
      new RegistryRejectedError('no', 'zookeeper'),
    ]) {
      expect(toRegistryError(error, 'list')).toBe(error);
    }
  });
});

describe('zookeeper errors from a real server', () => {
  let server: ZookeeperServer;
  let raw: Raw;

  beforeAll(async () => {
    server = await startZookeeper();
    raw = await connectRaw(server.connectString, { auth: 'owner:secret' });
  });

  afterAll(async () => {
    raw?.close();
    await server?.close();
  });

  it('NO_AUTH (a base path only another user may write) is a rejected error', async () => {
    const hash = createHash('sha1').update('owner:secret').digest('base64');
    await raw.create('/locked', '', [
      new zookeeper.ACL(zookeeper.Permission.ALL, new zookeeper.Id('digest', `owner:${hash}`)),
    ]);
    const registry = createZookeeperRegistry({
      connectString: server.connectString,
      nodeId: 'n1',
      basePath: '/locked',
      ttl: 4,
    });
    try {
      const error = await registry.register(service({ node: 'n1' })).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(RegistryRejectedError);
      expect((error as RegistryRejectedError).kind).toBe('rejected');
      expect((error as Error).message).toMatch(/NO_AUTH/);
    } finally {
      await registry.close({ deregister: true });
    }
  });
});
