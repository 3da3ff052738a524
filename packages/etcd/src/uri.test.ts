import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, silentLogger } from '@registrar/core';
import { describe, expect, it } from 'vitest';
import { etcdRegistryFromUri, parseEtcdUri } from './uri.js';

describe('parseEtcdUri', () => {
  it.each([
    ['etcd://127.0.0.1:2379/services', { hosts: ['127.0.0.1:2379'], prefix: '/services', tls: false }],
    ['etcd://a:1,b:2,c/p/q', { hosts: ['a:1', 'b:2', 'c:2379'], prefix: '/p/q' }],
    ['etcd://etcd', { hosts: ['etcd:2379'], prefix: undefined }],
    ['etcd://[::1]:2380/', { hosts: ['[::1]:2380'], prefix: undefined }],
    ['etcds://h/x', { hosts: ['h:2379'], tls: true }],
    ['etcd-tls://h/x', { tls: true }],
    ['etcd://h/x?layout=hostport', { layout: 'hostport' }],
    ['etcd://h?layout=skydns&domain=dc1.example', { layout: 'skydns', domain: 'dc1.example' }],
    ['etcd://h/x?timeout=1.5', { timeoutMs: 1500 }],
  ])('%s', (uri, expected) => {
    expect(parseEtcdUri(uri)).toMatchObject(expected);
  });

  it('accepts a URL object', () => {
    expect(parseEtcdUri(new URL('etcd://h:1/p'))).toMatchObject({ hosts: ['h:1'], prefix: '/p' });
  });

  it.each([
    [
      'etcd://:notaport',
      'invalid etcd URI "etcd://:notaport": port "notaport" is not a number; expected etcd://host:port[,host:port...]/prefix',
    ],
    ['etcd://h:70000/', 'port "70000" is out of range 1-65535'],
    ['etcd://:2379/', 'no host name before ":2379"'],
    ['etcd:///services', 'no host given'],
    ['etcd://a:1,,b:2/', 'empty host in the host list'],
    ['etcd://bad host/', 'host "bad host" is not a valid host name'],
    ['http://h:2379/', 'unknown scheme "http:"; use etcd:// or etcds:// (TLS)'],
    [
      'etcd://root:secret@h/',
      // The same words as the other adapters' (it read "credentials in the URI are not allowed").
      'invalid etcd URI "etcd://***@h/": credentials do not belong in the URI; set ETCD_USERNAME',
    ],
    ['etcd://h/?layout=xml', 'unknown layout "xml"; use layout=json|hostport|skydns'],
    ['etcd://h/?ttl=3', 'unknown parameter "ttl"'],
    ['etcd://h/?domain=x.y', 'domain is only used with layout=skydns'],
    ['etcd://h/?timeout=0', 'timeout "0" is not a positive number of seconds'],
  ])('%s → ConfigError', (uri, message) => {
    let error: unknown;
    try {
      parseEtcdUri(uri);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const text = (error as Error).message;
    expect(text).toContain(message);
    expect(text).not.toContain('\n');
    expect(text).not.toContain('secret');
  });
});

describe('etcdRegistryFromUri', () => {
  const ctx = (env: Record<string, string> = {}) => ({ nodeId: 'n1', ttl: 15, logger: silentLogger, env });
  const dir = mkdtempSync(join(tmpdir(), 'registrar-etcd-uri-'));
  const file = (name: string, content: string) => {
    const path = join(dir, name);
    writeFileSync(path, content);
    return path;
  };

  it('builds an adapter whose target names hosts and prefix but no credentials', async () => {
    const registry = etcdRegistryFromUri(
      'etcd://a:1,b:2/svc',
      ctx({ ETCD_USERNAME: 'root', ETCD_PASSWORD_FILE: file('pw', 'hunter2\n') }),
    );
    expect(registry.target).toBe('etcd://a:1,b:2/svc');
    expect(registry.backend).toBe('etcd');
    expect(registry.nodeId).toBe('n1');
    await registry.close();
  });

  it('skydns defaults to /skydns and the given domain', async () => {
    const registry = etcdRegistryFromUri('etcd://h?layout=skydns&domain=dc1.example', ctx());
    expect(registry.target).toBe('etcd://h:2379/skydns/example/dc1');
    await registry.close();
  });

  it.each([
    [{ ETCD_PASSWORD: 'x' }, 'an etcd password is set but ETCD_USERNAME is not'],
    [{ ETCD_USERNAME: 'u' }, 'ETCD_USERNAME is set but no password'],
    [{ ETCD_USERNAME: 'u', ETCD_PASSWORD: 'p', ETCD_PASSWORD_FILE: '/x' }, 'set only one of them'],
    [{ ETCD_USERNAME: 'u', ETCD_PASSWORD_FILE: '/nonexistent/pw' }, 'cannot read ETCD_PASSWORD_FILE'],
    [{ ETCD_CACERT: '/x' }, 'use etcds:// for TLS'],
  ])('env %j → ConfigError', (env, message) => {
    expect(() => etcdRegistryFromUri('etcd://h/', ctx(env))).toThrow(message);
  });

  it('TLS files are read for etcds:// and a lone client cert is refused', async () => {
    expect(() => etcdRegistryFromUri('etcds://h/', ctx({ ETCD_CERT: file('c.pem', 'x') }))).toThrow(
      'needs both ETCD_CERT and ETCD_KEY',
    );
    expect(() => etcdRegistryFromUri('etcds://h/', ctx({ ETCD_CACERT: '/nonexistent/ca.pem' }))).toThrow(
      'cannot read ETCD_CACERT="/nonexistent/ca.pem" (ENOENT)',
    );
    const registry = etcdRegistryFromUri('etcds://h/', ctx({ ETCD_CACERT: file('ca.pem', 'x') }));
    expect(registry.target).toBe('etcds://h:2379/services');
    await registry.close();
  });

  it('bad node ids and ttls are configuration errors', () => {
    expect(() => etcdRegistryFromUri('etcd://h/', { ...ctx(), nodeId: 'a:b' })).toThrow(ConfigError);
    expect(() => etcdRegistryFromUri('etcd://h/', { ...ctx(), ttl: 1 })).toThrow('use at least 2 seconds');
    expect(() => etcdRegistryFromUri('etcd://h/', { ...ctx(), ttlRefresh: 15 })).toThrow('below the ttl');
  });
});
