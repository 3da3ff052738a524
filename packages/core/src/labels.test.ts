import { describe, expect, it } from 'vitest';
import {
  MAX_LABEL_VALUE_BYTES,
  collectSettings,
  isTruthy,
  isValidServiceName,
  parseServiceLabels,
  parseTags,
  settingsFor,
} from './labels.js';

describe('parseTags', () => {
  it.each([
    ['a,b,c', ['a', 'b', 'c'], 0],
    [' a , b ,, c ,', ['a', 'b', 'c'], 0],
    ['a\\,b,c', ['a,b', 'c'], 0],
    ['\\,', [','], 0],
    // Only `\,` is an escape, so `\\,` is a literal backslash then an escaped comma.
    ['a\\\\,b', ['a\\,b'], 0],
    ['x\\y', ['x\\y'], 0],
    ['a,a,b', ['a', 'b'], 0],
    ['', [], 0],
    [' , ,', [], 1],
    ['ok,bad\u0001tag', ['ok'], 1],
    ['tab\there', [], 1],
    ['versión,日本', ['versión', '日本'], 0],
  ])('%j → %j (%i problems)', (value, tags, problems) => {
    const result = parseTags(value);
    expect(result.tags).toEqual(tags);
    expect(result.problems).toHaveLength(problems);
  });
});

describe('isTruthy / isValidServiceName', () => {
  it.each([
    ['true', true],
    ['1', true],
    ['yes', true],
    ['anything', true],
    ['', false],
    ['  ', false],
    ['false', false],
    ['FALSE', false],
    ['0', false],
    ['no', false],
    [' No ', false],
  ])('isTruthy(%j) = %s', (value, expected) => {
    expect(isTruthy(value)).toBe(expected);
  });

  it.each([
    ['web', true],
    ['Web-1.api_v2', true],
    ['9lives', true],
    ['a'.repeat(253), true],
    ['a'.repeat(254), false],
    ['-web', false],
    ['.web', false],
    ['we b', false],
    ['web/api', false],
    ['web:api', false],
    ['', false],
  ])('isValidServiceName(%j) = %s', (value, expected) => {
    expect(isValidServiceName(value)).toBe(expected);
  });
});

describe('collectSettings', () => {
  it('splits env on the first "=", keeps only SERVICE_ keys, and lets labels win', () => {
    const settings = collectSettings({ SERVICE_NAME: 'from-label', other: 'x' }, [
      'SERVICE_NAME=from-env',
      'SERVICE_CHECK_HTTP=/h?a=b=c',
      'SERVICE_UNSET',
      'PATH=/bin',
      'SERVICE_EMPTY=',
    ]);
    expect(Object.fromEntries(settings)).toEqual({
      SERVICE_NAME: 'from-label',
      SERVICE_CHECK_HTTP: '/h?a=b=c',
      SERVICE_EMPTY: '',
    });
  });

  it.each([
    [null, null],
    [undefined, undefined],
    ['x', 42],
    [[1, 2], { a: 1 }],
    [{ SERVICE_NAME: 5 }, [null, 7]],
  ])('tolerates malformed labels %j / env %j', (labels, env) => {
    expect(collectSettings(labels, env).size).toBe(0);
  });
});

/** Parse labels (and optional env) and return the settings for one port, plus warning keys. */
function resolve(
  labels: Record<string, string>,
  port = 80,
  protocol: 'tcp' | 'udp' = 'tcp',
  env: string[] = [],
) {
  const parsed = parseServiceLabels(labels, env, 'c1');
  return { settings: settingsFor(parsed.labels, port, protocol), warnings: parsed.warnings, parsed };
}

describe('parseServiceLabels + settingsFor: precedence', () => {
  interface Case {
    readonly title: string;
    readonly labels: Record<string, string>;
    readonly env?: string[];
    readonly port?: number;
    readonly protocol?: 'tcp' | 'udp';
    readonly name?: string | undefined;
    readonly portSpecific?: boolean;
    readonly tags?: string[];
    readonly id?: string | undefined;
    readonly ignore?: boolean;
    readonly meta?: Record<string, string>;
    readonly checks?: Record<string, string>;
  }
  const cases: Case[] = [
    { title: 'generic name', labels: { SERVICE_NAME: 'web' }, name: 'web', portSpecific: false },
    {
      title: 'port name beats generic',
      labels: { SERVICE_NAME: 'web', SERVICE_80_NAME: 'http' },
      name: 'http',
      portSpecific: true,
    },
    {
      title: 'port name of another port does not apply',
      labels: { SERVICE_NAME: 'web', SERVICE_443_NAME: 'https' },
      name: 'web',
      portSpecific: false,
    },
    {
      title: 'protocol-specific beats port-specific for that protocol',
      labels: { SERVICE_53_NAME: 'dns', SERVICE_53_UDP_NAME: 'dns-udp' },
      port: 53,
      protocol: 'udp',
      name: 'dns-udp',
      portSpecific: true,
    },
    {
      title: 'protocol-specific does not apply to the other protocol',
      labels: { SERVICE_53_NAME: 'dns', SERVICE_53_UDP_NAME: 'dns-udp' },
      port: 53,
      protocol: 'tcp',
      name: 'dns',
      portSpecific: true,
    },
    {
      title: 'lower-case protocol segment',
      labels: { SERVICE_53_udp_NAME: 'dns-udp' },
      port: 53,
      protocol: 'udp',
      name: 'dns-udp',
    },
    {
      title: 'attributes are case-insensitive after the prefix',
      labels: { SERVICE_Name: 'web', SERVICE_80_tags: 'x' },
      name: 'web',
      tags: ['x'],
    },
    { title: 'lower-case prefix is not ours', labels: { service_name: 'web' }, name: undefined },
    { title: 'labels beat env', labels: { SERVICE_NAME: 'label' }, env: ['SERVICE_NAME=env'], name: 'label' },
    {
      title: 'env alone works',
      labels: {},
      env: ['SERVICE_NAME=env', 'SERVICE_TAGS=a,b'],
      name: 'env',
      tags: ['a', 'b'],
    },
    {
      title: 'port-specific env beats generic label (specificity before source)',
      labels: { SERVICE_NAME: 'label' },
      env: ['SERVICE_80_NAME=env-port'],
      name: 'env-port',
    },
    { title: 'name is trimmed', labels: { SERVICE_NAME: '  web ' }, name: 'web' },
    {
      title: 'port tags replace generic tags',
      labels: { SERVICE_TAGS: 'a,b', SERVICE_80_TAGS: 'c' },
      tags: ['c'],
    },
    { title: 'escaped commas in tags', labels: { SERVICE_TAGS: 'x\\,y, z' }, tags: ['x,y', 'z'] },
    {
      title: 'empty port tags explicitly clear the generic tags',
      labels: { SERVICE_TAGS: 'a', SERVICE_80_TAGS: '' },
      tags: [],
    },
    {
      title: 'unparsable port tags fall back to the generic tags',
      labels: { SERVICE_TAGS: 'a', SERVICE_80_TAGS: ' , ' },
      tags: ['a'],
    },
    { title: 'generic id', labels: { SERVICE_ID: 'myid' }, id: 'myid' },
    { title: 'port id beats generic', labels: { SERVICE_ID: 'myid', SERVICE_80_ID: 'p80' }, id: 'p80' },
    { title: 'invalid id is dropped', labels: { SERVICE_ID: 'a:b' }, id: undefined },
    { title: 'ignore', labels: { SERVICE_IGNORE: 'true' }, ignore: true },
    { title: 'ignore false', labels: { SERVICE_IGNORE: 'false' }, ignore: false },
    {
      title: 'port ignore=false overrides container ignore for that port',
      labels: { SERVICE_IGNORE: '1', SERVICE_80_IGNORE: 'no' },
      ignore: false,
    },
    { title: 'port ignore', labels: { SERVICE_80_IGNORE: 'yes' }, ignore: true },
    { title: 'other port ignore', labels: { SERVICE_443_IGNORE: 'yes' }, ignore: false },
    {
      title: 'checks: lower-cased kind, port-specific beats generic key by key',
      labels: {
        SERVICE_CHECK_HTTP: '/health',
        SERVICE_CHECK_INTERVAL: '10s',
        SERVICE_80_CHECK_HTTP: '/ready',
        SERVICE_80_CHECK_DEREGISTER_AFTER: '1m',
      },
      checks: { http: '/ready', interval: '10s', deregister_after: '1m' },
      meta: {},
    },
    {
      title: 'meta: lower-cased keys, port-specific beats generic, known keys excluded',
      labels: {
        SERVICE_NAME: 'web',
        SERVICE_TAGS: 't',
        SERVICE_ID: 'i',
        SERVICE_IGNORE: 'no',
        SERVICE_NETWORK: 'n',
        SERVICE_REGION: 'eu',
        SERVICE_VERSION: '1',
        SERVICE_80_VERSION: '2',
        SERVICE_80_UDP_VERSION: '3',
      },
      meta: { region: 'eu', version: '2' },
    },
    {
      title: 'protocol-specific meta',
      labels: { SERVICE_VERSION: '1', SERVICE_80_VERSION: '2', SERVICE_80_UDP_VERSION: '3' },
      protocol: 'udp',
      meta: { version: '3' },
    },
    {
      title: 'SERVICE_abc_NAME is ordinary metadata, not a port key (registrator)',
      labels: { SERVICE_abc_NAME: 'x' },
      name: undefined,
      meta: { abc_name: 'x' },
    },
    {
      title: 'meta key __proto__ stays plain data',
      labels: { SERVICE___PROTO__: 'x' },
      meta: { ['__proto__']: 'x' },
    },
    { title: 'leading zeros in port key', labels: { SERVICE_080_NAME: 'z' }, name: 'z', portSpecific: true },
    {
      // Backend-neutral: the Consul adapter reads these as options; etcd and ZooKeeper keep them as metadata.
      title: 'Consul service options are ordinary metadata in the model, port-specific beating generic',
      labels: {
        SERVICE_ENABLE_TAG_OVERRIDE: 'true',
        SERVICE_WEIGHTS_PASSING: '2',
        SERVICE_80_WEIGHTS_PASSING: '5',
        SERVICE_WEIGHTS_WARNING: '0',
      },
      meta: { enable_tag_override: 'true', weights_passing: '5', weights_warning: '0' },
      checks: {},
    },
  ];

  it.each(cases)('$title', (c) => {
    const { settings } = resolve(c.labels, c.port ?? 80, c.protocol ?? 'tcp', c.env ?? []);
    if ('name' in c) expect(settings.name).toBe(c.name);
    if (c.portSpecific !== undefined) expect(settings.nameIsPortSpecific).toBe(c.portSpecific);
    if (c.tags !== undefined) expect(settings.tags).toEqual(c.tags);
    if ('id' in c) expect(settings.id).toBe(c.id);
    if (c.ignore !== undefined) expect(settings.ignore).toBe(c.ignore);
    if (c.meta !== undefined) {
      expect(Object.keys(settings.meta).sort()).toEqual(Object.keys(c.meta).sort());
      for (const [k, v] of Object.entries(c.meta))
        expect(Object.getOwnPropertyDescriptor(settings.meta, k)?.value).toBe(v);
    }
    if (c.checks !== undefined) expect(settings.checks).toEqual(c.checks);
  });

  it('keeps the prototype of meta untouched for a __proto__ key', () => {
    const { settings } = resolve({ SERVICE___PROTO__: 'x' });
    expect(Object.getPrototypeOf(settings.meta)).toBe(Object.prototype);
  });

  it('reads SERVICE_NETWORK as a container-wide setting', () => {
    const { parsed } = resolve({ SERVICE_NETWORK: ' backend ' });
    expect(parsed.labels.network).toBe('backend');
  });
});

describe('parseServiceLabels: warnings', () => {
  // Each case is one label that is refused: [title, the label's key, its value, what the warning says].
  const big = 'x'.repeat(MAX_LABEL_VALUE_BYTES + 1);
  const cases: [title: string, key: string, value: string, message: RegExp][] = [
    ['empty name', 'SERVICE_NAME', '', /empty/],
    ['blank name', 'SERVICE_NAME', '   ', /empty/],
    ['name with a space', 'SERVICE_NAME', 'my web', /not usable/],
    ['name with a slash', 'SERVICE_80_NAME', 'a/b', /not usable/],
    ['name too long', 'SERVICE_NAME', 'a'.repeat(254), /253/],
    ['port out of range', 'SERVICE_99999_NAME', 'x', /range/],
    ['port zero', 'SERVICE_0_NAME', 'x', /range/],
    ['non-numeric port', 'SERVICE_8o_NAME', 'x', /not a number/],
    ['port with no attribute', 'SERVICE_80', 'x', /no attribute/],
    ['port key ending in _', 'SERVICE_80_', 'x', /no attribute/],
    ['tags that do not parse', 'SERVICE_TAGS', ' , ,', /no tags/],
    ['tag with control chars', 'SERVICE_TAGS', 'a\u0007', /control/],
    ['oversized value', 'SERVICE_REGION', big, /larger than/],
    ['oversized multi-byte value', 'SERVICE_NAME', 'é'.repeat(MAX_LABEL_VALUE_BYTES / 2 + 1), /larger than/],
    ['invalid id', 'SERVICE_ID', 'x/y', /service id/],
    ['check without kind', 'SERVICE_CHECK_', '/x', /kind/],
    ['bare SERVICE_CHECK', 'SERVICE_CHECK', '/x', /kind/],
    ['port-specific network', 'SERVICE_80_NETWORK', 'n', /whole container/],
    ['empty network', 'SERVICE_NETWORK', '', /empty/],
  ];

  it.each(cases)('%o', (_title, key, value, message) => {
    const { warnings, settings } = resolve({ [key]: value });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ container: 'c1', key });
    expect(warnings[0].message).toMatch(message);
    // A rejected key never leaks into metadata.
    expect(Object.keys(settings.meta)).toEqual([]);
  });

  it('an invalid name falls back to the next precedence level', () => {
    const { settings, warnings } = resolve({ SERVICE_NAME: 'web', SERVICE_80_NAME: '' });
    expect(settings.name).toBe('web');
    expect(settings.nameIsPortSpecific).toBe(false);
    expect(warnings.map((w) => w.key)).toEqual(['SERVICE_80_NAME']);
  });

  it('handles the rest of the labels after a bad one', () => {
    const { settings, warnings } = resolve({
      SERVICE_99999_NAME: 'x',
      SERVICE_NAME: 'web',
      SERVICE_TAGS: 'a',
      SERVICE_REGION: 'eu',
    });
    expect(warnings).toHaveLength(1);
    expect(settings).toMatchObject({ name: 'web', tags: ['a'], meta: { region: 'eu' } });
  });

  it('a label overriding a bad env value produces no warning', () => {
    const { warnings, settings } = resolve({ SERVICE_NAME: 'good' }, 80, 'tcp', ['SERVICE_NAME=']);
    expect(warnings).toEqual([]);
    expect(settings.name).toBe('good');
  });

  it('reports warnings in a stable key order', () => {
    const a = parseServiceLabels({ SERVICE_NAME: '', SERVICE_8x_NAME: 'y', SERVICE_TAGS: ',' }, [], 'c');
    const b = parseServiceLabels({ SERVICE_TAGS: ',', SERVICE_8x_NAME: 'y', SERVICE_NAME: '' }, [], 'c');
    expect(a.warnings.map((w) => w.key)).toEqual(b.warnings.map((w) => w.key));
    expect(a.warnings).toHaveLength(3);
  });
});
