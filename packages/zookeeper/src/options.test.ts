import { ConfigError } from '@registrar/core';
import { describe, expect, it } from 'vitest';
import { resolveNames } from './registry.js';

describe('ZooKeeper options in the shared vocabulary', () => {
  it('maps hosts, prefix and timeoutMs onto what the adapter uses, and keeps the deprecated names working', () => {
    expect(resolveNames('zk', { hosts: ['a:2181', 'b:2182'], prefix: '/p', timeoutMs: 7 })).toMatchObject({
      connectString: 'a:2181,b:2182',
      basePath: '/p',
      operationTimeoutMs: 7,
    });
    expect(
      resolveNames('zk', { connectString: 'a:2181', basePath: '/q', operationTimeoutMs: 8 }),
    ).toMatchObject({
      connectString: 'a:2181',
      basePath: '/q',
      operationTimeoutMs: 8,
    });
  });

  it.each([
    [{ hosts: ['a:2181'], connectString: 'a:2181' }, 'connectString'],
    [{ prefix: '/a', basePath: '/a' }, 'basePath'],
    [{ timeoutMs: 1, operationTimeoutMs: 1 }, 'operationTimeoutMs'],
    [{ hosts: [] }, 'hosts'],
    [{ hosts: ['a:1,b:2'] }, 'hosts'],
  ])('%j is a ConfigError naming %s', (options, field) => {
    expect(() => resolveNames('zk', options)).toThrow(ConfigError);
    try {
      resolveNames('zk', options);
    } catch (error) {
      expect((error as ConfigError).field).toBe(field);
    }
  });
});
