/**
 * Hostile input (issue 5, scenario 8): random labels, environments, port maps, network layouts, health
 * states and whole inspect documents go through label parsing and derivation. Nothing may throw, every
 * service must be registrable, every warning must name its container and key in one short line.
 */
import { isIP } from 'node:net';
import type { ContainerInspectInfo } from 'dockerode';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { DeriveOptions } from './derive.js';
import { MAX_SKIPPED, containerName, deriveServices } from './derive.js';
import {
  MAX_LABEL_VALUE_BYTES,
  collectSettings,
  isValidServiceName,
  parseServiceLabels,
  parseTags,
  settingsFor,
} from './labels.js';
import type { LabelWarning, Service } from './service.js';
import { oneLine, quote } from './text.js';

const SEED = 20_260_505;
const RUNS = 3000;
/** A warning may echo a key and a value, each cut short; anything longer means something was echoed whole. */
const MAX_MESSAGE = 600;

// eslint-disable-next-line no-control-regex -- the invariant is about control characters
const CONTROL = /[\u0000-\u001f\u007f]/;
const LINE_BREAK = /[\n\r\u2028\u2029\u0085]/;

// ---------------------------------------------------------------------------------------------------------
// Arbitraries

const controlChar = fc.integer({ min: 0, max: 0x1f }).map((n) => String.fromCharCode(n));
const nastyChar = fc.oneof(
  controlChar,
  fc.constantFrom(',', '\\', '\\,', ':', '/', '=', '_', ' ', '\u007f', '\u2028', '\u{1F600}', 'é', '\ud800'),
);
const nastyString = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.string({ unit: 'grapheme', maxLength: 12 }),
  fc.string({ unit: nastyChar, maxLength: 12 }),
  fc.string({ unit: fc.oneof(nastyChar, fc.constantFrom('a', 'b', '1')), maxLength: 20 }),
);
const nameLike = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,20}$/);
/** Occasionally far over the label value cap, occasionally just under or over the name cap. */
const hugeString = fc.oneof(
  fc.constantFrom(MAX_LABEL_VALUE_BYTES + 1, 254, 253, 300).map((n) => 'a'.repeat(n)),
  fc.constant('é'.repeat(MAX_LABEL_VALUE_BYTES / 2)),
  fc.constant(`x,${'\\,'.repeat(40_000)}`),
);
const labelValue = fc.oneof(
  { weight: 6, arbitrary: nastyString },
  { weight: 4, arbitrary: nameLike },
  {
    weight: 2,
    arbitrary: fc.array(fc.oneof(nameLike, nastyString), { maxLength: 5 }).map((t) => t.join(',')),
  },
  { weight: 2, arbitrary: fc.constantFrom('', ' ', 'true', 'false', '0', '1', '10s', '/health', 'passing') },
  { weight: 1, arbitrary: hugeString },
);

const portSegment = fc.oneof(
  fc.integer({ min: 0, max: 70_000 }).map(String),
  fc.constantFrom('80', '53', '0080', '8o', '99999', '1e3', '0x50', '٣'),
  fc.integer({ min: 1, max: 65_535 }).map((n) => `${n}${'0'.repeat(3)}`),
);
const protoSegment = fc.constantFrom('TCP', 'UDP', 'tcp', 'Udp', 'SCTP', '');
const attr = fc.oneof(
  fc.constantFrom('NAME', 'TAGS', 'ID', 'IGNORE', 'NETWORK', 'CHECK', 'CHECK_', 'CHECK_HTTP', 'CHECK_TTL'),
  fc.constantFrom('CHECK_INTERVAL', 'name', 'Tags', '__proto__', 'constructor', 'toString', ''),
  nastyString,
);
const serviceKey = fc.oneof(
  attr.map((a) => `SERVICE_${a}`),
  fc.tuple(portSegment, attr).map(([p, a]) => `SERVICE_${p}_${a}`),
  fc.tuple(portSegment, protoSegment, attr).map(([p, pr, a]) => `SERVICE_${p}_${pr}_${a}`),
  fc.tuple(portSegment, nastyString).map(([p, a]) => `SERVICE_${p}${a}`),
  fc.constantFrom('SERVICE_', 'SERVICE', 'service_name', 'com.docker.compose.service'),
  nastyString,
);
const labels = fc.oneof(
  { weight: 8, arbitrary: fc.dictionary(serviceKey, labelValue, { maxKeys: 8 }) },
  { weight: 1, arbitrary: fc.anything() },
);
const env = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.array(
      fc.oneof(
        fc.tuple(serviceKey, labelValue).map(([k, v]) => `${k}=${v}`),
        serviceKey,
        fc.constantFrom('PATH=/bin', '=', 'SERVICE_NAME'),
      ),
      { maxLength: 6 },
    ),
  },
  { weight: 1, arbitrary: fc.anything() },
);

const address = fc.oneof(
  fc.ipV4(),
  fc.ipV6(),
  fc.constantFrom('', '0.0.0.0', '::', '127.0.0.1', '::1', 'fe80::1%eth0', 'localhost', '1.2.3', '[::1]'),
  nastyString,
);
const portText = fc.oneof(
  fc.integer({ min: 0, max: 70_000 }).map(String),
  fc.constantFrom('', '80', '08080', '-1', '1.5', ' 80', '65536'),
  nastyString,
);
const portKey = fc.oneof(
  fc
    .tuple(fc.integer({ min: 0, max: 70_000 }), fc.constantFrom('tcp', 'udp', 'sctp', 'TCP', ''))
    .map(([p, proto]) => (proto === '' ? String(p) : `${p}/${proto}`)),
  fc.constantFrom('80/tcp', '80/udp', '53/udp', '53/tcp', '443/tcp', '0/tcp', '__proto__'),
  nastyString,
);
const binding = fc.oneof(
  { weight: 6, arbitrary: fc.record({ HostIp: address, HostPort: portText }) },
  {
    weight: 1,
    arbitrary: fc.record({ HostIp: fc.anything(), HostPort: fc.anything() }, { requiredKeys: [] }),
  },
  { weight: 1, arbitrary: fc.anything() },
);
const portMap = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.dictionary(portKey, fc.oneof(fc.constant(null), fc.array(binding, { maxLength: 4 }))),
  },
  { weight: 1, arbitrary: fc.anything() },
);
const exposedPorts = fc.oneof(fc.dictionary(portKey, fc.constant({})), fc.anything());
const networkName = fc.oneof(fc.constantFrom('bridge', 'host', 'none', 'default', 'netA', 'netB'), nameLike);
const networks = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.dictionary(
      networkName,
      fc.oneof(
        fc.record({ IPAddress: address, GlobalIPv6Address: address }, { requiredKeys: [] }),
        fc.anything(),
      ),
      { maxKeys: 4 },
    ),
  },
  { weight: 1, arbitrary: fc.anything() },
);
const health = fc.oneof(
  fc.constant(undefined),
  fc.constant(null),
  fc.record({
    Status: fc.oneof(fc.constantFrom('healthy', 'starting', 'unhealthy', 'none', ''), nastyString),
    Log: fc.oneof(
      fc.array(fc.record({ Output: fc.oneof(nastyString, hugeString, fc.anything()) }), { maxLength: 3 }),
      fc.anything(),
    ),
  }),
  fc.anything(),
);
const state = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      Running: fc.oneof(fc.constant(true), fc.boolean(), fc.anything()),
      Paused: fc.oneof(fc.constant(false), fc.boolean()),
      Restarting: fc.oneof(fc.constant(false), fc.boolean()),
      Health: health,
    }),
  },
  { weight: 1, arbitrary: fc.anything() },
);
const image = fc.oneof(
  fc.constantFrom(
    'nginx',
    'registry:5000/team/App:1.2@sha256:abc',
    'sha256:' + 'a'.repeat(64),
    '',
    'UPPER',
    '-x',
  ),
  nameLike,
  nastyString,
);
const containerNameArb = fc.oneof(
  nameLike.map((n) => `/${n}`),
  fc.constantFrom('', '/', '//x', '/a:b', '/a b', '/a/b', `/${'n'.repeat(300)}`),
  nastyString,
);

/** A plausible engine inspect with hostile values in every field. */
const plausibleInspect = fc.record({
  Id: fc.oneof(fc.constant('f'.repeat(64)), nastyString),
  Name: containerNameArb,
  Image: fc.oneof(fc.constant('sha256:' + 'b'.repeat(64)), nastyString),
  State: state,
  Config: fc.record({
    Image: image,
    Labels: labels,
    Env: env,
    ExposedPorts: exposedPorts,
  }),
  HostConfig: fc.record({ NetworkMode: fc.oneof(networkName, nastyString, fc.anything()) }),
  NetworkSettings: fc.record({ Ports: portMap, Networks: networks }),
});

/** Replace random subtrees with arbitrary JSON: wrong types, nulls, arrays where objects belong. */
function mangle(doc: unknown, choices: readonly number[], junk: readonly unknown[]): unknown {
  let i = 0;
  const walk = (value: unknown): unknown => {
    const pick = choices[i++ % choices.length] ?? 0;
    if (pick === 0) return junk[i % junk.length];
    if (value === null || typeof value !== 'object') return value;
    if (Array.isArray(value)) return value.map(walk);
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, walk(v)]));
  };
  return walk(doc);
}
const mangledInspect = fc
  .tuple(
    plausibleInspect,
    fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 1, maxLength: 30 }),
    fc.array(fc.jsonValue(), { minLength: 1, maxLength: 5 }),
  )
  .map(([doc, choices, junk]) => mangle(doc, choices, junk));

/** Objects whose properties throw when read or listed, at any depth. */
function booby(kind: number, inner: unknown): unknown {
  switch (kind) {
    case 0:
      return Object.defineProperty({}, 'Config', {
        enumerable: true,
        get() {
          throw new Error('getter exploded\nwith a second line');
        },
      });
    case 1:
      return new Proxy(
        {},
        {
          ownKeys() {
            throw new TypeError('ownKeys exploded');
          },
          // Symbols stay readable: fast-check itself probes values for its clone symbol.
          get(_target, property) {
            if (typeof property === 'symbol') return undefined;
            // eslint-disable-next-line @typescript-eslint/only-throw-error -- hostile code throws anything
            throw 'a thrown string';
          },
        },
      );
    case 2:
      return {
        ...(inner as object),
        Config: {
          Labels: new Proxy(
            { SERVICE_NAME: 'x' },
            {
              getOwnPropertyDescriptor() {
                throw Object.assign(new Error('x'.repeat(100_000)), {});
              },
            },
          ),
        },
      };
    case 3: {
      const err = new Error('unused');
      Object.defineProperty(err, 'message', {
        get() {
          throw new Error('message getter exploded');
        },
      });
      return Object.defineProperty({ ...(inner as object) }, 'State', {
        enumerable: true,
        get() {
          throw err;
        },
      });
    }
    default: {
      const cyclic: Record<string, unknown> = { ...(inner as object) };
      cyclic['Config'] = { Labels: cyclic, Env: [cyclic] };
      return cyclic;
    }
  }
}
const boobyTrappedInspect = fc
  .tuple(fc.integer({ min: 0, max: 4 }), plausibleInspect)
  .map(([kind, doc]) => booby(kind, doc));

const anyInspect = fc.oneof(
  { weight: 6, arbitrary: plausibleInspect },
  { weight: 2, arbitrary: mangledInspect },
  { weight: 1, arbitrary: boobyTrappedInspect },
  { weight: 1, arbitrary: fc.anything() },
);

const options: fc.Arbitrary<DeriveOptions> = fc.record({
  nodeId: fc.oneof(fc.constant('node1'), nameLike),
  hostIp: fc.oneof(fc.constant(undefined), fc.ipV4(), fc.ipV6()),
  internal: fc.boolean(),
  network: fc.oneof(fc.constant(undefined), networkName),
  tags: fc.array(nameLike, { maxLength: 3 }),
  explicit: fc.boolean(),
});

// ---------------------------------------------------------------------------------------------------------
// Invariants

function checkWarning(w: LabelWarning, container: string | undefined): void {
  expect(typeof w.container).toBe('string');
  expect(w.container).not.toBe('');
  if (container !== undefined) expect(w.container).toBe(container);
  expect(typeof w.key).toBe('string');
  expect(w.key, w.message).not.toBe('');
  expect(w.key.length).toBeLessThanOrEqual(MAX_MESSAGE);
  expect(LINE_BREAK.test(w.key), w.key).toBe(false);
  expect(w.message).not.toBe('');
  expect(w.message.length, w.message.slice(0, 200)).toBeLessThanOrEqual(MAX_MESSAGE);
  expect(LINE_BREAK.test(w.message), w.message).toBe(false);
}

function checkService(s: Service, opts: DeriveOptions): void {
  expect(s.id.startsWith(`${opts.nodeId}:`), s.id).toBe(true);
  expect(Number.isInteger(s.port) && s.port >= 1 && s.port <= 65_535, String(s.port)).toBe(true);
  expect(Number.isInteger(s.containerPort) && s.containerPort >= 1 && s.containerPort <= 65_535).toBe(true);
  expect(isIP(s.address), s.address).not.toBe(0);
  expect(isValidServiceName(s.name), s.name).toBe(true);
  expect(['tcp', 'udp']).toContain(s.protocol);
  expect(s.node).toBe(opts.nodeId);
  expect(['passing', 'warning', 'critical']).toContain(s.health);
  for (const tag of s.tags) {
    expect(typeof tag).toBe('string');
    expect(tag).not.toBe('');
    expect(CONTROL.test(tag), JSON.stringify(tag)).toBe(false);
  }
  if (s.protocol === 'udp') {
    expect(s.id.endsWith(':udp')).toBe(true);
    expect(s.tags).toContain('udp');
  }
  for (const [k, v] of Object.entries(s.meta)) {
    expect(typeof k).toBe('string');
    expect(typeof v).toBe('string');
  }
  for (const v of Object.values(s.checks)) expect(typeof v).toBe('string');
  expect(typeof s.healthOutput).toBe('string');
  expect(s.healthOutput.length).toBeLessThanOrEqual(1100);
}

/** Names the engine would give, when the document is readable at all. */
function expectedContainer(doc: unknown): string | undefined {
  try {
    return containerName(doc as ContainerInspectInfo);
  } catch {
    return undefined;
  }
}

function checkDerivation(doc: unknown, opts: DeriveOptions): void {
  const result = deriveServices(doc as ContainerInspectInfo, opts);
  expect(Array.isArray(result.services)).toBe(true);
  expect(Array.isArray(result.warnings)).toBe(true);
  const container = expectedContainer(doc);
  for (const w of result.warnings) checkWarning(w, container);
  for (const s of result.services) checkService(s, opts);
  const ids = result.services.map((s) => s.id);
  expect(new Set(ids).size, ids.join(' ')).toBe(ids.length);
  // What was left out: bounded, one line each, each a reason code and a line of detail.
  const skipped = result.skipped ?? [];
  expect(skipped.length).toBeLessThanOrEqual(MAX_SKIPPED);
  for (const skip of skipped) {
    expect(typeof skip.reason).toBe('string');
    expect(skip.detail).not.toMatch(/[\n\r]/);
    expect(skip.detail.length).toBeLessThanOrEqual(1000);
  }
}

const params = { seed: SEED, numRuns: RUNS } as const;

// ---------------------------------------------------------------------------------------------------------

describe('deriveServices under hostile input', () => {
  it('never throws and only returns registrable services (plausible inspects)', () => {
    fc.assert(
      fc.property(plausibleInspect, options, (doc, opts) => checkDerivation(doc, opts)),
      params,
    );
  });

  it('never throws on mangled, booby-trapped or arbitrary documents', () => {
    fc.assert(
      fc.property(anyInspect, options, (doc, opts) => checkDerivation(doc, opts)),
      params,
    );
  });

  it('is deterministic: the same inspect derives the same services', () => {
    fc.assert(
      fc.property(plausibleInspect, options, (doc, opts) => {
        const a = deriveServices(doc as ContainerInspectInfo, opts);
        const b = deriveServices(structuredClone(doc) as ContainerInspectInfo, opts);
        expect(b).toEqual(a);
      }),
      { seed: SEED, numRuns: 500 },
    );
  });
});

describe('label parsing under hostile input', () => {
  it('parseServiceLabels never throws and names container and key in every warning', () => {
    fc.assert(
      fc.property(labels, env, nameLike, (l, e, container) => {
        const { labels: parsed, warnings } = parseServiceLabels(l, e, container);
        for (const w of warnings) checkWarning(w, container);
        for (const port of [1, 53, 80, 65_535]) {
          for (const proto of ['tcp', 'udp'] as const) {
            const settings = settingsFor(parsed, port, proto);
            if (settings.name !== undefined) expect(isValidServiceName(settings.name)).toBe(true);
            if (settings.id !== undefined) expect(isValidServiceName(settings.id)).toBe(true);
            for (const tag of settings.tags) expect(CONTROL.test(tag)).toBe(false);
            // Metadata stays plain data: no key reaches the prototype.
            expect(Object.getPrototypeOf(settings.meta)).toBe(Object.prototype);
          }
        }
      }),
      params,
    );
  });

  it('labels win over environment for every key', () => {
    fc.assert(
      fc.property(fc.dictionary(serviceKey, nastyString), fc.dictionary(serviceKey, nastyString), (l, e) => {
        const settings = collectSettings(
          l,
          Object.entries(e).map(([k, v]) => `${k}=${v}`),
        );
        for (const [k, v] of Object.entries(l)) if (k.startsWith('SERVICE_')) expect(settings.get(k)).toBe(v);
      }),
      { seed: SEED, numRuns: 1000 },
    );
  });

  it('parseTags round-trips escaped commas and never returns empty or control-character tags', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(nameLike, nastyString), { maxLength: 8 }), (parts) => {
        const { tags, problems } = parseTags(parts.map((p) => p.replace(/,/g, '\\,')).join(','));
        for (const tag of tags) {
          expect(tag).not.toBe('');
          expect(CONTROL.test(tag)).toBe(false);
        }
        for (const p of problems) expect(LINE_BREAK.test(p)).toBe(false);
        // A trailing backslash escapes the comma after it, so only backslash-free lists must round-trip.
        if (parts.some((part) => part.includes('\\'))) return;
        for (const part of parts) {
          const t = part.trim();
          if (t !== '' && !CONTROL.test(t)) expect(tags).toContain(t);
        }
      }),
      { seed: SEED, numRuns: 1000 },
    );
  });
});

describe('oversized input', () => {
  const base = (labelsValue: unknown, envValue: unknown = []): ContainerInspectInfo =>
    ({
      Id: 'c'.repeat(64),
      Name: '/big',
      State: { Running: true },
      Config: { Image: 'app', Labels: labelsValue, Env: envValue },
      HostConfig: { NetworkMode: 'bridge' },
      NetworkSettings: {
        Ports: { '80/tcp': [{ HostIp: '0.0.0.0', HostPort: '8080' }] },
        Networks: { bridge: { IPAddress: '172.17.0.2' } },
      },
    }) as unknown as ContainerInspectInfo;
  const opts: DeriveOptions = {
    nodeId: 'n1',
    hostIp: '10.0.0.1',
    internal: false,
    tags: [],
    explicit: false,
  };
  const MB = 1024 * 1024;

  it.each(['SERVICE_NAME', 'SERVICE_TAGS', 'SERVICE_80_CHECK_HTTP', 'SERVICE_VERSION', 'SERVICE_NETWORK'])(
    'ignores a 1 MB %s with one short warning and still registers the container',
    (key) => {
      const started = performance.now();
      const result = deriveServices(base({ [key]: 'v'.repeat(MB), SERVICE_TAGS_X: 'ok' }), opts);
      expect(performance.now() - started).toBeLessThan(500);
      const warning = result.warnings.find((w) => w.key === key);
      expect(warning?.container).toBe('big');
      expect(warning?.message).toMatch(/larger than/);
      for (const w of result.warnings) checkWarning(w, 'big');
      expect(result.services).toHaveLength(1);
      expect(JSON.stringify(result.services).length).toBeLessThan(10_000);
    },
  );

  it('a 1 MB label in the environment and a 1 MB key are handled the same way', () => {
    const hugeKey = `SERVICE_${'K'.repeat(MB)}`;
    const result = deriveServices(base({ [hugeKey]: 'x' }, [`SERVICE_NAME=${'é'.repeat(MB)}`]), opts);
    for (const w of result.warnings) checkWarning(w, 'big');
    expect(result.warnings.map((w) => w.key)).toContain('SERVICE_NAME');
    expect(result.warnings.some((w) => w.key.startsWith('SERVICE_KKK'))).toBe(true);
    expect(result.services).toHaveLength(1);
    expect(JSON.stringify(result.services).length).toBeLessThan(10_000);
  });

  it('a value just under the cap with problems is reported without echoing it whole', () => {
    const name = 'n'.repeat(MAX_LABEL_VALUE_BYTES - 10);
    const tags = `${'\u0001'.repeat(1000)},${'t\u0002'.repeat(20_000)}`;
    const result = deriveServices(base({ SERVICE_NAME: name, SERVICE_TAGS: tags }), opts);
    expect(result.warnings.map((w) => w.key).sort()).toEqual(['SERVICE_NAME', 'SERVICE_TAGS']);
    for (const w of result.warnings) checkWarning(w, 'big');
  });

  it('thousands of labels: bounded time, bounded output, bounded warnings', () => {
    const many: Record<string, string> = {};
    for (let i = 0; i < 5000; i++) {
      many[`SERVICE_META_${i}`] = 'm'.repeat(1000);
      many[`SERVICE_${70_000 + i}_NAME`] = 'bad port';
      many[`SERVICE_80_TAGS_${i}`] = 'x';
    }
    many['SERVICE_NAME'] = 'web';
    const before = process.memoryUsage().heapUsed;
    const started = performance.now();
    const result = deriveServices(base(many), opts);
    const elapsed = performance.now() - started;
    expect(elapsed).toBeLessThan(2000);
    expect(process.memoryUsage().heapUsed - before).toBeLessThan(200 * MB);
    expect(result.services).toHaveLength(1);
    expect(result.services[0]?.name).toBe('web');
    expect(result.warnings.length).toBeGreaterThan(0);
    expect(result.warnings.length).toBeLessThanOrEqual(100);
    for (const w of result.warnings) checkWarning(w, 'big');
    // What reaches a registry stays small whatever the container says.
    expect(JSON.stringify(result.services[0]?.meta).length).toBeLessThan(1024 * 1024);
  });

  it('many networks and port bindings stay bounded', () => {
    const ports: Record<string, { HostIp: string; HostPort: string }[]> = {};
    for (let p = 1; p <= 3000; p++)
      ports[`${p}/tcp`] = [{ HostIp: '127.0.0.1', HostPort: String(p + 10_000) }];
    const nets: Record<string, { IPAddress: string }> = {};
    for (let i = 0; i < 2000; i++) nets[`net${i}`] = { IPAddress: `10.0.${i >> 8}.${i & 255}` };
    const doc = {
      ...base({ SERVICE_NETWORK: 'missing' }),
      NetworkSettings: { Ports: ports, Networks: nets },
    } as unknown as ContainerInspectInfo;
    const started = performance.now();
    const result = deriveServices(doc, { ...opts, hostIp: undefined });
    expect(performance.now() - started).toBeLessThan(2000);
    expect(result.services).toHaveLength(3000);
    for (const w of result.warnings) checkWarning(w, 'big');
    expect(new Set(result.services.map((s) => s.id)).size).toBe(3000);
  });
});

describe('quote and oneLine', () => {
  it('always yield one bounded line', () => {
    fc.assert(
      fc.property(fc.oneof(nastyString, hugeString, fc.string({ unit: 'binary' })), (text) => {
        for (const out of [quote(text), oneLine(text)]) {
          expect(LINE_BREAK.test(out)).toBe(false);
          expect(CONTROL.test(out)).toBe(false);
          expect(out.length).toBeLessThanOrEqual(6 * 400 + 40);
        }
      }),
      { seed: SEED, numRuns: 300 },
    );
  });
});
