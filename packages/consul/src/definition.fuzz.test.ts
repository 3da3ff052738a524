/**
 * Hostile SERVICE_CHECK_* values and Consul URIs (issue 5, scenario 8): every check sent is one Consul
 * accepts, every rejection is a short one-line warning naming the key, URIs parse or fail with one line.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Service } from '@registrar/core';
import { silentLogger } from '@registrar/core';
import { parseGoDuration } from '@registrar/core/kit';
import { expectConfigErrorOrValue, hostileUri } from '@registrar/core/testing/fuzz';
import { buildDefinition, KNOWN_OPTIONS } from './definition.js';
import { parseConsulUri } from './uri.js';

const SEED = 20_260_505;
const LINE_BREAK = /[\n\r\u2028\u2029\u0085]/;
const settings = { nodeId: 'n1', bridgeId: 'registrar-bridge:n1', deregisterAfter: 60, healthTtl: 3600 };

const controlChar = fc.integer({ min: 0, max: 0x1f }).map((n) => String.fromCharCode(n));
const nasty = fc.oneof(
  fc.string({ maxLength: 16 }),
  fc.string({
    unit: fc.oneof(controlChar, fc.constantFrom('/', ':', '[', ']', '%', ' ', '\u2028', 'é')),
    maxLength: 10,
  }),
  fc.string({ unit: 'grapheme', maxLength: 8 }),
);
const checkValue = fc.oneof(
  { weight: 4, arbitrary: nasty },
  {
    weight: 4,
    arbitrary: fc.constantFrom('10s', '1m30s', '-5s', '0', '1.5h', '10', '1e3s', 'true', 'false', 'yes', '2'),
  },
  {
    weight: 3,
    arbitrary: fc.constantFrom('/health', 'health?x=1', '/%zz', '//evil', 'GET', 'G E T', 'passing'),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom('db:5432', '[::1]:80', 'host:99999', 'x:1/svc', 'echo $SERVICE_IP'),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      '$SERVICE_IP:$SERVICE_PORT',
      '${SERVICE_IP}',
      '/bin/bash',
      '65535',
      '65536',
      '-1',
    ),
  },
  { weight: 1, arbitrary: fc.constantFrom('v'.repeat(70_000), `/${'p'.repeat(5000)}`) },
);
const checkKey = fc.oneof(
  fc.constantFrom(...KNOWN_OPTIONS),
  fc.constantFrom('__proto__', 'constructor', 'toString'),
  nasty,
);
const metaKey = fc.oneof(
  fc.constantFrom('version', 'consul-x', 'registrar-node', '__proto__', ''),
  fc.constantFrom('enable_tag_override', 'weights_passing', 'weights_warning'),
  nasty,
);

const service: fc.Arbitrary<Service> = fc.record({
  id: fc.constant('n1:app:80'),
  name: fc.constantFrom('app', 'a'.repeat(253)),
  address: fc.oneof(fc.ipV4(), fc.ipV6()),
  port: fc.integer({ min: 1, max: 65_535 }),
  protocol: fc.constantFrom('tcp' as const, 'udp' as const),
  containerPort: fc.integer({ min: 1, max: 65_535 }),
  tags: fc.array(fc.stringMatching(/^[a-z]{1,5}$/), { maxLength: 3 }),
  meta: fc.dictionary(metaKey, checkValue, { maxKeys: 8 }),
  node: fc.constant('n1'),
  container: fc.record({ id: fc.constant('c'.repeat(64)), name: fc.constant('app') }),
  health: fc.constantFrom('passing' as const, 'warning' as const, 'critical' as const),
  healthOutput: fc.oneof(nasty, fc.constant('o'.repeat(5000))),
  checks: fc.dictionary(checkKey, checkValue, { maxKeys: 8 }),
});

describe('Consul check definitions under hostile SERVICE_CHECK_* values', () => {
  it('never throws; every check is well-formed; warnings are short single lines naming a key', () => {
    fc.assert(
      fc.property(service, (s) => {
        const built = buildDefinition(s, settings);
        for (const w of built.warnings) {
          expect(w.key.startsWith('SERVICE_'), w.key).toBe(true);
          expect(w.key.length).toBeLessThanOrEqual(200);
          expect(LINE_BREAK.test(w.key), w.key).toBe(false);
          expect(w.message.length, w.message.slice(0, 200)).toBeLessThanOrEqual(600);
          expect(LINE_BREAK.test(w.message), w.message).toBe(false);
        }
        const reg = built.registration;
        expect(Object.keys(reg.Meta).length).toBeLessThanOrEqual(64);
        for (const [k, v] of Object.entries(reg.Meta)) {
          expect(k).toMatch(/^[A-Za-z0-9_-]{1,128}$/);
          expect(k.startsWith('consul-')).toBe(false);
          expect(v.length).toBeLessThanOrEqual(512);
        }
        expect(built.health.output.length).toBeLessThanOrEqual(1000);
        if (reg.EnableTagOverride !== undefined) expect(typeof reg.EnableTagOverride).toBe('boolean');
        if (reg.Weights !== undefined) {
          // Consul's ValidateWeights.
          expect(Number.isInteger(reg.Weights.Passing) && Number.isInteger(reg.Weights.Warning)).toBe(true);
          expect(reg.Weights.Passing).toBeGreaterThanOrEqual(1);
          expect(reg.Weights.Warning).toBeGreaterThanOrEqual(0);
          expect(Math.max(reg.Weights.Passing, reg.Weights.Warning)).toBeLessThanOrEqual(65535);
        }
        for (const key of ['enable_tag_override', 'weights_passing', 'weights_warning']) {
          expect(reg.Meta).not.toHaveProperty(key);
        }
        for (const check of reg.Checks) {
          for (const d of [check.Interval, check.Timeout, check.TTL, check.DeregisterCriticalServiceAfter]) {
            if (d !== undefined) expect(parseGoDuration(d), d).toBeGreaterThan(0);
          }
          if (check.HTTP !== undefined) expect(() => new URL(check.HTTP!)).not.toThrow();
          if (check.Method !== undefined) expect(check.Method).toMatch(/^[A-Z]+$/);
          if (check.Status !== undefined) expect(['passing', 'warning', 'critical']).toContain(check.Status);
          const kinds = [check.HTTP, check.TCP, check.GRPC, check.Args, check.TTL, check.AliasService];
          expect(kinds.filter((k) => k !== undefined).length, JSON.stringify(check)).toBe(1);
          if (check.HTTP === undefined && check.TTL === undefined && check.AliasService === undefined) {
            expect(check.Interval).toBeDefined();
          }
          if (check.Args !== undefined) expect(check.Args.length).toBeGreaterThan(0);
          if (check.DockerContainerID !== undefined) expect(check.Args).toBeDefined();
        }
      }),
      { seed: SEED, numRuns: 2000 },
    );
  });

  it('a 1 MB check value costs bounded time and yields a short warning', () => {
    const huge = 'x'.repeat(1024 * 1024);
    for (const key of ['http', 'interval', 'tcp', 'initial_status', 'method']) {
      const started = performance.now();
      const built = buildDefinition(
        {
          id: 'n1:app:80',
          name: 'app',
          address: '10.0.0.1',
          port: 80,
          protocol: 'tcp',
          containerPort: 80,
          tags: [],
          meta: { big: huge },
          node: 'n1',
          container: { id: 'c', name: 'app' },
          health: 'passing',
          healthOutput: '',
          checks: { [key]: huge, ...(key === 'method' && { http: '/x' }) },
        },
        settings,
      );
      expect(performance.now() - started).toBeLessThan(1000);
      expect(built.warnings.length).toBeGreaterThan(0);
      for (const w of built.warnings) expect(w.message.length).toBeLessThanOrEqual(600);
      expect(built.registration.Meta['big']?.length).toBe(512);
    }
  });
});

describe('parseConsulUri under hostile input', () => {
  const ctx = (env: Record<string, string> = {}) => ({ nodeId: 'n1', ttl: 15, logger: silentLogger, env });

  it('returns options or throws a one-line ConfigError', () => {
    fc.assert(
      fc.property(hostileUri(['consul', 'consul-tls']), (text) => {
        const options = expectConfigErrorOrValue(() => parseConsulUri(text, ctx()));
        if (options === undefined) return;
        expect(() => new URL(options.hosts![0]!)).not.toThrow();
      }),
      { seed: SEED, numRuns: 2000 },
    );
  });

  it('credential files: options or a one-line ConfigError that never shows the token', () => {
    const env = fc.record(
      {
        CONSUL_HTTP_TOKEN: fc.constantFrom('s3cr3t-token', ''),
        CONSUL_HTTP_TOKEN_FILE: fc.constantFrom('/nonexistent/token', '/', '/dev/null', '', '/tmp\n/x'),
        CONSUL_CACERT: fc.constantFrom('/nonexistent/ca.pem', '/', ''),
        CONSUL_CLIENT_CERT: fc.constantFrom('/nonexistent/cert.pem', ''),
        CONSUL_CLIENT_KEY: fc.constantFrom('/nonexistent/key.pem', ''),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(
        fc.constantFrom('consul://127.0.0.1:8500', 'consul-tls://127.0.0.1:8501'),
        env,
        (uri, e) => {
          try {
            parseConsulUri(uri, ctx(e));
          } catch (error) {
            expectConfigErrorOrValue(() => {
              throw error;
            });
            expect((error as Error).message).not.toContain('s3cr3t');
          }
        },
      ),
      { seed: SEED, numRuns: 300 },
    );
  });
});
