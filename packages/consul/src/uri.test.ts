import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startConsulDouble } from '@registrar/consul-double';
import { ConfigError, RegistryRejectedError, silentLogger } from '@registrar/core';
import type { RegistryUriContext } from '@registrar/core';
import { describe, expect, it } from 'vitest';
import { consulRegistryFromUri } from './index.js';
import { parseConsulUri } from './uri.js';

const ctx = (env: Record<string, string> = {}): RegistryUriContext => ({
  nodeId: 'node-a',
  ttl: 15,
  logger: silentLogger,
  env,
});

describe('consulRegistryFromUri', () => {
  it('defaults to 127.0.0.1:8500 and uses https for consul-tls (default port 8501)', async () => {
    const plain = consulRegistryFromUri(new URL('consul://'), ctx());
    expect(plain.target).toBe('http://127.0.0.1:8500');
    const tls = consulRegistryFromUri(new URL('consul-tls://consul.local'), ctx());
    expect(tls.target).toBe('https://consul.local:8501');
    await plain.close();
    await tls.close();
  });

  it('takes the agent of a host-less consul:// from CONSUL_HTTP_ADDR, and namespace and partition from CONSUL_*', async () => {
    const cases: [string, Record<string, string>, string][] = [
      ['consul://', { CONSUL_HTTP_ADDR: '10.1.2.3:8600' }, 'http://10.1.2.3:8600'],
      ['consul://', { CONSUL_HTTP_ADDR: 'https://consul.local:8501' }, 'https://consul.local:8501'],
      ['consul://', { CONSUL_HTTP_ADDR: 'consul.local' }, 'http://consul.local:8500'],
      ['consul-tls://', { CONSUL_HTTP_ADDR: 'consul.local:9501' }, 'https://consul.local:9501'],
      // A URI that names its agent wins.
      ['consul://agent:8500', { CONSUL_HTTP_ADDR: '10.1.2.3:8600' }, 'http://agent:8500'],
    ];
    for (const [uri, env, target] of cases) {
      const registry = consulRegistryFromUri(new URL(uri), ctx(env));
      expect(registry.target).toBe(target);
      await registry.close();
    }
    const options = parseConsulUri(
      new URL('consul://'),
      ctx({ CONSUL_NAMESPACE: 'team-a', CONSUL_PARTITION: 'p1' }),
    );
    expect({ ns: options.namespace, partition: options.partition }).toEqual({
      ns: 'team-a',
      partition: 'p1',
    });
    const fromUri = parseConsulUri(new URL('consul://?ns=team-b'), ctx({ CONSUL_NAMESPACE: 'team-a' }));
    expect(fromUri.namespace).toBe('team-b');
  });

  it('rejects a CONSUL_HTTP_ADDR it cannot use, in one line', () => {
    for (const addr of ['unix:///var/run/consul.sock', 'http://', 'http://x:8500/v1']) {
      expect(() => consulRegistryFromUri(new URL('consul://'), ctx({ CONSUL_HTTP_ADDR: addr }))).toThrow(
        /^invalid CONSUL_HTTP_ADDR ".*": expected host:port, http:\/\/host:port or https:\/\/host:port/,
      );
    }
  });

  it('rejects bad URIs with one line naming the problem and the fix', () => {
    const cases: [string, RegExp][] = [
      ['etcd://x:1', /not a Consul URI; use consul:\/\/host:port/],
      ['consul://u:p@x:1', /credentials do not belong in the URI; set CONSUL_HTTP_TOKEN/],
      ['consul://x:1/prefix', /takes no path/],
      ['consul://x:1?dc=eu', /unknown option \?dc=/],
      ['consul://x:1?deregister-after=10', /not a positive Go duration/],
    ];
    for (const [uri, message] of cases) {
      const err = (() => {
        try {
          consulRegistryFromUri(new URL(uri), ctx());
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(err, uri).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toMatch(message);
      expect((err as Error).message).not.toContain('\n');
    }
  });

  it('reads the token from CONSUL_HTTP_TOKEN or CONSUL_HTTP_TOKEN_FILE', async () => {
    const double = await startConsulDouble({ aclToken: 'from-file' });
    try {
      const dir = mkdtempSync(join(tmpdir(), 'consul-token-'));
      writeFileSync(join(dir, 'token'), 'from-file\n');
      const uri = new URL(double.url.replace('http:', 'consul:'));
      const r = consulRegistryFromUri(uri, ctx({ CONSUL_HTTP_TOKEN_FILE: join(dir, 'token') }));
      expect(await r.list()).toEqual([]);
      await r.close();
      const wrong = consulRegistryFromUri(uri, ctx({ CONSUL_HTTP_TOKEN: 'nope' }));
      await expect(wrong.list()).rejects.toBeInstanceOf(RegistryRejectedError);
      await wrong.close();
      expect(() => consulRegistryFromUri(uri, ctx({ CONSUL_HTTP_TOKEN_FILE: join(dir, 'missing') }))).toThrow(
        // The words every adapter now uses (it read `CONSUL_HTTP_TOKEN_FILE="..." cannot be read (ENOENT)`).
        /cannot read CONSUL_HTTP_TOKEN_FILE=".*missing" \(ENOENT\)/,
      );
    } finally {
      await double.close();
    }
  });

  it('brackets an IPv6 agent, and refuses a host list and both token variables', async () => {
    const v6 = consulRegistryFromUri('consul://[::1]:8600', ctx());
    expect(v6.target).toBe('http://[::1]:8600');
    await v6.close();
    const fromAddr = consulRegistryFromUri('consul-tls://', ctx({ CONSUL_HTTP_ADDR: '[fd00::1]:9501' }));
    expect(fromAddr.target).toBe('https://[fd00::1]:9501');
    await fromAddr.close();
    expect(() => consulRegistryFromUri('consul://a:1,b:2', ctx())).toThrow(
      'invalid Consul URI "consul://a:1,b:2": a Consul URI names one agent',
    );
    expect(() =>
      consulRegistryFromUri('consul://a', ctx({ CONSUL_HTTP_TOKEN: 't', CONSUL_HTTP_TOKEN_FILE: '/t' })),
    ).toThrow('both CONSUL_HTTP_TOKEN and CONSUL_HTTP_TOKEN_FILE are set; set only one of them');
    expect(() => consulRegistryFromUri('consul://a', ctx({ CONSUL_HTTP_TOKEN: 'to\u0000ken' }))).toThrow(
      'CONSUL_HTTP_TOKEN holds characters an HTTP header cannot carry',
    );
  });

  it('requires client certificate and key together for consul-tls', () => {
    expect(() =>
      consulRegistryFromUri(new URL('consul-tls://x'), ctx({ CONSUL_CLIENT_CERT: '/a.pem' })),
    ).toThrow(ConfigError);
  });
});
