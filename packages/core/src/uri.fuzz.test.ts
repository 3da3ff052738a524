/** Hostile registry URIs (issue 5, scenario 8): parse or a one-line ConfigError, nothing else. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigError } from './errors.js';
import { parseRegistryUri } from './uri.js';
import { expectConfigErrorOrValue, hostileUri } from './testing/fuzz.js';

describe('parseRegistryUri under hostile input', () => {
  it('returns a URI or throws a one-line ConfigError', () => {
    fc.assert(
      fc.property(hostileUri(['etcd', 'zookeeper', 'consul']), (text) => {
        const parsed = expectConfigErrorOrValue(() =>
          parseRegistryUri(text, { port: 2379, host: 'localhost', form: 'etcd://host:port/prefix' }),
        );
        if (parsed !== undefined) {
          for (const { port } of parsed.hosts) expect(port >= 1 && port <= 65_535).toBe(true);
        }
      }),
      { seed: 20_260_505, numRuns: 2000 },
    );
  });

  it('never echoes credentials given in the URI', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z0-9]{12,20}$/), (secret) => {
        try {
          parseRegistryUri(`etcd://user:${secret}@host:2379/x`, { port: 1, form: 'etcd://host:port' });
          expect.unreachable();
        } catch (error) {
          expect(error).toBeInstanceOf(ConfigError);
          expect((error as Error).message).not.toContain(secret);
        }
      }),
      { seed: 20_260_505, numRuns: 200 },
    );
  });
});
