/** Hostile command lines (issue 5, scenario 8): a config or a ConfigError with one short line. */
import fc from 'fast-check';
import { isIP } from 'node:net';
import { describe, expect, it } from 'vitest';
import { expectOneLineConfigError } from '@registrar/core/testing/fuzz';
import { parseCli } from './options.js';

const controlChar = fc.integer({ min: 0, max: 0x1f }).map((n) => String.fromCharCode(n));
const value = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.string({
    unit: fc.oneof(controlChar, fc.constantFrom('-', '=', ',', ':', '[', ']', '\u2028', '1', 'a')),
    maxLength: 10,
  }),
  fc.constantFrom(
    '0',
    '-1',
    '1e400',
    'NaN',
    'Infinity',
    '0x10',
    '1e9',
    '15',
    '0.05',
    '',
    ' ',
    '9'.repeat(400),
  ),
  fc.constantFrom(
    '127.0.0.1',
    '::1',
    '0.0.0.0',
    '::',
    '0:0::0',
    '[::1]:9105',
    ':9105',
    'host:99999',
    'x'.repeat(5000),
  ),
  fc.constantFrom('always', 'on-success', 'json', 'pretty', 'debug', 'node-1', 'a,b,,c', 'a,\u0001'),
);
const option = fc.constantFrom(
  '--ip',
  '--network',
  '--tags',
  '--ttl',
  '--ttl-refresh',
  '--resync',
  '--deregister',
  '--node-id',
  '--metrics-addr',
  '--log-level',
  '--log-format',
  '--stall-check',
  '--internal',
  '--cleanup',
  '--explicit',
  '--dry-run',
  '--deregister-on-exit',
  '--bogus',
  '-x',
  '--',
);
const argv = fc.array(
  fc.oneof(
    fc.tuple(option, value).map(([o, v]) => [o, v]),
    fc.tuple(option, value).map(([o, v]) => [`${o}=${v}`]),
    value.map((v) => [v]),
    fc.constantFrom(['etcd://localhost:2379/x'], ['consul://127.0.0.1:8500']),
  ),
  { maxLength: 6 },
);

describe('parseCli under hostile option values', () => {
  it('returns a valid config or throws a one-line ConfigError', () => {
    fc.assert(
      fc.property(argv, (parts) => {
        const args = parts.flat();
        let config;
        try {
          config = parseCli(args);
        } catch (error) {
          if ((error as { exitCode?: number }).exitCode === 0) return; // --help / --version
          expectOneLineConfigError(error);
          return;
        }
        expect(config.uris.length).toBeGreaterThan(0);
        expect(config.ttl).toBeGreaterThanOrEqual(1);
        for (const n of [config.ttl, config.resync, config.ttlRefresh ?? 1]) {
          expect(Number.isFinite(n) && n * 1000 < 2 ** 31).toBe(true);
        }
        if (config.ip !== undefined) {
          expect(isIP(config.ip)).not.toBe(0);
          expect(['0.0.0.0', '::']).not.toContain(config.ip);
        }
        if (config.metricsAddr) expect(config.metricsAddr.port).toBeLessThanOrEqual(65_535);
        // eslint-disable-next-line no-control-regex -- the invariant is about control characters
        for (const tag of config.tags) expect(/[\u0000-\u001f]/.test(tag)).toBe(false);
        expect(['json', 'pretty']).toContain(config.logFormat);
      }),
      { seed: 20_260_505, numRuns: 2000 },
    );
  });
});
