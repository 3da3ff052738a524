/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-unsafe-argument -- tests read untyped agent JSON */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startConsulDouble } from '@registrar/consul-double';
import type { ConsulDouble } from '@registrar/consul-double';
import { silentLogger } from '@registrar/core';
import { Reconciler } from '@registrar/core/internal';
import type { Leadership, Registry, RegistryOp, Service } from '@registrar/core';
import { service as testService, until } from '@registrar/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { createConsulRegistry } from './index.js';
import type { ConsulRegistryOptions } from './index.js';

const NODE = 'swarm-c1';
const KEY = `registrar/election/${NODE}`;

let double: ConsulDouble | undefined;
const registries: Registry[] = [];
const children: ChildProcess[] = [];

afterEach(async () => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  for (const r of registries.splice(0)) await r.close().catch(() => undefined);
  await double?.close();
  double = undefined;
});

// Session TTL 1 s: the double (like Consul) invalidates an unrenewed session 2 × TTL later.
async function start(): Promise<ConsulDouble> {
  double = await startConsulDouble({ sessionTtlMinMs: 0, reapIntervalMs: 100, minDeregisterAfterMs: 500 });
  return double;
}

interface Candidate {
  registry: Registry;
  leadership: Leadership;
  /** Every value leading$ emitted, in order. */
  seen: boolean[];
  /** method + path of every request this candidate sent. */
  sent: string[];
  name: string;
}

/** method + path, marked ` (election)` when it is about a candidate's own election service and check. */
function label(url: string, init: { method: string; body?: string }): string {
  const { pathname } = new URL(url);
  const election =
    pathname.includes('/registrar-election:') || !!init.body?.includes('"registrar-role":"election"');
  return `${init.method} ${pathname}${election ? ' (election)' : ''}`;
}

function candidate(name: string, options: Partial<ConsulRegistryOptions> = {}): Candidate {
  const sent: string[] = [];
  const registry = createConsulRegistry({
    nodeId: NODE,
    engineId: NODE,
    url: double!.url,
    ttl: 1,
    ttlRefresh: 0.25,
    electionTtl: 1,
    fetch: (url, init) => {
      sent.push(label(url, init));
      return fetch(url, init);
    },
    ...options,
  });
  registries.push(registry);
  const leadership = registry.elect!({ candidate: name });
  const seen: boolean[] = [];
  leadership.leading$.subscribe((v) => seen.push(v));
  return { registry, leadership, seen, sent, name };
}

const last = (c: Candidate) => c.seen[c.seen.length - 1];
const leaders = (cs: Candidate[]) => cs.filter((c) => last(c) === true);

const svc = (i: number): Service =>
  testService({
    node: NODE,
    id: `${NODE}:web.${i}:80`,
    port: 8000 + i,
    container: { id: `t${i}`, name: `web.${i}` },
  });

async function get(path: string): Promise<any> {
  const res = await fetch(`${double!.url}${path}`);
  return res.status === 404 ? undefined : res.json();
}
const passingIds = async (name: string): Promise<string[]> =>
  ((await get(`/v1/health/service/${name}?passing`)) as any[]).map((e) => e.Service.ID).sort();
const holder = async () => ((await get(`/v1/kv/${KEY}`)) as any[] | undefined)?.[0];
// Writes of services (the bridge's included), not of a candidate's own election service.
const writes = (c: Candidate) =>
  c.sent.filter((r) => r.startsWith('PUT /v1/agent/service/') && !r.endsWith(' (election)'));
/** The candidate checks on the agent, by candidate name. */
const electionChecks = async (): Promise<Record<string, any>> => {
  const all = Object.values((await get('/v1/agent/checks')) as Record<string, any>);
  return Object.fromEntries(
    all
      .filter((c) => c.ServiceName === 'registrar-election')
      .map((c) => [(c.ServiceID as string).split(':')[2], c]),
  );
};

describe('Consul election', () => {
  it('elects exactly one of three candidates; leading$ gives false first, then changes only', async () => {
    await start();
    const cs = [candidate('m1'), candidate('m2'), candidate('m3')];
    await until('one leader', () => leaders(cs).length === 1);
    const [leader] = leaders(cs);
    for (const c of cs) expect(c.seen[0]).toBe(false);
    expect(leader!.seen).toEqual([false, true]);
    for (const c of cs.filter((x) => x !== leader)) expect(c.seen).toEqual([false]);
    // The lock holds the leader's name, its session has LockDelay 0 and the registry's TTL.
    const entry = await holder();
    expect(JSON.parse(Buffer.from(entry.Value, 'base64').toString())).toEqual({ candidate: leader!.name });
    const [session] = await get(`/v1/session/info/${entry.Session}`);
    expect(session).toMatchObject({ LockDelay: 0, TTL: '1s', Behavior: 'release' });
    // Each candidate has a TTL check of its own (on a service of its own), which its session lists.
    const own = await electionChecks();
    expect(Object.keys(own).sort()).toEqual(['m1', 'm2', 'm3']);
    expect(session.NodeChecks).toEqual(['serfHealth', own[leader!.name].CheckID]);
    for (const check of Object.values(own)) {
      expect(check).toMatchObject({ Status: 'passing', Type: 'ttl' });
      expect(check.CheckID).toMatch(/^service:registrar-election:swarm-c1:m\d:[0-9a-f]{8}$/);
    }
    // They are no entries of the registry.
    expect(await leader!.registry.list()).toEqual([]);
    // A late subscriber gets the current value at once.
    const now: boolean[] = [];
    leader!.leadership.leading$.subscribe((v) => now.push(v)).unsubscribe();
    expect(now).toEqual([true]);
    // Followers block on the key rather than polling it: at most one read each over a second.
    const reads = (c: Candidate) => c.sent.filter((r) => r === `GET /v1/kv/${KEY}`).length;
    const blocking = () =>
      double!.countRequests((q) => q.path === `/v1/kv/${KEY}` && q.query.includes('index='));
    await until('every candidate blocks on the key', () => blocking() >= 3);
    const before = cs.map(reads);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    cs.forEach((c, i) => expect(reads(c) - before[i]!).toBeLessThanOrEqual(1));
    expect(leaders(cs)).toEqual([leader]);
  });

  it('hands over at once when the leader resigns; the successor adopts its services with zero writes', async () => {
    await start();
    const cs = ['m1', 'm2', 'm3'].map((n) => candidate(n, { electionTtl: 10 }));
    await until('one leader', () => leaders(cs).length === 1);
    const first = leaders(cs)[0]!;
    expect(await first.registry.list()).toEqual([]);
    for (const i of [1, 2, 3]) await first.registry.register(svc(i));
    expect(await passingIds('web')).toHaveLength(3);

    const resignedAt = Date.now();
    await first.leadership.close();
    expect(first.seen).toEqual([false, true, false]);
    const rest = cs.filter((c) => c !== first);
    await until('a successor', () => leaders(rest).length === 1, 5000);
    // Released, not expired: the sessions have a 10 s TTL (Consul would expire one after 20 s).
    expect(Date.now() - resignedAt).toBeLessThan(5000);
    const second = leaders(rest)[0]!;
    const entries = await second.registry.list();
    expect(entries.map((e) => e.id).sort()).toEqual([svc(1).id, svc(2).id, svc(3).id]);
    for (const e of entries) {
      const wanted = [1, 2, 3].map(svc).find((s) => s.id === e.id)!;
      expect(e.fingerprint).toBe(second.registry.fingerprint(wanted));
    }
    // Adoption passed the bridge check; it registered nothing, not even the bridge service.
    expect(writes(second)).toEqual([]);
    expect(await passingIds('web')).toHaveLength(3);
  });

  it('registers the bridge service again when the successor’s bridge check would differ (another --ttl)', async () => {
    await start();
    const first = candidate('m1', { electionTtl: 10 });
    await until('m1 leads', () => last(first) === true);
    await first.registry.list();
    await first.registry.register(svc(1));
    const second = candidate('m2', { electionTtl: 10, ttl: 2 });
    await until('m2 follows', () => second.seen.length === 1);
    await first.leadership.close();
    await until('m2 leads', () => last(second) === true, 5000);
    const [entry] = await second.registry.list();
    expect(entry?.fingerprint).toBe(second.registry.fingerprint(svc(1)));
    // The bridge (with its new TTL), not the service.
    expect(writes(second)).toEqual(['PUT /v1/agent/service/register']);
    expect(double!.checkDefinition('service:registrar:swarm-c1')?.ttlMs).toBe(2000);
  });

  it('lets only followers on the leader’s agent pass the bridge check', async () => {
    await start();
    const leader = candidate('m1');
    await until('m1 leads', () => last(leader) === true);
    await leader.registry.list();
    await leader.registry.register(svc(1));
    const same = candidate('m2');
    // m3's session claims another agent node, as with one Consul agent per manager.
    const sent: string[] = [];
    const elsewhere = candidate('m3', {
      fetch: async (url, init) => {
        sent.push(`${init.method} ${new URL(url).pathname}`);
        const res = await fetch(url, init);
        if (!new URL(url).pathname.startsWith('/v1/session/info/')) return res;
        const sessions = (await res.json()) as { Name: string; Node: string }[];
        const moved = sessions.map((x) => (x.Name.endsWith('(m3)') ? { ...x, Node: 'agent-3' } : x));
        return new Response(JSON.stringify(moved), { status: res.status, headers: res.headers });
      },
    });
    const passes = (requests: string[]) =>
      requests.filter((r) => r === `PUT /v1/agent/check/pass/service:registrar:${NODE}`).length;
    await until('m2 passes the bridge check', () => passes(same.sent) >= 3);
    expect(elsewhere.seen).toEqual([false]);
    expect(passes(sent)).toBe(0);
  });

  // Measured here: 1.0–1.2 s after the kill with a 1 s check TTL, where the 10 s session alone would take 20 s.
  it('succeeds a leader killed with SIGKILL within about its check TTL, not 2 × the session TTL; its services never stop passing', async () => {
    await start();
    const dist = pathToFileURL(fileURLToPath(new URL('../dist/index.js', import.meta.url))).href;
    const script = `
      import { createConsulRegistry } from ${JSON.stringify(dist)};
      const r = createConsulRegistry({ nodeId: '${NODE}', engineId: '${NODE}', url: process.argv[1], ttl: 1,
        ttlRefresh: 0.25, electionTtl: 10 });
      r.elect({ candidate: 'doomed' }).leading$.subscribe(async (leading) => {
        if (!leading) return;
        await r.list();
        for (let i = 1; i <= 3; i++) {
          await r.register({ id: '${NODE}:web.' + i + ':80', name: 'web', address: '10.0.0.9', port: 8000 + i,
            protocol: 'tcp', containerPort: 80, tags: [], meta: {}, node: '${NODE}', container: { id: 't' + i,
            name: 'web.' + i }, health: 'passing', healthOutput: '', checks: {} });
        }
        process.stdout.write('leading\\n');
      });
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, double!.url], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(child);
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => d.toString().includes('leading') && resolve());
      child.once('exit', (code) => reject(new Error(`leader exited early with ${code}`)));
    });
    const cs = [candidate('m2', { electionTtl: 10 }), candidate('m3', { electionTtl: 10 })];
    await until('both following', () => cs.every((c) => c.seen.length === 1 && last(c) === false));
    expect(await passingIds('web')).toHaveLength(3);
    const doomed = (await electionChecks()).doomed;
    expect(doomed).toMatchObject({ Status: 'passing' });

    const killedAt = Date.now();
    child.kill('SIGKILL');
    // Meanwhile the bridge check (TTL 1 s) would have expired without the followers passing it.
    let critical = false;
    const watch = setInterval(() => {
      void passingIds('web').then(
        (ids) => (critical ||= ids.length !== 3),
        () => undefined,
      );
    }, 50);
    try {
      await until('a successor', () => leaders(cs).length === 1, 15_000);
    } finally {
      clearInterval(watch);
    }
    // The check's TTL (1 s) runs out after its last pass (≤ 1/4 s before the kill), and Consul invalidates the
    // session at once: well before the session's own 2 × 10 s.
    const elapsed = Date.now() - killedAt;
    expect(elapsed).toBeGreaterThanOrEqual(500);
    expect(elapsed).toBeLessThan(10_000);
    expect((await electionChecks()).doomed).toMatchObject({ Status: 'critical', Output: 'TTL expired' });
    const successor = leaders(cs)[0]!;
    const entries = await successor.registry.list();
    const wanted = [1, 2, 3].map((i) => testService({ ...svc(i), address: '10.0.0.9', tags: [], meta: {} }));
    expect(entries.map((e) => e.fingerprint).sort()).toEqual(
      wanted.map((s) => successor.registry.fingerprint(s)).sort(),
    );
    expect(writes(successor)).toEqual([]);
    expect(critical).toBe(false);
    // And it keeps them alive from now on, past several TTLs.
    const adoptedAt = Date.now();
    await until('three TTLs', () => Date.now() - adoptedAt > 3000, 5000);
    expect(await passingIds('web')).toHaveLength(3);
  });

  it('drops leadership at once when its session is lost, and campaigns again with a new one', async () => {
    const d = await start();
    const c = candidate('m1');
    await until('leading', () => last(c) === true);
    const lost = (await holder()).Session as string;
    d.invalidateSession(lost);
    // The renew loop (every 1/3 s) learns it with a 404, or the blocking read sees the lock released.
    await until('stepped down', () => c.seen.length >= 3, 2000);
    expect(c.seen.slice(0, 3)).toEqual([false, true, false]);
    await until('leading again', () => last(c) === true && c.seen.length === 4, 3000);
    const entry = await holder();
    expect(entry.Session).not.toBe(lost);
    expect(entry.LockIndex).toBe(2);
  });

  it('drops leadership when its check goes critical, and campaigns again once it passes it', async () => {
    const d = await start();
    const c = candidate('m1', { electionTtl: 10 });
    await until('leading', () => last(c) === true);
    const lost = (await holder()).Session as string;
    const { CheckID: checkId } = (await electionChecks()).m1;
    // As a TTL running out would: Consul invalidates the session at once.
    d.setCheckStatus(checkId, 'critical', 'TTL expired');
    expect(await get(`/v1/session/info/${lost}`)).toEqual([]);
    await until('stepped down and leading again', () => c.seen.length === 4, 5000);
    expect(c.seen).toEqual([false, true, false, true]);
    expect((await holder()).Session).not.toBe(lost);
    expect((await electionChecks()).m1).toMatchObject({ CheckID: checkId, Status: 'passing' });
  });

  it('registers its check again when the agent forgot it, before a new session', async () => {
    const d = await start();
    const c = candidate('m1', { electionTtl: 10 });
    await until('leading', () => last(c) === true);
    const before = c.sent.filter((r) => r === 'PUT /v1/agent/service/register (election)').length;
    await d.restart({ loseState: true });
    // The check is gone, and with it the session; the next pass (every 1/4 s) learns it with a 404.
    await until('leading again', () => c.seen.length === 4, 5000);
    expect(c.seen).toEqual([false, true, false, true]);
    expect(c.sent.filter((r) => r === 'PUT /v1/agent/service/register (election)')).toHaveLength(before + 1);
    expect((await electionChecks()).m1).toMatchObject({ Status: 'passing' });
  });

  it('steps down when no renewal got through within the session TTL, and leads again once the agent answers', async () => {
    const d = await start();
    const c = candidate('m1', { requestTimeoutMs: 300 });
    await until('leading', () => last(c) === true);
    const stoppedAt = Date.now();
    await d.stop();
    // At most one leader: past its TTL Consul may have handed the lock to another.
    await until('stepped down', () => last(c) === false, 3000);
    expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(900);
    await d.start();
    // The old session is released when Consul expires it (2 × TTL), or at once if the destroy got through.
    await until('leading again', () => last(c) === true, 5000);
    expect(c.seen).toEqual([false, true, false, true]);
  });

  it('resigns on registry close, releasing the lock and destroying the session', async () => {
    await start();
    const a = candidate('m1', { electionTtl: 10 });
    await until('leading', () => last(a) === true);
    const b = candidate('m2', { electionTtl: 10 });
    await until('b following', () => b.seen.length === 1);
    await a.registry.close();
    expect(a.seen).toEqual([false, true, false]);
    expect(await get('/v1/session/list')).toHaveLength(1);
    // Its check went with it (b's stays).
    expect(Object.keys(await electionChecks())).toEqual(['m2']);
    expect(a.sent.slice(-1)).toEqual([
      expect.stringMatching(/^PUT \/v1\/agent\/service\/deregister\/registrar-election:.* \(election\)$/),
    ]);
    await until('b leads', () => last(b) === true, 5000);
  });

  it('gives each candidate process a check of its own, even under the same name (a restarted one)', async () => {
    await start();
    const a = candidate('m1', { electionTtl: 10 });
    await until('a leads', () => last(a) === true);
    const b = candidate('m1', { electionTtl: 10 });
    await until('b follows', () => b.seen.length === 1);
    const ids = async () =>
      Object.values((await get('/v1/agent/checks')) as Record<string, any>)
        .filter((c) => c.ServiceName === 'registrar-election')
        .map((c) => c.CheckID as string);
    await until('two checks', async () => (await ids()).length === 2);
    const sessions = (await get('/v1/session/list')) as any[];
    const listed = sessions.map((x) => x.NodeChecks[1] as string).sort();
    expect(listed).toEqual((await ids()).sort());
    expect(new Set(listed).size).toBe(2);
    // One leaving takes only its own check: the other's session lives on and takes the lock.
    await a.registry.close();
    await until('b leads', () => last(b) === true, 5000);
    expect(await ids()).toHaveLength(1);
    expect((await get('/v1/session/list')) as any[]).toHaveLength(1);
  });

  it('refuses a second election on one registry and any election when read-only', async () => {
    await start();
    const c = candidate('m1');
    expect(() => c.registry.elect!({ candidate: 'm1' })).toThrow(/already joined/);
    const dry = createConsulRegistry({ nodeId: NODE, url: double!.url, readOnly: true });
    registries.push(dry);
    expect(() => dry.elect!({ candidate: 'x' })).toThrow(/read-only/);
  });

  it('drives core reconcilers: the leader writes, a successor adopts with zero ops, followers none', async () => {
    await start();
    const desired = new Map([1, 2, 3].map((i) => [svc(i).id, svc(i)]));
    const ops = new Map<string, RegistryOp[]>();
    const reconcilers: Reconciler[] = [];
    // What the Swarm bridge's follow() does with each registry.
    const wire = (c: Candidate) => {
      const done: RegistryOp[] = [];
      ops.set(c.name, done);
      const reconciler = new Reconciler({
        registry: c.registry,
        desired: () => desired,
        inventoryComplete: () => true,
        logger: silentLogger,
        observer: { onOp: (_r, op, outcome) => outcome === 'ok' && done.push(op) },
      });
      reconcilers.push(reconciler);
      reconciler.standBy();
      c.leadership.leading$.subscribe((now) => (now ? reconciler.lead() : reconciler.standBy()));
      return reconciler;
    };
    const cs = [candidate('m1'), candidate('m2'), candidate('m3')];
    const rs = cs.map(wire);
    try {
      await until('one leader wrote three', () => [...ops.values()].flat().length === 3);
      const first = leaders(cs)[0]!;
      expect(ops.get(first.name)).toHaveLength(3);
      expect(await passingIds('web')).toHaveLength(3);
      await rs[cs.indexOf(first)]!.stop();
      await first.leadership.close();
      const rest = cs.filter((c) => c !== first);
      await until('a successor', () => leaders(rest).length === 1);
      const second = leaders(rest)[0]!;
      await until('the successor listed', () => second.sent.includes('GET /v1/agent/services'));
      await rs[cs.indexOf(second)]!.settled();
      expect(ops.get(second.name)).toEqual([]);
      expect(writes(second)).toEqual([]);
      for (const c of rest) expect(ops.get(c.name)).toEqual([]);
      expect(await passingIds('web')).toHaveLength(3);
    } finally {
      for (const r of reconcilers) await r.stop();
    }
  });
});
