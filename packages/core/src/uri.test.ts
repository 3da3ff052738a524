import { describe, expect, it } from 'vitest';
import { ConfigError } from './errors.js';
import { formatHostPort, parseRegistryUri } from './uri.js';

const defaults = { port: 2379, host: '127.0.0.1', form: 'etcd://host:port/prefix' };

describe('parseRegistryUri', () => {
  it.each([
    ['etcd://127.0.0.1:2379/services', [{ host: '127.0.0.1', port: 2379 }], '/services'],
    [
      'etcd://h1:1,h2:2/a/b/',
      [
        { host: 'h1', port: 1 },
        { host: 'h2', port: 2 },
      ],
      '/a/b',
    ],
    ['etcd://h1', [{ host: 'h1', port: 2379 }], ''],
    ['etcd://', [{ host: '127.0.0.1', port: 2379 }], ''],
    ['etcd://[::1]:23/p', [{ host: '::1', port: 23 }], '/p'],
    ['etcd://[fd00::5]/p', [{ host: 'fd00::5', port: 2379 }], '/p'],
  ])('%s', (text, hosts, path) => {
    const uri = parseRegistryUri(text, defaults);
    expect(uri.hosts).toEqual(hosts);
    expect(uri.path).toBe(path);
    expect(uri.scheme).toBe('etcd');
  });

  it('keeps query parameters', () => {
    expect(parseRegistryUri('etcd://h/p?layout=skydns&x=1', defaults).params.get('layout')).toBe('skydns');
  });

  it.each([
    ['etcd://:notaport', 'host missing'],
    ['etcd://h:notaport', 'port "notaport" is not a number'],
    ['etcd://h:70000', 'port "70000"'],
    ['etcd://user:pw@h:1', 'credentials do not belong in the URI'],
    ['etcd://::1:2379', 'must be in brackets'],
    ['no-scheme', 'not of the form'],
    ['etcd://h/with space', 'no spaces'],
  ])('%s is rejected with one line naming the problem', (text, problem) => {
    let error: unknown;
    try {
      parseRegistryUri(text, defaults);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toContain(problem);
    expect(message).toContain('expected etcd://host:port/prefix');
    expect(message).not.toContain('\n');
  });

  it('formats IPv6 with brackets', () => {
    expect(formatHostPort({ host: '::1', port: 1 })).toBe('[::1]:1');
    expect(formatHostPort({ host: 'a', port: 1 })).toBe('a:1');
  });
});
