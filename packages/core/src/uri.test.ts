import { describe, expect, it } from 'vitest';
import { ConfigError } from './errors.js';
import { formatHostPort, parseRegistryUri, registryUriError, type RegistryUriSyntax } from './uri.js';

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
    // The port is checked first, as the etcd adapter always did.
    ['etcd://:notaport', 'port "notaport" is not a number'],
    ['etcd://:2379', 'no host name before ":2379"'],
    ['etcd://a,,b', 'empty host in the host list'],
    ['etcd://h:', 'port "" is not a number'],
    ['etcd://[zz]:1', '"[zz]:1" is not an IPv6 address in brackets'],
    ['etcd://bad host', 'host "bad host" is not a valid host name'],
    ['etcd://h/p#frag', 'takes no #fragment'],
    ['etcd://h/%zz', 'path "/%zz" is not valid percent-encoding'],
    ['etcd://h/a%00b', 'no spaces or control characters'],
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
    expect(formatHostPort({ host: 'fe80::1%eth0', port: 2 })).toBe('[fe80::1%eth0]:2');
    expect(formatHostPort({ host: '[::1]', port: 3 })).toBe('[::1]:3');
    expect(formatHostPort({ host: 'a', port: 1 })).toBe('a:1');
  });

  const message = (text: string, syntax: RegistryUriSyntax): string => {
    try {
      parseRegistryUri(text, syntax);
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      return (error as Error).message;
    }
    throw new Error(`${text} was accepted`);
  };

  it('checks the scheme against the adapter’s list and takes a per-scheme default port', () => {
    const syntax: RegistryUriSyntax = {
      name: 'Consul',
      form: 'consul://host:port',
      schemes: ['consul', 'consul-tls'],
      port: (scheme) => (scheme === 'consul-tls' ? 8501 : 8500),
      optionalHost: true,
      credentialsFrom: 'CONSUL_HTTP_TOKEN',
    };
    expect(parseRegistryUri('CONSUL-TLS://h', syntax).hosts).toEqual([{ host: 'h', port: 8501 }]);
    expect(parseRegistryUri(new URL('consul://'), syntax).hosts).toEqual([]);
    expect(message('etcd://h', syntax)).toBe(
      'invalid Consul URI "etcd://h": unknown scheme "etcd:"; use consul:// or consul-tls://',
    );
    expect(message('consul://u:s3cret@h', syntax)).toBe(
      'invalid Consul URI "consul://***@h": credentials do not belong in the URI; set CONSUL_HTTP_TOKEN instead',
    );
  });

  it('lets an adapter refuse IPv6 and word and frame its messages', () => {
    const syntax: RegistryUriSyntax = {
      form: 'zk://host:2181/base',
      port: 2181,
      ipv6: false,
      describe: (problem) =>
        problem.kind === 'no-host' ? { problem: 'zk URI has no server', fix: 'add one' } : undefined,
      frame: (problem, fix) => `${problem}; ${fix}`,
    };
    expect(message('zk://[::1]:2181/x', syntax)).toBe(
      'IPv6 literal "[::1]:2181" is not supported; use a host name that resolves to it; expected zk://host:2181/base',
    );
    expect(message('zk:///x', syntax)).toBe('zk URI has no server; add one');
  });

  it('frames errors of the adapter’s own checks the same way', () => {
    expect(
      registryUriError('etcd://h?x=1', { name: 'etcd' }, 'unknown parameter "x"', 'known: a').message,
    ).toBe('invalid etcd URI "etcd://h?x=1": unknown parameter "x"; known: a');
  });
});
