/** Hostile ZooKeeper URIs and auth settings (issue 5, scenario 8): a value or a one-line ConfigError. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { expectConfigErrorOrValue, hostileUri } from '@registrar/core/testing/fuzz';
import { parseZookeeperUri } from './uri.js';

describe('parseZookeeperUri under hostile input', () => {
  it('returns options or throws a one-line ConfigError', () => {
    fc.assert(
      fc.property(hostileUri(['zookeeper', 'zk']), (text) => {
        const parsed = expectConfigErrorOrValue(() => parseZookeeperUri(text));
        if (parsed === undefined) return;
        expect(parsed.prefix.startsWith('/')).toBe(true);
        for (const h of parsed.hosts) {
          const port = Number(/:(\d+)$/.exec(h)?.[1]);
          expect(port >= 1 && port <= 65_535, h).toBe(true);
        }
      }),
      { seed: 20_260_505, numRuns: 2000 },
    );
  });

  it('auth environment: options or a one-line ConfigError that never shows the credentials', () => {
    const env = fc.record(
      {
        ZOOKEEPER_AUTH: fc.constantFrom('user:s3cr3t', 's3cr3t-no-colon', 'user:s3cr3t\nmore', ''),
        ZOOKEEPER_AUTH_FILE: fc.constantFrom('/nonexistent/auth', '/', '/dev/null', '', '/tmp\n/x'),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(env, (e) => {
        try {
          parseZookeeperUri('zk://localhost:2181/services', e);
        } catch (error) {
          expectConfigErrorOrValue(() => {
            throw error;
          });
          expect((error as Error).message).not.toContain('s3cr3t');
        }
      }),
      { seed: 20_260_505, numRuns: 200 },
    );
  });
});
