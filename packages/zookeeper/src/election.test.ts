// The Swarm election against a real ZooKeeper: candidates are child processes (so a leader can really be
// SIGKILLed, SIGSTOPped or SIGTERMed), each an adapter with the same node id under core's Reconciler, wired
// as the bridge's election (startBridge) wires it: standing by until elected, then listing and writing only what differs.
import type { Service } from '@registrar/core';
import { until } from '@registrar/core/testing';
import { removeDir, tempDir } from '@registrar/test-servers/process';
import { startZookeeper, type ZookeeperServer } from '@registrar/test-servers/zookeeper';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Stat } from 'node-zookeeper-client';
import { firstValueFrom } from 'rxjs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createZookeeperRegistry } from './index.js';
import { electionPath } from './election.js';
import { connectRaw, service, zkErrorName, type Raw } from './testing/helpers.js';

const TTL = 4; // entries session 4 s, election session 2 s (the harness allows 1–30 s)

let server: ZookeeperServer;
let raw: Raw;
const children = new Set<ChildProcess>();

beforeAll(async () => {
  server = await startZookeeper();
  raw = await connectRaw(server.connectString, { sessionTimeout: 30_000 });
});

afterEach(() => {
  for (const child of children) {
    child.kill('SIGCONT');
    child.kill('SIGKILL');
  }
  children.clear();
});

afterAll(async () => {
  raw?.close();
  await server?.close();
});

const dist = fileURLToPath(new URL('../dist/index.js', import.meta.url));

const core = fileURLToPath(new URL('../../core/dist/index.js', import.meta.url));
const coreInternal = fileURLToPath(new URL('../../core/dist/internal.js', import.meta.url));

/**
 * One candidate, wired as the bridge's election (startBridge) wires it: core's Reconciler stands by until elected, then
 * lists and diffs. Prints one JSON line per event; a graceful stop on SIGTERM, as the bridge's stop() does.
 */
const script = `
  import { createZookeeperRegistry } from ${JSON.stringify(dist)};
  import { silentLogger } from ${JSON.stringify(core)};
  import { Reconciler } from ${JSON.stringify(coreInternal)};
  const [connectString, base, nodeId, candidate, json] = process.argv.slice(1);
  const services = JSON.parse(json);
  const desired = new Map(services.map((s) => [s.id, s]));
  const out = (line) => process.stdout.write(JSON.stringify({ candidate, ...line }) + '\\n');
  const r = createZookeeperRegistry({ connectString, nodeId, basePath: base, ttl: ${TTL} });
  r.events$.subscribe((event) => out({ ev: 'event', type: event.type }));
  const session = () => r.fingerprint(services[0]).split('/')[0];
  let leading = false;
  const reconciler = new Reconciler({
    registry: r,
    desired: () => desired,
    inventoryComplete: () => true,
    logger: silentLogger,
    observer: {
      onOp: (_, op, outcome) => out({ ev: 'op', type: op.type, outcome }),
      // The writes a pass plans (the drift it found), reported before it makes them.
      onPass: (_, drift) => leading && out({ ev: 'reconciled', writes: drift, session: session() }),
    },
  });
  reconciler.standBy();
  r.lost$.subscribe((loss) => reconciler.lost(loss.reason));
  const leadership = r.elect({ candidate });
  leadership.leading$.subscribe((now) => {
    leading = now;
    out({ ev: 'leading', value: now });
    if (now) reconciler.lead();
    else reconciler.standBy();
  });
  process.on('SIGTERM', async () => {
    await reconciler.stop();
    await leadership.close();
    await r.close({ deregister: false });
    out({ ev: 'closed' });
    process.exit(0);
  });
  setInterval(() => {}, 1000);
`;

interface Line {
  readonly candidate: string;
  readonly ev: string;
  readonly value?: boolean;
  readonly writes?: number;
  readonly session?: string;
  readonly type?: string;
  readonly outcome?: string;
}

interface Candidate {
  readonly name: string;
  readonly child: ChildProcess;
  readonly lines: Line[];
  leading(): boolean;
  /** Lines since index `from` (default all) with event `ev`. */
  seen(ev: string, from?: number): Line[];
}

function candidate(base: string, nodeId: string, name: string, services: Service[]): Candidate {
  const child = spawn(
    process.execPath,
    ['--input-type=module', '-e', script, server.connectString, base, nodeId, name, JSON.stringify(services)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  children.add(child);
  const lines: Line[] = [];
  let buffered = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    const complete = buffered.split('\n');
    buffered = complete.pop()!;
    for (const line of complete) if (line) lines.push(JSON.parse(line) as Line);
  });
  return {
    name,
    child,
    lines,
    leading: () => lines.filter((l) => l.ev === 'leading').at(-1)?.value === true,
    seen: (ev, from = 0) => lines.slice(from).filter((l) => l.ev === ev),
  };
}

const leaders = (all: Candidate[]) =>
  all.filter((c) => c.child.exitCode === null && c.child.signalCode === null && c.leading());

/** The one leader, once it has reconciled; throws (so `until` retries) otherwise. */
function reconciledLeader(all: Candidate[]): Candidate {
  const now = leaders(all);
  if (now.length !== 1 || now[0]!.seen('reconciled').length === 0) throw new Error('no reconciled leader');
  return now[0]!;
}

/** Elected, reconciled, and wrote nothing: every pass found the entries of `owner` as they should be. */
function expectAdopted(c: Candidate, owner: string) {
  expect(c.seen('reconciled').length).toBeGreaterThan(0);
  expect(c.seen('reconciled').map((l) => [l.writes, l.session])).toEqual(
    c.seen('reconciled').map(() => [0, owner]),
  );
  expect(c.seen('op')).toEqual([]);
}

async function stats(paths: string[]): Promise<Stat[]> {
  return Promise.all(
    paths.map(async (path) => {
      const stat = await raw.exists(path);
      if (!stat) throw new Error(`${path} is missing`);
      return stat;
    }),
  );
}

/** What must not change when a successor adopts the entries: owner, creation, last write, version. */
const identity = (stat: Stat) => ({
  owner: stat.ephemeralOwner.toString('hex'),
  czxid: stat.czxid.toString('hex'),
  mzxid: stat.mzxid.toString('hex'),
  version: stat.version,
});

function setUp(base: string, nodeId: string, names: string[]) {
  const services = [1, 2, 3].map((n) =>
    service({ node: nodeId, id: `${nodeId}:task${n}:80`, container: { id: `c${n}`, name: `task${n}` } }),
  );
  const paths = services.map((s) => `${base}/web/${s.id}`);
  const all = names.map((name) => candidate(base, nodeId, name, services));
  return { services, paths, all };
}

describe('ZooKeeper election (real ZooKeeper, candidates in child processes)', () => {
  beforeAll(() => {
    expect(existsSync(dist), 'build first: pnpm -s build').toBe(true);
  });

  it('one of three leads; SIGKILL of it: another takes the session over and rewrites nothing; SIGTERM hands over at once', async () => {
    const { paths, all } = setUp('/el-kill', 'swarm-kill', ['m1', 'm2', 'm3']);
    await until(
      'a leader that registered everything',
      () =>
        reconciledLeader(all)
          .seen('op')
          .filter((l) => l.outcome === 'ok').length === 3,
    );
    // Every candidate has joined: the others are followers, not leaders of their own.
    await until(
      'three candidates',
      async () => (await raw.children(electionPath('/el-kill', 'swarm-kill'))).length === 3,
    );
    expect(leaders(all)).toHaveLength(1);
    const first = reconciledLeader(all);
    const before = (await stats(paths)).map(identity);
    expect(new Set(before.map((s) => s.owner)).size).toBe(1);
    expect(first.seen('reconciled')[0]!.session).toBe(before[0]!.owner);

    // SIGKILL: its election session (2 s) lapses first, and a successor resumes the entries session (4 s).
    const killedAt = Date.now();
    first.child.kill('SIGKILL');
    const rest = all.filter((c) => c !== first);
    await until('a successor that adopted the entries', () => reconciledLeader(rest) !== undefined, 10_000);
    const tookMs = Date.now() - killedAt;
    const second = reconciledLeader(rest);
    // Adopted as they are: the fingerprints matched, zero writes, the same session owns the same nodes.
    expectAdopted(second, before[0]!.owner);
    expect((await stats(paths)).map(identity)).toEqual(before);
    expect(tookMs).toBeLessThan((TTL + 2) * 1000);
    process.stderr.write(`zookeeper election: SIGKILLed leader succeeded after ${tookMs} ms, 0 writes\n`);
    // Past the dead process's entries timeout the nodes are still there: the successor keeps the session.
    await sleep(Math.max(0, killedAt + TTL * 1000 + 1000 - Date.now()));
    expect((await stats(paths)).map(identity)).toEqual(before);
    expect(leaders(all)).toEqual([second]);

    // SIGTERM: the leader resigns (its node goes at once) and leaves the session: no election timeout to wait.
    const stoppedAt = Date.now();
    second.child.kill('SIGTERM');
    const third = rest.find((c) => c !== second)!;
    await until('the last candidate adopted the entries', () => reconciledLeader([third]) === third, 10_000);
    const handOverMs = Date.now() - stoppedAt;
    expectAdopted(third, before[0]!.owner);
    expect((await stats(paths)).map(identity)).toEqual(before);
    expect(second.seen('closed')).toHaveLength(1);
    expect(handOverMs).toBeLessThan(2000);
    process.stderr.write(`zookeeper election: graceful hand-over in ${handOverMs} ms, 0 writes\n`);
  });

  it('a paused leader (SIGSTOP past its election timeout) is fenced on SIGCONT: it stops leading and does not take the session back', async () => {
    const { paths, all } = setUp('/el-pause', 'swarm-pause', ['p1', 'p2']);
    await until(
      'a leader that registered everything',
      () =>
        reconciledLeader(all)
          .seen('op')
          .filter((l) => l.outcome === 'ok').length === 3,
    );
    await until(
      'two candidates',
      async () => (await raw.children(electionPath('/el-pause', 'swarm-pause'))).length === 2,
    );
    const paused = reconciledLeader(all);
    const successor = all.find((c) => c !== paused)!;
    const before = (await stats(paths)).map(identity);

    paused.child.kill('SIGSTOP');
    await until(
      'the successor adopted the entries',
      () => reconciledLeader([successor]) === successor,
      10_000,
    );
    expectAdopted(successor, before[0]!.owner);
    const adoptedAt = successor.lines.length;
    paused.child.kill('SIGCONT');
    // On waking, its election session is seen lost (it was silent past its timeout): it stops leading...
    await until('the paused leader stepped down', () => !paused.leading(), 10_000);
    // ...and stands again as a follower, with a new election session and node.
    await until(
      'it stands again',
      async () => (await raw.children(electionPath('/el-pause', 'swarm-pause'))).length === 2,
    );
    // Long enough for a reconnect of its old entries client (spin delay 200 ms) to have happened, had it not
    // been abandoned: the successor's connection was never taken away, and it still owns the nodes.
    await sleep(1500);
    expect(successor.seen('event', adoptedAt)).toEqual([]);
    expect(leaders(all)).toEqual([successor]);
    expect((await stats(paths)).map(identity)).toEqual(before);
  });
});

describe('ZooKeeper election (in process)', () => {
  it('leading$ starts false and gives the current value on subscribe; a second elect() is refused', async () => {
    const registry = createZookeeperRegistry({
      connectString: server.connectString,
      nodeId: 'swarm-solo',
      basePath: '/el-solo',
      ttl: TTL,
    });
    const leadership = registry.elect!({ candidate: 'solo' });
    expect(await firstValueFrom(leadership.leading$)).toBe(false);
    expect(() => registry.elect!({ candidate: 'again' })).toThrow(/elect\(\) was called already/);
    const seen: boolean[] = [];
    const subscription = leadership.leading$.subscribe((now) => seen.push(now));
    await until('elected', () => seen.at(-1) === true);
    expect(await firstValueFrom(leadership.leading$)).toBe(true);
    const s = service({ node: 'swarm-solo' });
    await until('registered', async () => {
      await registry.register(s);
      return true;
    });
    // The leader publishes the session its entries hang on (readable by anyone here: no auth, no ACL).
    let published = { candidate: '', sessionId: '' };
    await until('the entries session published', async () => {
      published = JSON.parse(
        (await raw.getData(electionPath('/el-solo', 'swarm-solo'))).data,
      ) as typeof published;
      return true;
    });
    expect(published.candidate).toBe('solo');
    expect((await raw.exists(`/el-solo/web/${s.id}`))?.ephemeralOwner.toString('hex')).toBe(
      published.sessionId,
    );
    await leadership.close();
    expect(seen).toEqual([false, true, false]);
    await registry.close({ deregister: true });
    // Resigned and closed: the entries stay for a successor (never deleted in election mode).
    expect(await raw.exists(`/el-solo/web/${s.id}`)).not.toBeNull();
    subscription.unsubscribe();
  });

  it('a published session that is gone: the new leader opens its own, reports the loss, registers again and publishes it', async () => {
    const path = electionPath('/el-gone', 'swarm-gone');
    // What a leader that died longer ago than its TTL left: a session the server no longer knows.
    for (const node of ['/registrar-election', '/registrar-election/el-gone', path]) {
      await raw.create(node).catch(() => undefined);
    }
    const dead = { candidate: 'dead', sessionId: '0123456789abcdef', password: '00'.repeat(16) };
    await raw.setData(path, JSON.stringify(dead));
    const registry = createZookeeperRegistry({
      connectString: server.connectString,
      nodeId: 'swarm-gone',
      basePath: '/el-gone',
      ttl: TTL,
    });
    const losses: string[] = [];
    registry.lost$.subscribe((loss) => losses.push(loss.reason));
    const leadership = registry.elect!({ candidate: 'heir' });
    const seen: boolean[] = [];
    leadership.leading$.subscribe((now) => seen.push(now));
    await until('elected', () => seen.at(-1) === true);
    await until('the dead session reported lost', () => losses.length > 0);
    const s = service({ node: 'swarm-gone' });
    await until('registered with a session of its own', async () => {
      await registry.register(s);
      return true;
    });
    const owner = (await raw.exists(`/el-gone/web/${s.id}`))!.ephemeralOwner.toString('hex');
    expect(owner).not.toBe(dead.sessionId);
    await until('its own session published', async () => {
      const published = JSON.parse((await raw.getData(path)).data) as typeof dead;
      return published.candidate === 'heir' && published.sessionId === owner;
    });
    expect((await registry.list()).map((e) => e.fingerprint)).toEqual([registry.fingerprint(s)]);
    await registry.close();
  });

  it('with auth, the election (which holds the session password) is never world-readable, even with worldReadable', async () => {
    const auth = { scheme: 'digest', credentials: 'bridge:s3cret' } as const;
    const registry = createZookeeperRegistry({
      connectString: server.connectString,
      nodeId: 'swarm-acl',
      basePath: '/el-acl',
      ttl: TTL,
      auth,
      worldReadable: true,
    });
    const leadership = registry.elect!({ candidate: 'secure' });
    const seen: boolean[] = [];
    leadership.leading$.subscribe((now) => seen.push(now));
    await until('elected', () => seen.at(-1) === true);
    const path = electionPath('/el-acl', 'swarm-acl');
    const authed = await connectRaw(server.connectString, { auth: auth.credentials });
    try {
      await until('its session published', async () => /"password"/.test((await authed.getData(path)).data));
      expect(await zkErrorName(raw.getData(path))).toBe('NO_AUTH');
      const [candidateNode] = await authed.children(path);
      expect(await zkErrorName(raw.getData(`${path}/${candidateNode}`))).toBe('NO_AUTH');
    } finally {
      authed.close();
      await registry.close();
    }
  });

  it('with a state file: elect() does not keep the session resumed from it, and removes the file', async () => {
    const dir = tempDir('zk-election-state');
    const stateFile = join(dir, 'zookeeper.json');
    const options = {
      connectString: server.connectString,
      nodeId: 'swarm-state',
      basePath: '/el-state',
      ttl: TTL,
      stateFile,
    };
    try {
      const earlier = createZookeeperRegistry(options);
      const s = service({ node: 'swarm-state' });
      await until('registered', async () => {
        await earlier.register(s);
        return true;
      });
      const saved = (await raw.exists(`/el-state/web/${s.id}`))!.ephemeralOwner.toString('hex');
      await earlier.close(); // abandoned: the session and its node live on for the TTL
      expect(existsSync(stateFile)).toBe(true);

      const registry = createZookeeperRegistry(options);
      const leadership = registry.elect!({ candidate: 'restarted' });
      expect(existsSync(stateFile)).toBe(false);
      const seen: boolean[] = [];
      leadership.leading$.subscribe((now) => seen.push(now));
      await until('elected', () => seen.at(-1) === true);
      // Nothing published: it leads with a session of its own, not the one from the file.
      const fingerprint = registry.fingerprint(s);
      expect(fingerprint.startsWith(`${saved}/`)).toBe(false);
      await registry.close();
      expect(existsSync(stateFile)).toBe(false);
    } finally {
      removeDir(dir);
    }
  });
});
