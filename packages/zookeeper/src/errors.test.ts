import {
  RegistryConnectionError,
  RegistryError,
  RegistryRejectedError,
  RegistrySessionLostError,
} from '@registrar/core';
import { startZookeeper, type ZookeeperServer } from '@registrar/test/harness/zookeeper';
import { createHash } from 'node:crypto';
import zookeeper from 'node-zookeeper-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createZookeeperRegistry } from './index.js';
import { toRegistryError, ZkCodeError } from './session.js';
import { connectRaw, service, type Raw } from './testing/helpers.js';

const E = zookeeper.Exception;
const zk = (code: number, name: string) => new ZkCodeError(code, `Exception: ${name}[${code}]`);

describe('toRegistryError', () => {
  it.each([
    ['CONNECTION_LOSS', E.CONNECTION_LOSS, RegistryConnectionError, 'connection'],
    ['OPERATION_TIMEOUT', E.OPERATION_TIMEOUT, RegistryConnectionError, 'connection'],
    ['SESSION_EXPIRED', E.SESSION_EXPIRED, RegistrySessionLostError, 'liveness-lost'],
    ['NO_AUTH', E.NO_AUTH, RegistryRejectedError, 'rejected'],
    ['AUTH_FAILED', E.AUTH_FAILED, RegistryRejectedError, 'rejected'],
    ['INVALID_ACL', E.INVALID_ACL, RegistryRejectedError, 'rejected'],
    ['BAD_ARGUMENTS', E.BAD_ARGUMENTS, RegistryRejectedError, 'rejected'],
    ['NO_CHILDREN_FOR_EPHEMERALS', E.NO_CHILDREN_FOR_EPHEMERALS, RegistryRejectedError, 'rejected'],
    ['UNIMPLEMENTED', E.UNIMPLEMENTED, RegistryRejectedError, 'rejected'],
    // Races the adapter retries itself; one that escapes is worth another try later.
    ['NODE_EXISTS', E.NODE_EXISTS, RegistryConnectionError, 'connection'],
    ['BAD_VERSION', E.BAD_VERSION, RegistryConnectionError, 'connection'],
    ['SYSTEM_ERROR', E.SYSTEM_ERROR, RegistryConnectionError, 'connection'],
  ])('%s → %s', (name, code, type, kind) => {
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
