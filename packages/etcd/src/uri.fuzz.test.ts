/** Hostile etcd URIs and credential settings (issue 5, scenario 8): a value or a one-line ConfigError. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '@registrar/core';
import { expectConfigErrorOrValue, hostileUri } from '@registrar/core/testing/fuzz';
import { etcdRegistryFromUri, parseEtcdUri } from './uri.js';

const params = { seed: 20_260_505, numRuns: 2000 } as const;

describe('parseEtcdUri under hostile input', () => {
  it('returns a parsed URI or throws a one-line ConfigError', () => {
    fc.assert(
      fc.property(hostileUri(['etcd', 'etcds', 'etcd-tls']), (text) => {
        const parsed = expectConfigErrorOrValue(() => parseEtcdUri(text));
        if (parsed === undefined) return;
        expect(typeof parsed.tls).toBe('boolean');
        for (const h of parsed.hosts) {
          const port = Number(/:(\d+)$/.exec(h)?.[1]);
          expect(port >= 1 && port <= 65_535, h).toBe(true);
        }
        if (parsed.timeoutMs !== undefined) expect(Number.isFinite(parsed.timeoutMs)).toBe(true);
      }),
      params,
    );
  });

  it('credential environment: a registry config or a one-line ConfigError that never shows the password', () => {
    const env = fc.record(
      {
        ETCD_USERNAME: fc.oneof(fc.constant('root'), fc.string({ maxLength: 5 })),
        ETCD_PASSWORD: fc.constant('s3cr3t-Pa55word'),
        ETCD_PASSWORD_FILE: fc.constantFrom('/nonexistent/pw', '/', '/dev/null', '', '/tmp\n/x'),
        ETCD_CACERT: fc.constantFrom('/nonexistent/ca.pem', '/', ''),
        ETCD_CERT: fc.constantFrom('/nonexistent/cert.pem', ''),
        ETCD_KEY: fc.constantFrom('/nonexistent/key.pem', ''),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(fc.constantFrom('etcd://127.0.0.1:1/x', 'etcds://127.0.0.1:1/x'), env, (uri, e) => {
        try {
          const registry = etcdRegistryFromUri(uri, { nodeId: 'n', ttl: 15, logger: silentLogger, env: e });
          void registry.close();
        } catch (error) {
          expectConfigErrorOrValue(() => {
            throw error;
          });
          expect((error as Error).message).not.toContain('s3cr3t');
        }
      }),
      { seed: 20_260_505, numRuns: 300 },
    );
  });
});
