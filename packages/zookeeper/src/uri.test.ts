import { ConfigError } from '@registrar/core';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseZookeeperUri } from './uri.js';

describe('parseZookeeperUri', () => {
  /** What a curator-layout URI parses to: no payload unless `more` names one. */
  const curator = (hosts: string, prefix: string, more: object = {}) => ({
    hosts: hosts.split(','),
    prefix,
    layout: 'curator',
    payload: 'none',
    ...more,
  });
  it.each([
    ['zookeeper://h1:2181,h2:2182/base', curator('h1:2181,h2:2182', '/base')],
    ['zk://h1,h2', curator('h1:2181,h2:2181', '/services')],
    ['zk://127.0.0.1:2181/', curator('127.0.0.1:2181', '/services')],
    [
      'zookeeper://zk:2181/a/b/?layout=registrator',
      { hosts: ['zk:2181'], prefix: '/a/b', layout: 'registrator' },
    ],
    ['ZK://zk/x?world-readable=true', curator('zk:2181', '/x', { worldReadable: true })],
    ['zk://zk/x?world-readable=false&layout=curator', curator('zk:2181', '/x')],
    ['zk://zk/x?payload=spring', curator('zk:2181', '/x', { payload: 'spring' })],
    ['zk://zk/x?layout=curator&payload=plain', curator('zk:2181', '/x', { payload: 'plain' })],
    ['zk://zk/x?payload=spring&payload=none', curator('zk:2181', '/x')],
  ])('%s', (uri, expected) => {
    expect(parseZookeeperUri(uri, {})).toEqual(expected);
  });

  it('accepts a URL object', () => {
    expect(parseZookeeperUri(new URL('zk://h1:2181/s'), {}).hosts).toEqual(['h1:2181']);
  });

  it.each([
    [
      'etcd://h:2379/x',
      '"etcd:" is not a zookeeper URI scheme; write zookeeper://host:2181/base or zk://host:2181/base',
    ],
    ['zookeeper:///x', 'zookeeper URI has no server; write zookeeper://host:2181[,host:2181...]/base'],
    [
      'zookeeper://h:99999/x',
      'zookeeper server "h:99999" has an invalid port; use a port between 1 and 65535, e.g. 2181',
    ],
    [
      'zookeeper://h:abc/x',
      'zookeeper server "h:abc" has an invalid port; use a port between 1 and 65535, e.g. 2181',
    ],
    ['zookeeper://h1,,h2/x', 'zookeeper server "" has no valid host; write host:port, e.g. zk1:2181'],
    [
      'zookeeper://u:secret@h/x',
      'zookeeper URI must not carry credentials; remove user:password@ and set ZOOKEEPER_AUTH=user:password or ZOOKEEPER_AUTH_FILE instead',
    ],
    [
      'zookeeper://[::1]:2181/x',
      'zookeeper server "[::1]:2181" is an IPv6 literal, which node-zookeeper-client cannot parse; use a host name that resolves to it',
    ],
    [
      'zookeeper://h/x?layout=flat',
      'unknown zookeeper layout "flat"; use ?layout=curator (default) or ?layout=registrator',
    ],
    [
      'zookeeper://h/x?ttl=3',
      'unknown zookeeper URI parameter "ttl"; supported: layout=curator|registrator, payload=none|spring|plain, world-readable=true',
    ],
    [
      'zookeeper://h/x?payload=map',
      'unknown zookeeper payload "map"; use ?payload=none (default), ?payload=spring (Spring Cloud Zookeeper) or ?payload=plain (a Curator Map)',
    ],
    [
      'zookeeper://h/x?payload=',
      'unknown zookeeper payload ""; use ?payload=none (default), ?payload=spring (Spring Cloud Zookeeper) or ?payload=plain (a Curator Map)',
    ],
    [
      'zookeeper://h/x?payload=Spring',
      'unknown zookeeper payload "Spring"; use ?payload=none (default), ?payload=spring (Spring Cloud Zookeeper) or ?payload=plain (a Curator Map)',
    ],
    [
      'zookeeper://h/x?payload=plain&layout=registrator',
      'zookeeper payload=plain applies to the curator layout only (registrator nodes have no payload); remove payload= or use layout=curator',
    ],
    [
      'zookeeper://h/x?layout=registrator&payload=none',
      'zookeeper payload=none applies to the curator layout only (registrator nodes have no payload); remove payload= or use layout=curator',
    ],
    [
      'zookeeper://h/x?world-readable=maybe',
      'zookeeper URI parameter world-readable="maybe" is not a boolean; write world-readable=true or world-readable=false',
    ],
    [
      'zookeeper://h/a//b',
      'zookeeper base path "/a//b" is invalid (base path "/a//b" has an empty, "." or ".." segment; use e.g. /services); use e.g. /services',
    ],
    [
      'zookeeper://h/a/../b',
      'zookeeper base path "/a/../b" is invalid (base path "/a/../b" has an empty, "." or ".." segment; use e.g. /services); use e.g. /services',
    ],
    ['not a uri', '"not a uri" is not a zookeeper URI; write zookeeper://host:2181/base'],
  ])('rejects %s with one line', (uri, message) => {
    let error: unknown;
    try {
      parseZookeeperUri(uri, {});
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toBe(message);
    expect((error as Error).message).not.toContain('\n');
    expect((error as Error).message).not.toContain('secret');
  });

  it('reads digest credentials from ZOOKEEPER_AUTH or ZOOKEEPER_AUTH_FILE, never from the URI', () => {
    expect(parseZookeeperUri('zk://h/x', { ZOOKEEPER_AUTH: 'bridge:s3cret' }).auth).toEqual({
      scheme: 'digest',
      credentials: 'bridge:s3cret',
    });
    const dir = mkdtempSync(join(tmpdir(), 'registrar-zk-auth-'));
    const file = join(dir, 'auth');
    writeFileSync(file, 'bridge:from-file\n');
    expect(parseZookeeperUri('zk://h/x', { ZOOKEEPER_AUTH_FILE: file }).auth?.credentials).toBe(
      'bridge:from-file',
    );
    expect(() => parseZookeeperUri('zk://h/x', { ZOOKEEPER_AUTH: 'a:b', ZOOKEEPER_AUTH_FILE: file })).toThrow(
      'both ZOOKEEPER_AUTH and ZOOKEEPER_AUTH_FILE are set; set only one of them',
    );
    expect(() => parseZookeeperUri('zk://h/x', { ZOOKEEPER_AUTH: 'nocolonsecret' })).toThrow(
      'ZOOKEEPER_AUTH is not in the form user:password; write the digest credentials as user:password',
    );
    expect(() => parseZookeeperUri('zk://h/x', { ZOOKEEPER_AUTH_FILE: join(dir, 'missing') })).toThrow(
      // The words every adapter now uses (it read `...FILE="<path>": ENOENT; ...`).
      `cannot read ZOOKEEPER_AUTH_FILE="${join(dir, 'missing')}" (ENOENT); point it at a readable file containing user:password`,
    );
  });
});
