/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-unsafe-call -- tests read untyped agent JSON */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { formatGoDuration, parseGoDuration } from '@registrar/core/kit';
import { startConsulDouble } from './index.js';
import type { ConsulDouble, ConsulDoubleOptions } from './index.js';

let double: ConsulDouble | undefined;
afterEach(async () => {
  await double?.close();
  double = undefined;
});

async function start(options: ConsulDoubleOptions = {}): Promise<ConsulDouble> {
  double = await startConsulDouble(options);
  return double;
}

async function call(
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; type: string; text: string; json: any; index: string | null }> {
  const res = await fetch(`${double!.url}${path}`, {
    method,
    headers,
    ...(body !== undefined && { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return {
    status: res.status,
    type: res.headers.get('content-type') ?? '',
    text,
    json,
    index: res.headers.get('x-consul-index'),
  };
}

const register = (body: unknown, query = '') => call('PUT', `/v1/agent/service/register${query}`, body);
const checks = async () => (await call('GET', '/v1/agent/checks')).json as Record<string, any>;

describe('Go durations', () => {
  it('parses and formats like Go', () => {
    expect(parseGoDuration('10s')).toBe(10_000);
    expect(parseGoDuration('1m30s')).toBe(90_000);
    expect(parseGoDuration('500ms')).toBe(500);
    expect(parseGoDuration('1.5h')).toBe(5_400_000);
    expect(() => parseGoDuration('10')).toThrow('time: missing unit in duration "10"');
    expect(() => parseGoDuration('abc')).toThrow('time: invalid duration "abc"');
    expect(formatGoDuration(90_000)).toBe('1m30s');
    expect(formatGoDuration(500)).toBe('500ms');
    expect(formatGoDuration(3_600_000)).toBe('1h0m0s');
  });
});

describe('service registration', () => {
  it('accepts Go-style case-insensitive and snake_case keys and numbers checks from 1', async () => {
    await start();
    expect(
      (
        await register({
          name: 'web',
          id: 'web-1',
          PORT: 80,
          tags: ['a'],
          meta: { version: '1' },
          checks: [{ ttl: '10s' }, { Ttl: '1m', status: 'passing' }, { alias_service: 'other' }],
        })
      ).status,
    ).toBe(200);
    const all = await checks();
    expect(Object.keys(all).sort()).toEqual(['service:web-1:1', 'service:web-1:2', 'service:web-1:3']);
    expect(all['service:web-1:1'].Status).toBe('critical');
    expect(all['service:web-1:2'].Status).toBe('passing');
    expect(all['service:web-1:3']).toMatchObject({ Type: 'alias', Status: 'critical' });
    expect(all['service:web-1:3'].Output).toContain('Service other could not be found');
    const services = (await call('GET', '/v1/agent/services')).json;
    expect(services['web-1']).toMatchObject({
      ID: 'web-1',
      Service: 'web',
      Port: 80,
      Tags: ['a'],
      Meta: { version: '1' },
    });
    expect((await call('GET', '/v1/agent/service/web-1')).json).toMatchObject({ Service: 'web' });
  });

  it('names a single check service:<id> and defaults the id to the name', async () => {
    await start();
    await register({ Name: 'db', Check: { TTL: '5s' } });
    expect(Object.keys(await checks())).toEqual(['service:db']);
  });

  it('answers validation errors as text/plain 400s with Consul wording', async () => {
    await start();
    const cases: [unknown, string][] = [
      [{ Port: 80 }, 'Missing service name'],
      [{ Name: 'x', Check: { HTTP: 'http://x/' } }, 'Invalid check: Interval must be > 0'],
      [{ Name: 'x', Check: { Status: 'passing' } }, 'Invalid check: TTL must be > 0 for TTL checks'],
      [{ Name: 'x', Check: { TTL: '10' } }, 'Request decode failed: time: missing unit in duration "10"'],
      [
        { Name: 'x', Check: { TTL: '1s', Interval: '1s' } },
        'Invalid check: Interval and TTL cannot both be specified',
      ],
      [
        { Name: 'x', Check: { AliasService: 'y', TTL: '1s' } },
        'Invalid check: TTL must be not be set for Alias checks',
      ],
      [
        { Name: 'x', Check: { TTL: '1s', Status: 'ok' } },
        "Status for checks must 'passing', 'warning', 'critical'",
      ],
      [
        { Name: 'x', Port: '80' },
        'Request decode failed: json: cannot unmarshal string into Go struct field',
      ],
      [
        { Name: 'x', Meta: { 'a.b': 'c' } },
        "Invalid Service Meta: Couldn't load metadata pair ('a.b', 'c'): Key contains invalid characters",
      ],
      [{ Name: 'x', Meta: { 'consul-x': 'c' } }, "Key prefix 'consul-' is reserved for internal use"],
      [{ Name: 'x', Meta: { k: 'v'.repeat(513) } }, 'Value is too long (limit: 512 characters)'],
      ['{not json', 'Request decode failed'],
    ];
    for (const [body, message] of cases) {
      const res = await register(body);
      expect(res.status, message).toBe(400);
      expect(res.type).toContain('text/plain');
      expect(res.text).toContain(message);
    }
  });

  it('keeps check status and output across re-registration, and drops missing checks with replace-existing-checks', async () => {
    await start();
    await register({ Name: 'web', Checks: [{ TTL: '1m', Status: 'passing' }, { TTL: '1m' }, { TTL: '1m' }] });
    await call('PUT', '/v1/agent/check/fail/service:web:1?note=down');
    await register({ Name: 'web', Checks: [{ TTL: '1m', Status: 'passing' }, { TTL: '1m' }] });
    let all = await checks();
    expect(all['service:web:1']).toMatchObject({ Status: 'critical', Output: 'down' });
    expect(all['service:web:3']).toBeDefined();
    await register({ Name: 'web', Checks: [{ TTL: '1m' }, { TTL: '1m' }] }, '?replace-existing-checks=true');
    all = await checks();
    expect(Object.keys(all).sort()).toEqual(['service:web:1', 'service:web:2']);
  });

  it('stores EnableTagOverride and Weights, filling Go zero values into a partial Weights object', async () => {
    await start();
    const cases: [Record<string, unknown>, { Passing: number; Warning: number }, boolean][] = [
      [{}, { Passing: 1, Warning: 1 }, false],
      [{ Weights: null, EnableTagOverride: false }, { Passing: 1, Warning: 1 }, false],
      [{ Weights: { Passing: 5 }, EnableTagOverride: true }, { Passing: 5, Warning: 0 }, true],
      [{ weights: { passing: 3, warning: 2 }, enable_tag_override: true }, { Passing: 3, Warning: 2 }, true],
      [{ Weights: { Passing: 65535, Warning: 0 } }, { Passing: 65535, Warning: 0 }, false],
    ];
    for (const [i, [fields, weights, eto]] of cases.entries()) {
      const id = `w${i}`;
      expect((await register({ Name: 'web', ID: id, ...fields })).status, id).toBe(200);
      const want = { ID: id, Weights: weights, EnableTagOverride: eto };
      expect((await call('GET', '/v1/agent/services')).json[id], id).toMatchObject(want);
      expect((await call('GET', `/v1/agent/service/${id}`)).json, id).toMatchObject(want);
    }
  });

  it('rejects weights and EnableTagOverride values the agent rejects, with its wording', async () => {
    await start();
    const cases: [unknown, string][] = [
      [{ Name: 'x', Weights: {} }, 'Invalid Weights: Passing must be greater than 0'],
      [{ Name: 'x', Weights: { Warning: 2 } }, 'Invalid Weights: Passing must be greater than 0'],
      [{ Name: 'x', Weights: { Passing: 0, Warning: 1 } }, 'Invalid Weights: Passing must be greater than 0'],
      [
        { Name: 'x', Weights: { Passing: 1, Warning: -1 } },
        'Invalid Weights: Warning must be greater or equal than 0',
      ],
      [{ Name: 'x', Weights: { Passing: 65536 } }, 'Invalid Weights: DNS Weight must be between 0 and 65535'],
      [
        { Name: 'x', Weights: { Passing: 1, Warning: 65536 } },
        'Invalid Weights: DNS Weight must be between 0 and 65535',
      ],
      [{ Name: 'x', Weights: { Passing: 1.5 } }, 'Request decode failed: json: cannot unmarshal number'],
      [{ Name: 'x', Weights: [1, 1] }, 'Request decode failed: json: cannot unmarshal array'],
      [
        { Name: 'x', EnableTagOverride: 'true' },
        'Request decode failed: json: cannot unmarshal string into Go struct field ServiceDefinition.EnableTagOverride of type bool',
      ],
    ];
    for (const [body, message] of cases) {
      const res = await register(body);
      expect(res.status, message).toBe(400);
      expect(res.text).toContain(message);
    }
    expect((await call('GET', '/v1/agent/services')).json).toEqual({});
  });

  it('takes catalog tags written by others only for services with EnableTagOverride', async () => {
    const d = await start();
    await register({ Name: 'web', ID: 'own', Tags: ['a'], Check: { TTL: '1m' } });
    await register({ Name: 'web', ID: 'open', Tags: ['a'], EnableTagOverride: true, Check: { TTL: '1m' } });
    expect(d.overrideCatalogTags('own', ['edited'])).toBe(false);
    expect(d.overrideCatalogTags('open', ['edited'])).toBe(true);
    const services = (await call('GET', '/v1/agent/services')).json;
    expect(services.own.Tags).toEqual(['a']);
    expect(services.open.Tags).toEqual(['edited']);
    expect((await checks())['service:open'].ServiceTags).toEqual(['edited']);
    expect(() => d.overrideCatalogTags('nope', [])).toThrow('unknown service nope');
  });
});

describe('tagged addresses', () => {
  it("stores a registration's TaggedAddresses and adds its Address family's lan/wan ones, as the agent does", async () => {
    await start();
    const tagged = { lan_ipv6: { Address: 'fd00::5', Port: 81 } };
    expect(
      (await register({ Name: 'web', ID: 'a', Address: '10.0.0.5', Port: 80, TaggedAddresses: tagged }))
        .status,
    ).toBe(200);
    expect((await register({ Name: 'web', ID: 'b', Address: 'fd00::6', Port: 80 })).status).toBe(200);
    expect((await register({ Name: 'web', ID: 'c' })).status).toBe(200);
    const services = (await call('GET', '/v1/agent/services')).json;
    expect(services.a.TaggedAddresses).toEqual({
      lan_ipv4: { Address: '10.0.0.5', Port: 80 },
      wan_ipv4: { Address: '10.0.0.5', Port: 80 },
      lan_ipv6: { Address: 'fd00::5', Port: 81 },
    });
    expect(services.b.TaggedAddresses).toEqual({
      lan_ipv6: { Address: 'fd00::6', Port: 80 },
      wan_ipv6: { Address: 'fd00::6', Port: 80 },
    });
    expect(services.c).not.toHaveProperty('TaggedAddresses');
    const catalog = (await call('GET', '/v1/catalog/service/web')).json;
    expect(catalog.find((e: any) => e.ServiceID === 'a').ServiceTaggedAddresses.lan_ipv6.Address).toBe(
      'fd00::5',
    );
    expect((await register({ Name: 'web', ID: 'd', TaggedAddresses: { lan: 'x' } })).status).toBe(400);
  });
});

describe('script and Docker checks', () => {
  const dockerCheck = {
    DockerContainerID: 'f00d',
    Args: ['/bin/check.sh', 'arg'],
    Shell: '/bin/bash',
    Interval: '10s',
  };

  it('refuses them with a 500, registering nothing, unless enableScriptChecks is set', async () => {
    await start();
    for (const check of [dockerCheck, { Args: ['/bin/true'], Interval: '10s' }]) {
      const res = await register({ Name: 'web', Checks: [{ TTL: '1m' }, check] });
      expect(res.status).toBe(500);
      expect(res.text).toBe(
        "Scripts are disabled on this agent from remote calls; to enable, configure 'enable_script_checks' to true",
      );
    }
    expect((await call('GET', '/v1/agent/services')).json).toEqual({});
    // Validation comes first: an invalid script check is a 400 even where scripts are disabled.
    const invalid = await register({ Name: 'web', Check: { ...dockerCheck, Interval: undefined } });
    expect(invalid.status).toBe(400);
  });

  it('accepts a Docker check with an interval, keeps what it would run, and never runs it', async () => {
    const d = await start({ enableScriptChecks: true });
    expect((await register({ Name: 'web', Check: dockerCheck })).status).toBe(200);
    expect((await checks())['service:web']).toMatchObject({
      Type: 'docker',
      Status: 'critical',
      Interval: '10s',
    });
    expect(d.checkDefinition('service:web')).toMatchObject({
      dockerContainerId: 'f00d',
      args: ['/bin/check.sh', 'arg'],
      shell: '/bin/bash',
      intervalMs: 10_000,
    });
    expect(d.checkDefinition('nope')).toBeUndefined();
    await register({ Name: 'plain', Check: { Args: ['/bin/true'], Interval: '5s' } });
    expect((await checks())['service:plain'].Type).toBe('script');
  });

  it('rejects a Docker check without an interval, or without Args, as the agent does', async () => {
    await start({ enableScriptChecks: true });
    const cases: [unknown, string][] = [
      [
        { ...dockerCheck, Interval: undefined },
        'Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks',
      ],
      [{ ...dockerCheck, Interval: '0s' }, 'Invalid check: Interval must be > 0'],
      [{ ...dockerCheck, Args: [] }, 'Invalid check: TTL must be > 0 for TTL checks'],
      [{ ...dockerCheck, TTL: '10s' }, 'Invalid check: Interval and TTL cannot both be specified'],
    ];
    for (const [check, message] of cases) {
      const res = await register({ Name: 'web', Check: check });
      expect(res.status, message).toBe(400);
      expect(res.text).toContain(message);
    }
  });
});

describe('checks', () => {
  it('turns a TTL check critical with "TTL expired" when not updated', async () => {
    await start();
    await register({ Name: 'web', Check: { TTL: '200ms', Status: 'passing' } });
    await vi.waitFor(
      async () =>
        expect((await checks())['service:web']).toMatchObject({ Status: 'critical', Output: 'TTL expired' }),
      {
        timeout: 3000,
        interval: 50,
      },
    );
  });

  it('updates TTL checks with pass/warn/fail?note= and update {Status, Output}; 404 for unknown ids', async () => {
    await start();
    await register({ Name: 'web', Check: { TTL: '1m' } });
    expect((await call('PUT', '/v1/agent/check/pass/service:web?note=ok')).status).toBe(200);
    expect((await checks())['service:web']).toMatchObject({ Status: 'passing', Output: 'ok' });
    await call('PUT', '/v1/agent/check/warn/service:web');
    expect((await checks())['service:web'].Status).toBe('warning');
    await call('PUT', '/v1/agent/check/update/service:web', { Status: 'critical', Output: 'probe failed' });
    expect((await checks())['service:web']).toMatchObject({ Status: 'critical', Output: 'probe failed' });
    const bad = await call('PUT', '/v1/agent/check/update/service:web', { Status: 'sick' });
    expect([bad.status, bad.text]).toEqual([400, "Invalid check status: 'sick'"]);
    const unknown = await call('PUT', '/v1/agent/check/pass/nope');
    expect(unknown.status).toBe(404);
    expect(unknown.text).toBe(
      'Unknown check ID "nope". Ensure that the check ID is passed, not the check name.',
    );
    const dereg = await call('PUT', '/v1/agent/service/deregister/nope');
    expect(dereg.status).toBe(404);
    expect(dereg.text).toContain('Unknown service ID "nope"');
    expect((await call('PUT', '/v1/agent/service/deregister/web')).status).toBe(200);
    expect(await checks()).toEqual({});
  });

  it('mirrors the aliased service in alias checks, critical once it is gone', async () => {
    await start();
    await register({ Name: 'bridge', Check: { TTL: '1m', Status: 'passing' } });
    await register({ Name: 'web', Check: { AliasService: 'bridge' } });
    expect((await checks())['service:web']).toMatchObject({
      Status: 'passing',
      Output: 'All checks passing.',
    });
    await call('PUT', '/v1/agent/check/warn/service:bridge?note=slow');
    expect((await checks())['service:web']).toMatchObject({ Status: 'warning' });
    await call('PUT', '/v1/agent/check/fail/service:bridge?note=dead');
    expect((await checks())['service:web'].Output).toBe(
      'Aliased check "Service \'bridge\' check" failing: dead',
    );
    await call('PUT', '/v1/agent/service/deregister/bridge');
    expect((await checks())['service:web']).toMatchObject({ Status: 'critical' });
  });

  it('reaps services whose check stayed critical past DeregisterCriticalServiceAfter (clamped to the minimum)', async () => {
    await start({ reapIntervalMs: 50, minDeregisterAfterMs: 400 });
    const t0 = Date.now();
    await register({ Name: 'web', Check: { TTL: '1m', DeregisterCriticalServiceAfter: '1ms' } });
    await register({ Name: 'keep', Check: { TTL: '1m' } });
    await vi.waitFor(
      async () => expect((await call('GET', '/v1/agent/services')).json).not.toHaveProperty('web'),
      {
        timeout: 3000,
        interval: 25,
      },
    );
    expect(Date.now() - t0).toBeGreaterThanOrEqual(400);
    expect((await call('GET', '/v1/agent/services')).json).toHaveProperty('keep');
  });

  it('runs HTTP and TCP checks', async () => {
    const target = createServer((req, res) => res.writeHead(req.url === '/ok' ? 200 : 500).end('body'));
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    const port = (target.address() as AddressInfo).port;
    try {
      await start();
      await register({
        Name: 'web',
        Checks: [
          { HTTP: `http://127.0.0.1:${port}/ok`, Interval: '1s' },
          { HTTP: `http://127.0.0.1:${port}/bad`, Interval: '1s' },
          { TCP: `127.0.0.1:${port}`, Interval: '1s' },
        ],
      });
      await vi.waitFor(
        async () => {
          const all = await checks();
          expect(all['service:web:1'].Status).toBe('passing');
          expect(all['service:web:2'].Status).toBe('critical');
          expect(all['service:web:3'].Status).toBe('passing');
        },
        { timeout: 5000, interval: 50 },
      );
    } finally {
      target.close();
    }
  });
});

describe('health, catalog and blocking queries', () => {
  it('lists entries with the node serfHealth check and filters ?passing', async () => {
    await start();
    await register({
      Name: 'web',
      ID: 'a',
      Address: '10.0.0.1',
      Port: 80,
      Check: { TTL: '1m', Status: 'passing' },
    });
    await register({ Name: 'web', ID: 'b', Port: 81, Check: { TTL: '1m' } });
    const all = (await call('GET', '/v1/health/service/web')).json as any[];
    expect(all.map((e) => e.Service.ID)).toEqual(['a', 'b']);
    expect(all[0].Checks.map((c: any) => c.CheckID)).toEqual(['serfHealth', 'service:a']);
    expect(all[0].Node.Node).toBe('consul-double');
    const passing = (await call('GET', '/v1/health/service/web?passing')).json as any[];
    expect(passing.map((e) => e.Service.ID)).toEqual(['a']);
    expect((await call('GET', '/v1/catalog/services')).json).toEqual({ consul: [], web: [] });
    expect(((await call('GET', '/v1/catalog/service/web')).json as any[]).map((s) => s.ServiceID)).toEqual([
      'a',
      'b',
    ]);
    expect((await call('GET', '/v1/status/leader')).json).toBe('127.0.0.1:8300');
    expect((await call('GET', '/v1/agent/self')).json.Config.NodeName).toBe('consul-double');
  });

  it('holds ?index= queries until the state changes or ?wait= runs out', async () => {
    await start();
    await register({ Name: 'web', Check: { TTL: '1m', Status: 'passing' } });
    const first = await call('GET', '/v1/health/service/web');
    const index = Number(first.index);
    expect(index).toBeGreaterThan(0);

    const t0 = Date.now();
    const timedOut = await call('GET', `/v1/health/service/web?index=${index}&wait=300ms`);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
    expect(timedOut.index).toBe(String(index));

    // A heartbeat that changes nothing does not wake watchers.
    const pending = call('GET', `/v1/health/service/web?index=${index}&wait=5s`);
    await call('PUT', '/v1/agent/check/pass/service:web');
    await call('PUT', '/v1/agent/check/fail/service:web?note=x');
    const woke = await pending;
    expect(Number(woke.index)).toBeGreaterThan(index);
    expect(woke.json[0].Checks[1].Status).toBe('critical');
  });

  it('keeps namespace and partition from the query and scopes reads by them', async () => {
    await start();
    await register({ Name: 'web', Check: { TTL: '1m' } }, '?ns=team&partition=p1');
    expect((await call('GET', '/v1/agent/services')).json).toEqual({});
    const scoped = (await call('GET', '/v1/agent/services?ns=team&partition=p1')).json;
    expect(scoped.web).toMatchObject({ Namespace: 'team', Partition: 'p1' });
  });
});

describe('ACLs, restarts and request log', () => {
  it('answers 403 for unknown or missing tokens and accepts the header, ?token= and Bearer', async () => {
    await start({ aclToken: 'secret' });
    const body = { Name: 'web', Check: { TTL: '1m' } };
    const unknown = await call('PUT', '/v1/agent/service/register', body, { 'X-Consul-Token': 'nope' });
    expect([unknown.status, unknown.text]).toEqual([403, 'ACL not found']);
    const anonymous = await call('PUT', '/v1/agent/service/register', body);
    expect(anonymous.status).toBe(403);
    expect(anonymous.text).toMatch(
      /^Permission denied: anonymous token lacks permission 'service:write' on "web"/,
    );
    expect((await call('GET', '/v1/agent/services')).json).toEqual({});
    expect(
      (await call('PUT', '/v1/agent/service/register', body, { 'X-Consul-Token': 'secret' })).status,
    ).toBe(200);
    expect((await call('PUT', '/v1/agent/check/pass/service:web?token=secret')).status).toBe(200);
    expect(
      (await call('GET', '/v1/agent/services', undefined, { Authorization: 'Bearer secret' })).json,
    ).toHaveProperty('web');
  });

  it('restarts on the same port, with or without its state', async () => {
    const d = await start();
    await register({ Name: 'web', Check: { TTL: '1m' } });
    await d.restart();
    expect((await call('GET', '/v1/agent/services')).json).toHaveProperty('web');
    await d.restart({ loseState: true });
    expect((await call('GET', '/v1/agent/services')).json).toEqual({});
    expect((await call('PUT', '/v1/agent/check/pass/service:web')).status).toBe(404);
    expect(d.countRequests((r) => r.path === '/v1/agent/check/pass/service:web')).toBe(1);
  });

  it('lets tests force a check status', async () => {
    const d = await start();
    await register({ Name: 'web', Check: { TTL: '1m', Status: 'passing' } });
    d.setCheckStatus('service:web', 'warning', 'forced');
    expect((await checks())['service:web']).toMatchObject({ Status: 'warning', Output: 'forced' });
  });
});

describe('sessions and KV', () => {
  const createSession = async (body: unknown = {}, headers: Record<string, string> = {}) => {
    const res = await call('PUT', '/v1/session/create', body, headers);
    expect(res.status).toBe(200);
    return res.json.ID as string;
  };
  const kvPut = async (key: string, value: string, query = '') =>
    (await call('PUT', `/v1/kv/${key}${query}`, value)).json as boolean;
  const kvGet = async (key: string) => {
    const res = await call('GET', `/v1/kv/${key}`);
    return res.status === 404 ? undefined : res.json[0];
  };

  it('creates sessions with Consul’s defaults and answers info, renew and destroy as Consul does', async () => {
    await start({ nodeName: 'n1' });
    const id = await createSession({ Name: 'plain' });
    const info = await call('GET', `/v1/session/info/${id}`);
    expect(Number(info.index)).toBeGreaterThan(0);
    expect(info.json).toEqual([
      expect.objectContaining({
        ID: id,
        Name: 'plain',
        Node: 'n1',
        LockDelay: 15e9,
        Behavior: 'release',
        TTL: '',
        NodeChecks: ['serfHealth'],
      }),
    ]);
    const ttl = await createSession({ Name: 'ttl', TTL: '10s', LockDelay: '0s', Behavior: 'delete' });
    const renewed = await call('PUT', `/v1/session/renew/${ttl}`);
    expect(renewed.status).toBe(200);
    expect(renewed.json).toEqual([
      expect.objectContaining({ ID: ttl, TTL: '10s', LockDelay: 0, Behavior: 'delete' }),
    ]);
    // A number below 1000 is seconds, as Consul's FixupLockDelay reads it.
    const numeric = await createSession({ LockDelay: 5 });
    expect((await call('GET', `/v1/session/info/${numeric}`)).json[0].LockDelay).toBe(5e9);
    expect((await call('GET', '/v1/session/list')).json).toHaveLength(3);

    expect((await call('PUT', `/v1/session/destroy/${ttl}`)).json).toBe(true);
    expect((await call('GET', `/v1/session/info/${ttl}`)).json).toEqual([]);
    const gone = await call('PUT', `/v1/session/renew/${ttl}`);
    expect([gone.status, gone.text]).toEqual([404, `Session id '${ttl}' not found`]);
    expect((await call('PUT', '/v1/session/destroy/unknown')).json).toBe(true);
  });

  it('refuses TTLs out of bounds, unknown behaviors and missing or critical checks', async () => {
    await start();
    const short = await call('PUT', '/v1/session/create', { TTL: '5s' });
    expect([short.status, short.text]).toEqual([
      400,
      "Invalid Session TTL '5s', must be between [10s=24h0m0s]",
    ]);
    expect((await call('PUT', '/v1/session/create', { TTL: 'abc' })).status).toBe(400);
    const behavior = await call('PUT', '/v1/session/create', { Behavior: 'keep' });
    expect([behavior.status, behavior.text]).toEqual([500, "Invalid Behavior setting 'keep'"]);
    const missing = await call('PUT', '/v1/session/create', { Checks: ['nope'] });
    expect([missing.status, missing.text]).toEqual([500, "Missing check 'nope' registration"]);
    await register({ Name: 'web', Check: { TTL: '1m' } });
    const critical = await call('PUT', '/v1/session/create', { Checks: ['service:web'] });
    expect([critical.status, critical.text]).toEqual([500, "Check 'service:web' is in critical state"]);
  });

  it('invalidates a session TTL × sessionTtlMultiplier after its last renewal', async () => {
    await start({ sessionTtlMinMs: 100, sessionTtlMultiplier: 2 });
    const id = await createSession({ TTL: '200ms' });
    const created = Date.now();
    // Renewed for a while: still there well past one TTL.
    for (let i = 0; i < 4; i++) {
      await new Promise((resolve) => setTimeout(resolve, 150));
      expect((await call('PUT', `/v1/session/renew/${id}`)).status).toBe(200);
    }
    const renewedAt = Date.now();
    expect(renewedAt - created).toBeGreaterThan(400);
    await vi.waitFor(async () => expect((await call('GET', `/v1/session/info/${id}`)).json).toEqual([]), {
      timeout: 3000,
      interval: 20,
    });
    expect(Date.now() - renewedAt).toBeGreaterThanOrEqual(390);
  });

  it('invalidates a session at once when a check it lists turns critical, releasing its locks', async () => {
    const d = await start();
    // A TTL check of the node, and one of a service: either may be listed.
    // A TTL well above the 150 ms between passes below: a loaded CI machine stretches those sleeps.
    const node = await call('PUT', '/v1/agent/check/register', {
      Name: 'candidate',
      TTL: '1s',
      Status: 'passing',
    });
    expect(node.status).toBe(200);
    await register({ Name: 'web', Check: { TTL: '1m', Status: 'passing' } });
    expect((await checks()).candidate).toMatchObject({ Status: 'passing', ServiceID: '', Type: 'ttl' });
    const s1 = await createSession({ Checks: ['serfHealth', 'candidate'], LockDelay: '0s', TTL: '1h' });
    const s2 = await createSession({ ServiceChecks: [{ ID: 'service:web' }], LockDelay: '0s' });
    expect((await call('GET', `/v1/session/info/${s2}`)).json[0].NodeChecks).toEqual([
      'serfHealth',
      'service:web',
    ]);
    expect(await kvPut('lock', 'x', `?acquire=${s1}`)).toBe(true);
    const held = Number((await call('GET', '/v1/kv/lock')).index);
    // Passed for a while: still valid past its TTL.
    let passedAt = 0;
    for (let i = 0; i < 3; i++) {
      await new Promise((resolve) => setTimeout(resolve, 150));
      passedAt = Date.now();
      expect((await call('PUT', '/v1/agent/check/pass/candidate')).status).toBe(200);
    }
    expect((await call('GET', `/v1/session/info/${s1}`)).json).toHaveLength(1);
    // Then no pass: the TTL runs out, the session goes with it and a blocked reader wakes.
    const woke = await call('GET', `/v1/kv/lock?index=${held}&wait=5s`);
    expect(Date.now() - passedAt).toBeGreaterThanOrEqual(990);
    expect(Date.now() - passedAt).toBeLessThan(4000);
    expect(woke.json[0].Session).toBeUndefined();
    expect((await checks()).candidate).toMatchObject({ Status: 'critical', Output: 'TTL expired' });
    expect((await call('GET', `/v1/session/info/${s1}`)).json).toEqual([]);
    // A node check counts for every service's health.
    expect((await call('GET', '/v1/health/service/web?passing')).json).toEqual([]);
    // Set critical explicitly (a failing probe, `check/fail`): the same. Its lock-delay applies.
    expect(await kvPut('other', 'x', `?acquire=${s2}`)).toBe(true);
    d.setCheckStatus('service:web', 'critical', 'down');
    expect((await call('GET', `/v1/session/info/${s2}`)).json).toEqual([]);
    expect((await kvGet('other')).Session).toBeUndefined();
    // Deregistering a check drops its sessions too.
    expect((await call('PUT', '/v1/agent/check/pass/candidate')).status).toBe(200);
    const s3 = await createSession({ NodeChecks: ['candidate'], LockDelay: '5s' });
    expect(await kvPut('third', 'x', `?acquire=${s3}`)).toBe(true);
    expect((await call('PUT', '/v1/agent/check/deregister/candidate')).status).toBe(200);
    expect((await call('GET', `/v1/session/info/${s3}`)).json).toEqual([]);
    expect(await kvPut('third', 'y', `?acquire=${await createSession({ LockDelay: '0s' })}`)).toBe(false);
    expect((await checks()).candidate).toBeUndefined();
    const unknown = await call('PUT', '/v1/agent/check/deregister/candidate');
    expect(unknown.status).toBe(404);
    // Sessions that do not list the check are left alone.
    expect((await call('GET', '/v1/session/list')).json).toHaveLength(1);
  });

  it('refuses sessions whose check is missing or critical, and validates check registrations', async () => {
    await start({ aclToken: 'secret' });
    const token = { 'X-Consul-Token': 'secret' };
    const registerCheck = (body: unknown, headers: Record<string, string> = token) =>
      call('PUT', '/v1/agent/check/register', body, headers);
    expect((await registerCheck({ TTL: '1s' })).text).toBe('Missing check name');
    expect((await registerCheck({ Name: 'x' })).text).toBe('Invalid check: TTL must be > 0 for TTL checks');
    expect((await registerCheck({ Name: 'x', TTL: '1s', ServiceID: 'nope' })).status).toBe(400);
    const denied = await registerCheck({ Name: 'x', TTL: '1s' }, {});
    expect([denied.status, denied.text]).toEqual([
      403,
      expect.stringMatching(/^Permission denied: anonymous token lacks permission 'node:write'/),
    ]);
    // No Status: critical until passed, like Consul.
    expect((await registerCheck({ Name: 'x', ID: 'cand', TTL: '1m' })).status).toBe(200);
    const create = (body: unknown) => call('PUT', '/v1/session/create', body, token);
    const critical = await create({ Checks: ['serfHealth', 'cand'] });
    expect([critical.status, critical.text]).toEqual([500, "Check 'cand' is in critical state"]);
    const missing = await create({ NodeChecks: ['serfHealth', 'gone'] });
    expect([missing.status, missing.text]).toEqual([500, "Missing check 'gone' registration"]);
    expect((await call('PUT', '/v1/agent/check/pass/cand', undefined, {})).status).toBe(403);
    expect((await call('PUT', '/v1/agent/check/pass/cand', undefined, token)).status).toBe(200);
    expect((await create({ Checks: ['serfHealth', 'cand'] })).status).toBe(200);
    const listed = (await call('GET', '/v1/agent/checks', undefined, token)).json;
    expect(listed.cand).toMatchObject({ CheckID: 'cand', Name: 'x', Status: 'passing', ServiceID: '' });
  });

  it('stores values with indexes and flags, answers 404 for missing keys, and honours ?cas=', async () => {
    await start();
    const missing = await call('GET', '/v1/kv/a/b');
    expect(missing.status).toBe(404);
    expect(Number(missing.index)).toBeGreaterThan(0);
    expect(await kvPut('a/b', 'hello', '?flags=42')).toBe(true);
    const entry = await kvGet('a/b');
    expect(entry).toEqual({
      LockIndex: 0,
      Key: 'a/b',
      Flags: 42,
      Value: Buffer.from('hello').toString('base64'),
      CreateIndex: entry.CreateIndex,
      ModifyIndex: entry.CreateIndex,
    });
    expect((await call('GET', '/v1/kv/a/b?raw')).text).toBe('hello');
    expect(await kvPut('a/b', 'x', '?cas=0')).toBe(false);
    expect(await kvPut('a/b', 'x', `?cas=${entry.ModifyIndex + 100}`)).toBe(false);
    expect(await kvPut('a/b', 'x', `?cas=${entry.ModifyIndex}`)).toBe(true);
    const updated = await kvGet('a/b');
    expect(updated.ModifyIndex).toBeGreaterThan(entry.ModifyIndex as number);
    expect(updated.CreateIndex).toBe(entry.CreateIndex);
    await kvPut('a/c', '');
    expect((await kvGet('a/c')).Value).toBeNull();
    expect((await call('GET', '/v1/kv/a/?recurse')).json.map((e: any) => e.Key)).toEqual(['a/b', 'a/c']);
    expect((await call('DELETE', '/v1/kv/a/b')).json).toBe(true);
    expect(await kvGet('a/b')).toBeUndefined();
    expect((await call('DELETE', '/v1/kv/a/?recurse')).json).toBe(true);
    expect(await kvGet('a/c')).toBeUndefined();
  });

  it('locks a key with ?acquire= for one session at a time, until ?release=', async () => {
    await start();
    const s1 = await createSession({ LockDelay: '0s' });
    const s2 = await createSession({ LockDelay: '0s' });
    expect(await kvPut('lock', 'one', `?acquire=${s1}`)).toBe(true);
    expect(await kvGet('lock')).toMatchObject({
      Session: s1,
      LockIndex: 1,
      Value: Buffer.from('one').toString('base64'),
    });
    expect(await kvPut('lock', 'two', `?acquire=${s2}`)).toBe(false);
    // The holder may acquire again (a value update, not a new acquisition).
    expect(await kvPut('lock', 'one again', `?acquire=${s1}`)).toBe(true);
    expect(await kvGet('lock')).toMatchObject({ Session: s1, LockIndex: 1 });
    // A plain write keeps the holder.
    expect(await kvPut('lock', 'plain')).toBe(true);
    expect((await kvGet('lock')).Session).toBe(s1);
    expect(await kvPut('lock', '', `?release=${s2}`)).toBe(false);
    expect(await kvPut('lock', 'free', `?release=${s1}`)).toBe(true);
    const released = await kvGet('lock');
    expect(released.Session).toBeUndefined();
    expect(released.LockIndex).toBe(1);
    expect(await kvPut('lock', 'two', `?acquire=${s2}`)).toBe(true);
    expect(await kvGet('lock')).toMatchObject({ Session: s2, LockIndex: 2 });
    const invalid = await call('PUT', '/v1/kv/lock?acquire=nope', 'x');
    expect([invalid.status, invalid.text]).toEqual([500, 'invalid session "nope"']);
  });

  it('releases (or deletes) the locks of an invalidated session and applies its lock-delay', async () => {
    const d = await start();
    const delayed = await createSession({ LockDelay: '400ms' });
    const other = await createSession({ LockDelay: '0s' });
    expect(await kvPut('held', 'x', `?acquire=${delayed}`)).toBe(true);
    const before = await kvGet('held');
    expect(d.invalidateSession(delayed)).toBe(true);
    const after = await kvGet('held');
    expect(after.Session).toBeUndefined();
    expect(after.ModifyIndex).toBeGreaterThan(before.ModifyIndex as number);
    const invalidatedAt = Date.now();
    expect(await kvPut('held', 'y', `?acquire=${other}`)).toBe(false);
    await vi.waitFor(async () => expect(await kvPut('held', 'y', `?acquire=${other}`)).toBe(true), {
      timeout: 3000,
      interval: 20,
    });
    expect(Date.now() - invalidatedAt).toBeGreaterThanOrEqual(390);
    // An explicit release applies no lock-delay.
    expect(await kvPut('held', 'y', `?release=${other}`)).toBe(true);
    const third = await createSession({ LockDelay: '0s' });
    expect(await kvPut('held', 'z', `?acquire=${third}`)).toBe(true);

    const ephemeral = await createSession({ Behavior: 'delete' });
    expect(await kvPut('mine', 'x', `?acquire=${ephemeral}`)).toBe(true);
    await call('PUT', `/v1/session/destroy/${ephemeral}`);
    expect(await kvGet('mine')).toBeUndefined();
  });

  it('holds ?index= reads of a key until it changes, so a follower waits for the lock to be released', async () => {
    await start();
    const holder = await createSession({ LockDelay: '0s' });
    await kvPut('lock', 'x', `?acquire=${holder}`);
    const first = await call('GET', '/v1/kv/lock');
    const index = Number(first.index);
    expect(index).toBe(first.json[0].ModifyIndex);
    const t0 = Date.now();
    const timedOut = await call('GET', `/v1/kv/lock?index=${index}&wait=300ms`);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
    expect(timedOut.index).toBe(String(index));

    const pending = call('GET', `/v1/kv/lock?index=${index}&wait=10s`);
    // Other keys changing does not end the wait of a key that exists.
    await kvPut('other', 'y');
    await call('PUT', `/v1/session/destroy/${holder}`);
    const woke = await pending;
    expect(Number(woke.index)).toBeGreaterThan(index);
    expect(woke.json[0].Session).toBeUndefined();
  });

  it('checks key and session permissions and keeps KV across agent restarts', async () => {
    const d = await start({ aclToken: 'secret' });
    const token = { 'X-Consul-Token': 'secret' };
    const denied = await call('PUT', '/v1/session/create', {});
    expect(denied.status).toBe(403);
    expect(denied.text).toMatch(
      /^Permission denied: anonymous token lacks permission 'session:write' on "consul-double"/,
    );
    const put = await call('PUT', '/v1/kv/k', 'v');
    expect(put.status).toBe(403);
    expect(put.text).toMatch(/lacks permission 'key:write' on "k"/);
    expect((await call('PUT', '/v1/kv/k', 'v', token)).json).toBe(true);
    expect((await call('GET', '/v1/kv/k')).status).toBe(403);
    const id = (await call('PUT', '/v1/session/create', {}, token)).json.ID as string;
    expect((await call('GET', `/v1/session/info/${id}`)).json).toEqual([]);
    expect((await call('GET', `/v1/session/info/${id}`, undefined, token)).json).toHaveLength(1);
    await d.restart({ loseState: true });
    // The first request may still go out on a pooled connection the restart closed.
    await vi.waitFor(async () => expect((await call('GET', '/v1/kv/k', undefined, token)).status).toBe(200));
    expect((await call('GET', `/v1/session/info/${id}`, undefined, token)).json).toHaveLength(1);
  });
});
