/**
 * `@registrar/core/testing/fuzz`: fuzzing helpers for registry URIs and configuration errors, used by the
 * `*.fuzz.test.ts` files of core and the adapters. Needs fast-check (an optional peer dependency); checks
 * throw node:assert errors, so any test runner reports them.
 */
import fc from 'fast-check';
import assert from 'node:assert/strict';

/** Longest acceptable configuration error: one line a person reads at a glance. */
export const MAX_CONFIG_MESSAGE = 700;
const LINE_BREAK = /[\n\r\u2028\u2029\u0085]/;

const controlChar = fc.integer({ min: 0, max: 0x1f }).map((n) => String.fromCharCode(n));
const uriChar = fc.oneof(
  fc.constantFrom(':', '/', '@', '?', '#', '&', '=', ',', '[', ']', '%', '%zz', '%E0%A4%A', '%2F', '.', '..'),
  fc.constantFrom('a', 'Z', '0', '9', '-', '_', ' ', '\u2028', '\u{1F600}', 'é', '\ud800', '\\'),
  controlChar,
);
const junk = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.string({ unit: uriChar, maxLength: 12 }),
  fc.string({ unit: 'grapheme', maxLength: 8 }),
);
const host = fc.oneof(
  fc.constantFrom('consul.service.consul', 'etcd-1.example.com', 'zk_1', 'a.b.c.d.e', 'x--y.local'),
  fc.stringMatching(/^[a-z][a-z0-9.-]{0,10}$/),
  fc.ipV4(),
  fc.ipV6().map((ip) => `[${ip}]`),
  fc.ipV6(),
  fc.constantFrom('localhost', '', '[', '[::1', '[zz]', 'user:pw@host', '-bad-', 'h\nost'),
  junk,
);
const port = fc.oneof(
  fc.integer({ min: 0, max: 70_000 }).map((p) => `:${p}`),
  fc.constantFrom('', ':', ':abc', ':-1', ':0x50', ': 80', ':99999999999999999999'),
  junk.map((j) => `:${j}`),
);
const path = fc.oneof(
  fc.constantFrom('', '/', '/services', '//', '/a/../b', '/a b', '/%zz', '/%00', '/./x', '/a//b'),
  fc
    .array(fc.oneof(fc.stringMatching(/^[a-z0-9_-]{1,8}$/), junk), { maxLength: 4 })
    .map((s) => `/${s.join('/')}`),
);
const query = fc.oneof(
  fc.constant(''),
  fc
    .array(
      fc.tuple(
        fc.oneof(
          fc.constantFrom(
            'layout',
            'domain',
            'timeout',
            'ns',
            'partition',
            'deregister-after',
            'world-readable',
          ),
          junk,
        ),
        fc.oneof(
          fc.constantFrom(
            'json',
            'hostport',
            'skydns',
            'curator',
            'registrator',
            'true',
            '0',
            '-1s',
            '1m',
            'NaN',
          ),
          fc.constantFrom('Infinity', '1e308', 'x.local', ''),
          junk,
        ),
      ),
      { maxLength: 3 },
    )
    .map((pairs) => `?${pairs.map(([k, v]) => `${k}=${v}`).join('&')}`),
);

/** Structured-but-wrong registry URIs for the given schemes, plus anything at all. */
export function hostileUri(schemes: readonly string[]): fc.Arbitrary<string> {
  const scheme = fc.oneof(
    fc.constantFrom(...schemes),
    fc.constantFrom(...schemes).map((s) => s.toUpperCase()),
    fc.constantFrom('http', 'constructor', '__proto__', 'toString', 'a', ''),
    junk,
  );
  const structured = fc
    .tuple(
      scheme,
      fc.constantFrom('://', ':/', ':', '//', ':///'),
      fc.array(fc.tuple(host, port), { maxLength: 3 }),
      path,
      query,
      fc.constantFrom('', '#frag', '#'),
    )
    .map(
      ([s, sep, hosts, p, q, f]) => `${s}${sep}${hosts.map(([h, pt]) => `${h}${pt}`).join(',')}${p}${q}${f}`,
    );
  return fc.oneof(
    { weight: 8, arbitrary: structured },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
    { weight: 1, arbitrary: fc.constantFrom('x'.repeat(100_000), `etcd://${'h,'.repeat(50_000)}h`) },
  );
}

/** The error is a ConfigError whose message is one bounded line. */
export function expectOneLineConfigError(error: unknown): void {
  // By name: it holds for a ConfigError from either copy of core (source in core's tests, dist elsewhere).
  assert.ok(error instanceof Error, String(error));
  assert.equal(error.name, 'ConfigError', String(error));
  const { message } = error;
  assert.notEqual(message, '', 'empty ConfigError message');
  assert.ok(!LINE_BREAK.test(message), `ConfigError message has a line break: ${message}`);
  assert.ok(
    message.length <= MAX_CONFIG_MESSAGE,
    `ConfigError message longer than ${MAX_CONFIG_MESSAGE}: ${message.slice(0, 200)}`,
  );
}

/** Runs `fn`: its value, or undefined after checking that it threw a one-line ConfigError. */
export function expectConfigErrorOrValue<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch (error) {
    expectOneLineConfigError(error);
    return undefined;
  }
}
