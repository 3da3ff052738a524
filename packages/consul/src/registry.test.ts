/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-unsafe-argument -- tests read untyped agent JSON */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startConsulDouble } from '@registrar/consul-double';
import type { ConsulDouble, ConsulDoubleOptions } from '@registrar/consul-double';
import { NodeIdConflictError, RegistryConnectionError, RegistryRejectedError } from '@registrar/core';
import { service as testService } from '@registrar/core/testing';
import type { LivenessLoss, Logger, Registry, RegistryEvent, Service } from '@registrar/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createConsulRegistry } from './index.js';
import type { ConsulRegistryOptions } from './index.js';

let double: ConsulDouble | undefined;
const registries: Registry[] = [];
const children: ChildProcess[] = [];

afterEach(async () => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  for (const r of registries.splice(0)) await r.close().catch(() => undefined);
  await double?.close();
  double = undefined;
});

async function start(options: ConsulDoubleOptions = {}): Promise<ConsulDouble> {
  double = await startConsulDouble(options);
  return double;
}

function registry(options: Partial<ConsulRegistryOptions> = {}): Registry {
  const r = createConsulRegistry({ nodeId: 'node-a', url: double!.url, ttl: 5, ...options });
  registries.push(r);
  return r;
}

/** Core's test service as these tests' expected agent documents spell it out. */
const service = (overrides: Partial<Service> = {}): Service =>
  testService({ node: 'node-a', tags: ['blue'], meta: { version: '1.2' }, ...overrides });

/** Event types in order, a run of heartbeat failures counted once (how many fit in it depends on timing). */
function distinctRuns(events: readonly RegistryEvent[]): string[] {
  return events
    .map((e) => e.type)
    .filter((type, i, all) => type !== 'heartbeat-failed' || all[i - 1] !== type);
}

async function get(path: string): Promise<any> {
  const res = await fetch(`${double!.url}${path}`);
  return res.json();
}

const passingIds = async (name: string): Promise<string[]> =>
  ((await get(`/v1/health/service/${name}?passing`)) as any[]).map((e) => e.Service.ID).sort();

function spyLogger(): Logger & { warnings: { obj: any; msg: string }[] } {
  const warnings: { obj: any; msg: string }[] = [];
  const noop = () => undefined;
  const logger = {
    warnings,
    trace: noop,
    debug: noop,
    info: noop,
    error: noop,
    warn: (obj: any, msg?: string) => void warnings.push({ obj, msg: msg ?? '' }),
    child: () => logger,
  };
  return logger;
}

describe('createConsulRegistry', () => {
  it('registers, lists and deregisters with owner meta, a bridge and alias liveness', async () => {
    await start();
    const r = registry();
    expect(r).toMatchObject({
      backend: 'consul',
      nodeId: 'node-a',
      mirrorsHealth: true,
      target: double!.url,
    });
    const svc = service();
    await r.register(svc);

    const services = await get('/v1/agent/services');
    expect(services['registrar:node-a']).toMatchObject({
      Service: 'registrar',
      Meta: { 'registrar-node': 'node-a' },
    });
    expect(services[svc.id]).toMatchObject({
      Service: 'web',
      Address: '10.0.0.5',
      Port: 8080,
      Tags: ['blue'],
      Meta: {
        'registrar-node': 'node-a',
        'registrar-container-id': 'c0ffee',
        'registrar-container-name': 'web-1',
        version: '1.2',
      },
    });
    const checks = await get('/v1/agent/checks');
    expect(checks[`service:${svc.id}:1`]).toMatchObject({ Type: 'alias', Status: 'passing' });
    expect(checks[`service:${svc.id}:2`]).toMatchObject({ Type: 'ttl', Status: 'passing' });
    expect(await passingIds('web')).toEqual([svc.id]);

    const listed = await r.list();
    expect(listed).toEqual([{ id: svc.id, name: 'web', fingerprint: r.fingerprint(svc) }]);

    await r.deregister(svc.id);
    await r.deregister(svc.id); // 404 is done
    expect(await r.list()).toEqual([]);
  });

  it('makes exactly one request per heartbeat interval for 1, 100 and 1000 services', async () => {
    const d = await start();
    const counts: Record<number, number> = {};
    for (const n of [1, 100, 1000]) {
      const nodeId = `count-${n}`;
      const r = registry({ nodeId, ttl: 0.9, ttlRefresh: 0.3 });
      await r.list();
      for (let i = 0; i < n; i++) {
        await r.register(
          service({ id: `${nodeId}:c${i}:80`, container: { id: `id${i}`, name: `c${i}` }, node: nodeId }),
        );
      }
      const heartbeat = `/v1/agent/check/pass/service:registrar:${nodeId}`;
      const beats = () => d.countRequests((q) => q.path === heartbeat);
      // Measure between two heartbeats, three intervals apart.
      const first = beats();
      await vi.waitFor(() => expect(beats()).toBeGreaterThan(first), { timeout: 3000, interval: 5 });
      const since = d.requests.length;
      const startBeats = beats();
      await vi.waitFor(() => expect(beats()).toBe(startBeats + 3), { timeout: 5000, interval: 5 });
      const window = d.requests.slice(since);
      expect(window.every((q) => q.path === heartbeat)).toBe(true);
      counts[n] = window.length / 3;
      await r.close();
    }
    expect(counts).toEqual({ 1: 1, 100: 1, 1000: 1 });
  });

  it('mirrors Docker health into the check with one request per transition, visible through ?passing', async () => {
    const d = await start();
    const r = registry();
    const svc = service();
    await r.list();
    await r.register(service({ health: 'warning', healthOutput: 'starting' }));
    expect(await passingIds('web')).toEqual([]);
    const checkId = `service:${svc.id}:2`;
    expect((await get('/v1/agent/checks'))[checkId]).toMatchObject({ Status: 'warning', Output: 'starting' });

    const before = d.requests.length;
    await r.register(svc);
    expect(await passingIds('web')).toEqual([svc.id]);
    await r.register(service({ health: 'critical', healthOutput: 'curl: (7) Failed to connect' }));
    expect(await passingIds('web')).toEqual([]);
    expect((await get('/v1/agent/checks'))[checkId]).toMatchObject({
      Status: 'critical',
      Output: 'curl: (7) Failed to connect',
    });
    const writes = d.requests
      .slice(before)
      .filter((q) => q.path.startsWith('/v1/agent/check/update') || q.path.startsWith('/v1/agent/service/'));
    expect(writes.map((q) => q.path)).toEqual([
      `/v1/agent/check/update/${checkId}`,
      `/v1/agent/check/update/${checkId}`,
    ]);
    // The unhealthy service stays registered, and list() reports its state.
    expect((await r.list())[0].fingerprint).toBe(
      r.fingerprint(service({ health: 'critical', healthOutput: 'curl: (7) Failed to connect' })),
    );
  });

  it('adds SERVICE_CHECK_* checks and warns once, naming container and label, for invalid ones', async () => {
    await start();
    const logger = spyLogger();
    const r = registry({ logger });
    const svc = service({
      checks: { http: '/health', interval: '5s', timeout: '2s', tcp: 'true', deregister_after: '10m' },
    });
    await r.register(svc);
    const checks = await get('/v1/agent/checks');
    expect(checks[`service:${svc.id}:3`]).toMatchObject({ Type: 'http', Interval: '5s', Timeout: '2s' });
    expect(checks[`service:${svc.id}:4`]).toMatchObject({ Type: 'tcp' });
    expect(logger.warnings).toEqual([]);

    const bad = service({
      name: 'api',
      container: { id: 'bad', name: 'api-1' },
      checks: { http: '/health', interval: '10', ttl: 'soon', initial_status: 'passing' },
    });
    await r.register(bad);
    await r.register(bad);
    expect(logger.warnings).toHaveLength(2);
    expect(logger.warnings[0].obj).toMatchObject({ container: 'api-1', label: 'SERVICE_CHECK_INTERVAL' });
    expect(logger.warnings[0].msg).toContain('api-1');
    expect(logger.warnings[0].msg).toContain('SERVICE_CHECK_INTERVAL');
    expect(logger.warnings[1].obj).toMatchObject({ label: 'SERVICE_CHECK_TTL' });
    // The service is still registered, with only the adapter's own checks.
    const apiChecks = Object.keys(await get('/v1/agent/checks')).filter((id) =>
      id.startsWith(`service:${bad.id}`),
    );
    expect(apiChecks.sort()).toEqual([`service:${bad.id}:1`, `service:${bad.id}:2`]);
  });

  it('sends EnableTagOverride and Weights as fields, and a resync sees no drift, a catalog tag edit included', async () => {
    const d = await start();
    const r = registry();
    const svc = service({ meta: { version: '1.2', enable_tag_override: 'true', weights_passing: '5' } });
    await r.register(svc);
    const stored = await get(`/v1/agent/service/${encodeURIComponent(svc.id)}`);
    expect(stored).toMatchObject({
      EnableTagOverride: true,
      Weights: { Passing: 5, Warning: 1 },
      Tags: ['blue'],
    });
    expect(Object.keys(stored.Meta)).not.toContain('weights_passing');
    expect(Object.keys(stored.Meta)).not.toContain('enable_tag_override');

    // Someone retags the service in the catalog; with EnableTagOverride the agent takes the edit over.
    expect(d.overrideCatalogTags(svc.id, ['edited'])).toBe(true);
    const again = registry();
    const [entry] = await again.list();
    expect(entry!.fingerprint).toBe(again.fingerprint(svc));
    // A changed weight is drift.
    const heavier = service({ meta: { ...svc.meta, weights_passing: '6' } });
    expect(entry!.fingerprint).not.toBe(again.fingerprint(heavier));
    await again.register(heavier);
    expect((await again.list())[0]!.fingerprint).toBe(again.fingerprint(heavier));
    expect((await get(`/v1/agent/service/${encodeURIComponent(svc.id)}`)).Weights).toEqual({
      Passing: 6,
      Warning: 1,
    });
  });

  it('refuses Docker checks on an agent without enable_script_checks with one RegistryRejectedError', async () => {
    await start();
    const r = registry();
    const err = await r.register(service({ checks: { docker: '/bin/check.sh' } })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryRejectedError);
    expect((err as Error).message).toContain('Scripts are disabled on this agent from remote calls');
    expect((err as Error).message).toContain('enable script checks on the agent, or drop the container');
  });

  it('registers a Docker check the agent would run in the container', async () => {
    const d = await start({ enableScriptChecks: true });
    const r = registry();
    const svc = service({ checks: { docker: '/bin/check.sh $SERVICE_PORT', interval: '30s' } });
    await r.register(svc);
    const checks = await get('/v1/agent/checks');
    expect(checks[`service:${svc.id}:3`]).toMatchObject({ Type: 'docker', Interval: '30s' });
    expect(d.checkDefinition(`service:${svc.id}:3`)).toMatchObject({
      dockerContainerId: svc.container!.id,
      args: ['/bin/check.sh', '8080'],
      intervalMs: 30_000,
    });
    const [entry] = await registry().list();
    expect(entry!.fingerprint).toBe(r.fingerprint(svc));
  });

  it('makes no register calls when a resync finds everything unchanged', async () => {
    const d = await start();
    const r = registry();
    const desired = [
      service(),
      service({ name: 'api', container: { id: 'x', name: 'api-1' }, health: 'critical', healthOutput: 'no' }),
    ];
    for (const s of desired) await r.register(s);
    const indexes = async () => {
      const entries = await Promise.all(
        ['web', 'api'].map(async (name) => {
          const res = await fetch(`${d.url}/v1/health/service/${name}`);
          return (await res.json()) as {
            Service: { ID: string; CreateIndex: number; ModifyIndex: number };
          }[];
        }),
      );
      return entries.flat().map(({ Service: s }) => `${s.ID} ${s.CreateIndex}/${s.ModifyIndex}`);
    };
    const stored = await indexes();
    // A second adapter (a restarted bridge) reconciles from what the agent holds.
    const again = registry();
    const before = d.requests.length;
    const owned = new Map((await again.list()).map((e) => [e.id, e.fingerprint]));
    for (const s of desired) if (owned.get(s.id) !== again.fingerprint(s)) await again.register(s);
    const writes = d.requests
      .slice(before)
      .filter((q) => q.path !== '/v1/agent/services' && q.path !== '/v1/agent/checks');
    // The one write revives the bridge service, whose check the adopted services alias; they stay untouched.
    expect(writes.filter((q) => !q.path.includes('/check/pass/')).map((q) => q.path)).toEqual([
      '/v1/agent/service/register',
    ]);
    expect(await indexes()).toEqual(stored);
    expect(stored).toHaveLength(2);
  });

  it('re-registers the bridge and emits lost$ when the agent forgets its state', async () => {
    const d = await start();
    const r = registry({ ttl: 1.5, ttlRefresh: 0.1 });
    const losses: LivenessLoss[] = [];
    r.lost$.subscribe((l) => losses.push(l));
    const svc = service();
    await r.register(svc);
    await d.restart({ loseState: true });
    await vi.waitFor(() => expect(losses).toHaveLength(1), { timeout: 3000, interval: 20 });
    expect(losses[0].reason).toContain('registrar:node-a');
    expect(await r.list()).toEqual([]);
    // What the reconciler does on lost$: register everything again.
    await r.register(svc);
    expect(await passingIds('web')).toEqual([svc.id]);
    expect(await passingIds('registrar')).toEqual(['registrar:node-a']);
  });

  it('events$: failed TTL passes while the agent is unreachable, then recovered once it answers again', async () => {
    const d = await start();
    const r = registry({ ttl: 5, ttlRefresh: 0.1, requestTimeoutMs: 1000 });
    const events: RegistryEvent[] = [];
    r.events$.subscribe((e) => events.push(e));
    await r.register(service());
    await d.stop();
    await vi.waitFor(() => expect(events.map((e) => e.type)).toContain('heartbeat-failed'), {
      timeout: 3000,
      interval: 20,
    });
    await d.start();
    await vi.waitFor(() => expect(events.at(-1)?.type).toBe('recovered'), { timeout: 3000, interval: 20 });
    expect(distinctRuns(events)).toEqual(['heartbeat-failed', 'recovered']);
    expect(events[0]).toMatchObject({ type: 'heartbeat-failed', error: expect.any(RegistryConnectionError) });
    expect(await passingIds('registrar')).toEqual(['registrar:node-a']);
  });

  it('events$: failed TTL passes, then liveness-lost (with lost$) when the agent comes back without our state', async () => {
    const d = await start();
    const r = registry({ ttl: 5, ttlRefresh: 0.1, requestTimeoutMs: 1000 });
    const events: RegistryEvent[] = [];
    const losses: LivenessLoss[] = [];
    r.events$.subscribe((e) => events.push(e));
    r.lost$.subscribe((l) => losses.push(l));
    await r.register(service());
    await d.stop();
    await vi.waitFor(() => expect(events.map((e) => e.type)).toContain('heartbeat-failed'), {
      timeout: 3000,
      interval: 20,
    });
    await d.restart({ loseState: true });
    await vi.waitFor(() => expect(losses).toHaveLength(1), { timeout: 3000, interval: 20 });
    expect(distinctRuns(events)).toEqual(['heartbeat-failed', 'liveness-lost']);
    expect(events.at(-1)).toEqual({ type: 'liveness-lost', reason: losses[0].reason });
  });

  it('rejects with one clear RegistryRejectedError when the ACL token is missing or wrong', async () => {
    await start({ aclToken: 'root' });
    const missing = registry();
    const err = await missing.register(service()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryRejectedError);
    expect((err as Error).message).toMatch(
      /^Consul ACL token rejected \(403: Permission denied.*no token is configured; set CONSUL_HTTP_TOKEN/,
    );
    const wrong = registry({ token: 'not-root' });
    const err2 = await wrong.list().catch((e: unknown) => e);
    expect(err2).toBeInstanceOf(RegistryRejectedError);
    expect((err2 as Error).message).toContain(
      'Consul ACL token rejected (403: ACL not found): set CONSUL_HTTP_TOKEN',
    );
    expect((err2 as Error).message).not.toContain('not-root');
    const right = registry({ token: 'root' });
    await right.register(service());
    expect(await right.list()).toHaveLength(1);
  });

  it('maps an unreachable agent to RegistryConnectionError', async () => {
    const d = await start();
    const url = d.url;
    await d.close();
    double = undefined;
    const r = createConsulRegistry({ nodeId: 'n', url, requestTimeoutMs: 2000 });
    registries.push(r);
    await expect(r.list()).rejects.toBeInstanceOf(RegistryConnectionError);
  });

  it('never touches another node’s services or bridge', async () => {
    await start();
    const a = registry({ nodeId: 'node-a' });
    const b = registry({ nodeId: 'node-b' });
    const sa = service();
    const sb = service({ id: 'node-b:web-1:80', node: 'node-b' });
    await a.register(sa);
    await b.register(sb);
    expect((await a.list()).map((e) => e.id)).toEqual([sa.id]);
    expect((await b.list()).map((e) => e.id)).toEqual([sb.id]);
    await a.close({ deregister: true });
    const left = Object.keys(await get('/v1/agent/services')).sort();
    expect(left).toEqual(['node-b:web-1:80', 'registrar:node-b']);
    expect(await passingIds('web')).toEqual([sb.id]);
  });

  it('reaps every service of a bridge killed with SIGKILL after TTL + deregister-after', async () => {
    await start({ reapIntervalMs: 100, minDeregisterAfterMs: 500 });
    const dist = pathToFileURL(fileURLToPath(new URL('../dist/index.js', import.meta.url))).href;
    const script = `
      import { createConsulRegistry } from ${JSON.stringify(dist)};
      const r = createConsulRegistry({ nodeId: 'doomed', url: process.argv[1], ttl: 1, ttlRefresh: 0.25, deregisterAfter: 0.5 });
      for (let i = 0; i < 5; i++) {
        await r.register({ id: 'doomed:c' + i + ':80', name: 'doomed', address: '10.0.0.9', port: 9000 + i, protocol: 'tcp',
          containerPort: 80, tags: [], meta: {}, node: 'doomed', container: { id: 'id' + i, name: 'c' + i },
          health: 'passing', healthOutput: '', checks: {} });
      }
      process.stdout.write('ready\\n');
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, double!.url], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(child);
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
      child.once('exit', (code) => reject(new Error(`holder exited early with ${code}`)));
    });
    expect(await passingIds('doomed')).toHaveLength(5);
    // Still alive well past its TTL while the process heartbeats.
    await vi.waitFor(
      () =>
        expect(double!.countRequests((q) => q.path.endsWith('service:registrar:doomed'))).toBeGreaterThan(6),
      {
        timeout: 5000,
        interval: 50,
      },
    );
    expect(await passingIds('doomed')).toHaveLength(5);

    const killedAt = Date.now();
    child.kill('SIGKILL');
    await vi.waitFor(async () => expect(await passingIds('doomed')).toEqual([]), {
      timeout: 5000,
      interval: 50,
    });
    await vi.waitFor(async () => expect(Object.keys(await get('/v1/agent/services'))).toEqual([]), {
      timeout: 10000,
      interval: 50,
    });
    // At least TTL (1s) minus one heartbeat interval (0.25s), plus the clamped deregister-after (0.5s).
    expect(Date.now() - killedAt).toBeGreaterThanOrEqual(1200);
  });

  it('passes ns and partition through on every request', async () => {
    const d = await start();
    const r = registry({ namespace: 'team', partition: 'p1' });
    await r.register(service());
    expect(d.requests.every((q) => q.query.includes('ns=team') && q.query.includes('partition=p1'))).toBe(
      true,
    );
    expect(await r.list()).toHaveLength(1);
  });

  it('stops heartbeating on close without deregistering', async () => {
    const d = await start();
    const r = registry({ ttl: 0.6, ttlRefresh: 0.1 });
    await r.register(service());
    await r.close();
    const count = d.requests.length;
    // The bridge TTL then runs out on its own: the service leaves ?passing but stays registered.
    await vi.waitFor(async () => expect(await passingIds('web')).toEqual([]), {
      timeout: 3000,
      interval: 50,
    });
    expect(d.requests.filter((q) => q.path.includes('/check/pass/')).length).toBe(
      d.requests.slice(0, count).filter((q) => q.path.includes('/check/pass/')).length,
    );
    expect(Object.keys(await get('/v1/agent/services'))).toContain(service().id);
  });
});

describe('consul registry: dual-stack services', () => {
  it('registers TaggedAddresses lan_ipv4 and lan_ipv6, and lists the service back without drift', async () => {
    await start();
    const r = registry();
    const svc = service({
      dualStack: { ipv4: { address: '10.0.0.5', port: 8080 }, ipv6: { address: 'fd00::5', port: 8081 } },
    });
    await r.register(svc);
    const services = await get('/v1/agent/services');
    expect(services[svc.id].TaggedAddresses).toEqual({
      lan_ipv4: { Address: '10.0.0.5', Port: 8080 },
      lan_ipv6: { Address: 'fd00::5', Port: 8081 },
      // What the agent adds itself from Address.
      wan_ipv4: { Address: '10.0.0.5', Port: 8080 },
    });
    const [health] = await get('/v1/health/service/web?passing');
    expect(health.Service.TaggedAddresses.lan_ipv6).toEqual({ Address: 'fd00::5', Port: 8081 });
    expect(await r.list()).toEqual([{ id: svc.id, name: 'web', fingerprint: r.fingerprint(svc) }]);
    // The same service without its IPv6 side is a change to write, and back.
    const { dualStack: _, ...single } = svc;
    expect(r.fingerprint(single)).not.toBe(r.fingerprint(svc));
    await r.register(single);
    expect((await get('/v1/agent/services'))[svc.id].TaggedAddresses).not.toHaveProperty('lan_ipv6');
    expect(await r.list()).toEqual([{ id: svc.id, name: 'web', fingerprint: r.fingerprint(single) }]);
  });
});

describe('consul registry: the writing engine', () => {
  const stampsOf = async () => {
    const services = (await get('/v1/agent/services')) as Record<string, any>;
    const health = (await get('/v1/health/service/web')) as any[];
    return {
      meta: Object.fromEntries(Object.entries(services).map(([id, s]) => [id, s.Meta])),
      index: health.map((e) => `${e.Service.ID}:${e.Service.CreateIndex}/${e.Service.ModifyIndex}`),
    };
  };

  it('records it in Meta and lists it; a clone with the same node id touches nothing of the other engine', async () => {
    await start();
    const ours = registry({ engineId: 'ENGINE-A' });
    const web = service();
    await ours.list();
    await ours.register(web);
    expect(ours.engineId).toBe('ENGINE-A');
    const services = (await get('/v1/agent/services')) as Record<string, any>;
    expect(services[web.id].Meta).toMatchObject({
      'registrar-node': 'node-a',
      'registrar-engine': 'ENGINE-A',
    });
    expect(services['registrar:node-a'].Meta['registrar-engine']).toBe('ENGINE-A');
    expect((await ours.list()).map((e) => [e.id, e.engine])).toEqual([[web.id, 'ENGINE-A']]);
    const before = await stampsOf();

    // Its bridge service alone is enough to tell: the clone's list refuses, and registers no bridge of its own.
    const clone = registry({ engineId: 'ENGINE-B' });
    const refused = await clone.list().catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(NodeIdConflictError);
    expect((refused as NodeIdConflictError).engine).toBe('ENGINE-A');
    await clone.close({ deregister: true });
    expect(await stampsOf()).toEqual(before);
  });

  it('lists another engine’s services without reviving them, and refuses to register or remove them', async () => {
    await start();
    const web = service();
    const other = registry({ engineId: 'ENGINE-A' });
    await other.register(web);
    // The other bridge's service is gone (say, its bridge deregistered it); its services are still there.
    await fetch(`${double!.url}/v1/agent/service/deregister/registrar:node-a`, { method: 'PUT' });
    const before = await stampsOf();
    const clone = registry({ engineId: 'ENGINE-B' });
    expect((await clone.list()).map((e) => [e.id, e.engine])).toEqual([[web.id, 'ENGINE-A']]);
    const refused = await clone.register({ ...web, port: 1 }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(NodeIdConflictError);
    await clone.deregister(web.id);
    await clone.close({ deregister: true });
    expect(await stampsOf()).toEqual(before);
  });

  it('a restart after expiry lists what the agent holds once the bridge is revived, not what its reaper then removed', async () => {
    // The reaper runs at the worst moment: after the restarted bridge read the agent, before it revived the check.
    let reapBeforeRevival = false;
    const d = await start({
      onRequest: (q) => {
        if (reapBeforeRevival && q.method === 'PUT') {
          reapBeforeRevival = false;
          d.reap();
        }
      },
      reapIntervalMs: 3_600_000,
      minDeregisterAfterMs: 0,
    });
    const web = service();
    const killed = registry({ ttl: 0.3, ttlRefresh: 0.1, deregisterAfter: 0.001 });
    await killed.register(web);
    await killed.close();
    await vi.waitFor(async () => expect(await passingIds('web')).toEqual([]), {
      timeout: 3000,
      interval: 20,
    });

    reapBeforeRevival = true;
    const restarted = registry({ ttl: 0.3, ttlRefresh: 0.1, deregisterAfter: 0.001 });
    expect(await restarted.list()).toEqual([]);
    expect(reapBeforeRevival).toBe(false);
    // What the reconciler then does with an entry it does not hold: register it.
    await restarted.register(web);
    expect(await passingIds('web')).toEqual([web.id]);
  });

  it('adopts services that record no engine (registered by an older version)', async () => {
    await start();
    const web = service();
    const old = registry();
    await old.register(web);
    const upgraded = registry({ engineId: 'ENGINE-A' });
    const listed = await upgraded.list();
    expect(listed.map((e) => e.id)).toEqual([web.id]);
    expect(listed[0]!.engine).toBeUndefined();
    expect(listed[0]!.fingerprint).not.toBe(upgraded.fingerprint(web));
    await upgraded.register(web);
    const services = (await get('/v1/agent/services')) as Record<string, any>;
    expect(services[web.id].Meta['registrar-engine']).toBe('ENGINE-A');
  });
});
