// followIntoHaproxy against a real HAProxy (Debian's package) and real HTTP upstreams on loopback. The registry
// side is an in-memory ServiceFollower here; test/e2e/lb.e2e.test.ts runs the same against etcd, ZooKeeper and
// the Consul double with real containers.
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { BehaviorSubject, type Subscription } from 'rxjs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { FollowUpdate, Instance, ServiceFollower } from '@registrar/core';
import { get, startHaproxy, type HaproxyServer } from '@registrar/test-servers/haproxy';
import { capturingLogger, freePort, until, type CapturedLine as Line } from '@registrar/core/testing';
import { followIntoHaproxy, type LbEvent } from './follow.js';
import { parseServersState, runtimeCommand } from './haproxy.js';

/** A registry's read side held in memory: the test sets each service's instances or makes it unreachable. */
function memoryFollower() {
  const services = new Map<string, BehaviorSubject<FollowUpdate>>();
  const subject = (name: string) => {
    let s = services.get(name);
    if (!s) services.set(name, (s = new BehaviorSubject<FollowUpdate>({ kind: 'instances', instances: [] })));
    return s;
  };
  const follower: ServiceFollower = {
    backend: 'memory',
    target: 'memory',
    follow: (name) => subject(name).asObservable(),
    close: () => Promise.resolve(),
  };
  return {
    follower,
    set: (name: string, instances: Instance[]) => subject(name).next({ kind: 'instances', instances }),
    unreachable: (name: string) =>
      subject(name).next({ kind: 'unreachable', error: new Error('connection refused') }),
  };
}

/** An HTTP upstream on loopback that answers with its name. */
async function upstream(name: string): Promise<{ instance: Instance; server: Server }> {
  const port = await freePort();
  const server = createServer((_req, res) => res.end(`${name}\n`));
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { instance: { id: `node:${name}:80`, address: '127.0.0.1', port }, server };
}

let haproxy: HaproxyServer;
const upstreams: Server[] = [];
let running: Subscription | undefined;

beforeAll(async () => {
  haproxy = await startHaproxy({ backends: { web: 3, api: 2 } });
}, 60_000);

afterAll(async () => {
  await haproxy?.stop();
  for (const server of upstreams) server.close();
});

afterEach(() => {
  running?.unsubscribe();
  running = undefined;
});

async function upstreams3(prefix: string) {
  const made = await Promise.all([1, 2, 3].map((n) => upstream(`${prefix}-${n}`)));
  upstreams.push(...made.map((m) => m.server));
  return made.map((m) => m.instance);
}

/** Who answers through the frontend over `n` requests. */
async function answering(backend: string, n = 12): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) {
    const result = await get(haproxy.url(backend));
    seen.add(
      'error' in result
        ? `error: ${result.error.message}`
        : result.status === 200
          ? result.body.trim()
          : `status ${result.status}`,
    );
  }
  return seen;
}

const sameSet = (a: Set<string>, b: string[]) => a.size === b.length && b.every((x) => a.has(x));

async function servingSlots(backend: string): Promise<string[]> {
  const slots = parseServersState(
    await runtimeCommand({ path: haproxy.socket }, `show servers state ${backend}`),
    backend,
  );
  return slots
    .filter((s) => s.enabled)
    .map((s) => `${s.address}:${s.port}`)
    .sort();
}

/** A logger that appends each line to `lines`. */
const loggingInto = (lines: Line[]) => capturingLogger({ onLine: (line) => lines.push(line) }).logger;

/** Run followIntoHaproxy on `memory` into the test's HAProxy (web and api by default), logging into `lines`. */
function run(
  memory: ReturnType<typeof memoryFollower>,
  lines: Line[],
  events: LbEvent[] = [],
  targets = [
    { service: 'web', backend: 'web' },
    { service: 'api', backend: 'api' },
  ],
) {
  running = followIntoHaproxy({
    follower: memory.follower,
    haproxy: { path: haproxy.socket },
    targets,
    checkIntervalMs: 200,
    logger: loggingInto(lines),
  }).subscribe((event) => events.push(event));
}

describe('followIntoHaproxy (real HAProxy)', { shuffle: false }, () => {
  it('fills, changes and empties the slots as the instances change, with no reload', async () => {
    const memory = memoryFollower();
    const lines: Line[] = [];
    const [a, b, c] = await upstreams3('fill');
    memory.set('web', [a!, b!]);
    run(memory, lines);
    await until('web served by fill-1 and fill-2', async () =>
      sameSet(await answering('web'), ['fill-1', 'fill-2']),
    );

    memory.set('web', [b!, c!]);
    await until('fill-1 replaced by fill-3', async () =>
      sameSet(await answering('web'), ['fill-2', 'fill-3']),
    );
    // fill-2 kept its slot: a changed set moves only what changed.
    expect(await servingSlots('web')).toEqual([b!, c!].map((i) => `${i.address}:${i.port}`).sort());

    memory.set('web', []);
    await until('web empty', async () => (await servingSlots('web')).length === 0);
    expect(await answering('web', 2)).toEqual(new Set(['status 503']));
  });

  it('refills the slots of an HAProxy that restarted empty', async () => {
    const memory = memoryFollower();
    const lines: Line[] = [];
    const [a, b] = await upstreams3('restart');
    memory.set('web', [a!, b!]);
    run(memory, lines);
    await until('web served by restart-1 and restart-2', async () =>
      sameSet(await answering('web'), ['restart-1', 'restart-2']),
    );
    await haproxy.restart();
    await until('refilled after the restart', async () =>
      sameSet(await answering('web'), ['restart-1', 'restart-2']),
    );
  });

  it('keeps the last known servers while the registry is unreachable, logs it once, and catches up', async () => {
    const memory = memoryFollower();
    const lines: Line[] = [];
    const events: LbEvent[] = [];
    const [a, b, c] = await upstreams3('outage');
    memory.set('api', [a!]);
    run(memory, lines, events);
    await until('api served by outage-1', async () => sameSet(await answering('api', 3), ['outage-1']));

    memory.unreachable('api');
    memory.unreachable('api');
    await until('the outage logged', () => lines.some((l) => l.msg.startsWith('registry unreachable')));
    expect(await answering('api', 3)).toEqual(new Set(['outage-1']));
    expect(lines.filter((l) => l.msg.startsWith('registry unreachable'))).toHaveLength(1);
    expect(events).toContainEqual({
      kind: 'registry',
      target: { service: 'api', backend: 'api' },
      reachable: false,
    });

    memory.set('api', [b!, c!]);
    await until('caught up', async () => sameSet(await answering('api'), ['outage-2', 'outage-3']));
    expect(lines.some((l) => l.msg === 'registry reachable again')).toBe(true);
  });

  it('names the slot count when there are more instances than slots, and serves as many as fit', async () => {
    const memory = memoryFollower();
    const lines: Line[] = [];
    const [a, b, c] = await upstreams3('many');
    memory.set('api', [a!, b!, c!]);
    run(memory, lines);
    await until('the shortage logged', () => lines.some((l) => l.level === 'error'));
    const shortage = lines.find((l) => l.level === 'error')!;
    expect(shortage.msg).toBe(
      'backend api has 2 server slots for 3 instances: 1 get no traffic; raise its server-template count',
    );
    expect(await servingSlots('api')).toHaveLength(2);
  });

  it('logs an unknown backend and keeps serving the others', async () => {
    const memory = memoryFollower();
    const lines: Line[] = [];
    const [a] = await upstreams3('unknown');
    memory.set('web', [a!]);
    run(
      memory,
      lines,
      [],
      [
        { service: 'web', backend: 'web' },
        { service: 'web', backend: 'nope' },
      ],
    );
    await until('web served by unknown-1', async () => sameSet(await answering('web', 3), ['unknown-1']));
    await until('the unknown backend logged', () =>
      lines.some((l) => l.level === 'error' && l.msg === 'HAProxy backend unusable'),
    );
  });

  it('logs HAProxy unreachable once however many attempts fail', async () => {
    const memory = memoryFollower();
    const lines: Line[] = [];
    const [a] = await upstreams3('down');
    memory.set('web', [a!]);
    // A TCP listener that resets every connection at once: each attempt fails, and is counted.
    const port = await freePort();
    let attempts = 0;
    const refusing = createNetServer((socket) => {
      attempts += 1;
      socket.resetAndDestroy();
    });
    await new Promise<void>((resolve) => refusing.listen(port, '127.0.0.1', resolve));
    try {
      running = followIntoHaproxy({
        follower: memory.follower,
        haproxy: { host: '127.0.0.1', port },
        targets: [{ service: 'web', backend: 'web' }],
        checkIntervalMs: 50,
        logger: loggingInto(lines),
      }).subscribe();
      await until('five failed attempts', () => attempts >= 5);
      expect(lines.filter((l) => l.msg.startsWith('HAProxy runtime API unreachable'))).toHaveLength(1);
    } finally {
      refusing.close();
    }
  });
});
