// One writer per cluster on a real etcd: candidates of one node id elect one leader with etcd3's recipe, and
// the keys the leader wrote outlive it on the cluster lease every candidate keeps alive, so a successor adopts
// them without a write (graceful resign, and a leader process killed with SIGKILL).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Leadership, Logger, Registry } from '@registrar/core';
import { service, until } from '@registrar/core/testing';
import { tempDir } from '@registrar/test-servers/process';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { createEtcdRegistry } from './index.js';
import { dump, etcdForFile, leaseOf } from './test-support/helpers.js';

const shared = etcdForFile();
const TTL = 2;
const NODE = 'swarm-test';
const closers: (() => Promise<unknown>)[] = [];
const children: ChildProcess[] = [];

afterEach(async () => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  await Promise.all(closers.splice(0).map((close) => close().catch(() => undefined)));
});

interface Candidate {
  readonly registry: Registry;
  readonly leadership: Leadership;
  /** Every value `leading$` emitted, in order. */
  readonly seen: boolean[];
  /** The bridge's shutdown order: leave the election, then close the adapter (entries stay). */
  readonly stop: () => Promise<void>;
}

/** A logger that keeps the warnings' messages. */
function warningsLogger(): Logger & { warnings: string[] } {
  const noop = () => undefined;
  const logger = {
    warnings: [] as string[],
    trace: noop,
    debug: noop,
    info: noop,
    error: noop,
    warn: (_fields: unknown, msg?: string) => void logger.warnings.push(msg ?? ''),
    child: () => logger,
  };
  return logger;
}

function candidate(prefix: string, name: string, logger?: Logger): Candidate {
  const registry = createEtcdRegistry({
    hosts: [shared.etcd.endpoint],
    nodeId: NODE,
    prefix,
    ttl: TTL,
    requestTimeout: 1000,
    ...(logger && { logger }),
  });
  const leadership = registry.elect!({ candidate: name });
  const seen: boolean[] = [];
  leadership.leading$.subscribe((leading) => seen.push(leading));
  const stop = async () => {
    await leadership.close();
    await registry.close();
  };
  closers.push(stop);
  return { registry, leadership, seen, stop };
}

const leading = (c: Candidate) => c.seen.at(-1) === true;
const services = () => [1, 2, 3].map((i) => service({ node: NODE, containerPort: 8000 + i, port: 9000 + i }));

/** What a reconciler that just got elected would write: the services whose stored entry differs. */
async function driftOf(registry: Registry, wanted: ReturnType<typeof services>) {
  const stored = new Map((await registry.list()).map((entry) => [entry.id, entry.fingerprint]));
  return wanted.filter((s) => stored.get(s.id) !== registry.fingerprint(s)).map((s) => s.id);
}

describe('etcd election (real etcd)', () => {
  it('elects exactly one; the keys outlive a resigning leader on the cluster lease and its successor adopts them with no write', async () => {
    const prefix = `/el-${randomBytes(3).toString('hex')}`;
    const all = ['a', 'b', 'c'].map((name) => candidate(prefix, name));
    await until('one leader', () => all.filter(leading).length === 1);
    const leader = all.find(leading)!;
    // Current value on subscribe: false first, and each change once.
    for (const c of all) expect(c.seen).toEqual(c === leader ? [false, true] : [false]);

    const wanted = services();
    for (const s of wanted) await leader.registry.register(s);
    const lease = leaseOf(leader.registry.fingerprint(wanted[0]!));
    const before = await dump(shared.plain, `${prefix}/`);
    expect(before.keys.map((k) => k.lease)).toEqual([lease, lease, lease]);
    // The followers keep the leader's lease alive: their fingerprints are already the leader's.
    const followers = all.filter((c) => c !== leader);
    await until('followers hold the cluster lease', () =>
      followers.every((f) => leaseOf(f.registry.fingerprint(wanted[0]!)) === lease),
    );

    await leader.stop();
    await until('a successor', () => followers.filter(leading).length === 1);
    const successor = followers.find(leading)!;
    expect(await driftOf(successor.registry, wanted)).toEqual([]);
    // Longer than the TTL after the leader left: the keys are still there, untouched.
    await new Promise((resolve) => setTimeout(resolve, TTL * 1000 + 500));
    const after = await dump(shared.plain, `${prefix}/`);
    expect(after.keys).toEqual(before.keys);
    expect(followers.filter(leading)).toEqual([successor]);
  });

  it('a leader cut off from etcd steps down by itself before etcd could elect another, and leads again after', async () => {
    const prefix = `/el-${randomBytes(3).toString('hex')}`;
    const logger = warningsLogger();
    const only = candidate(prefix, 'a', logger);
    await until('it leads', () => leading(only));
    // etcd frozen: no keepalive of the campaign lease gets through. The leader must stop writing within 2/3
    // of the TTL, before etcd (were it alive elsewhere) could expire that lease and elect someone else.
    await shared.etcd.process.pause();
    try {
      await until('it stepped down', () => only.seen.at(-1) === false, 10_000);
    } finally {
      shared.etcd.process.resume();
    }
    await until('it leads again', () => leading(only), 20_000);
    expect(only.seen).toEqual([false, true, false, true]);
    // By its own deadline, not by etcd3's report of a lost lease (which comes after 2 × TTL).
    expect(logger.warnings[0]).toBe(
      'etcd election: no keepalive of the campaign lease for 2/3 of its TTL; stepping down',
    );
  });

  it('a leader process killed with SIGKILL: the next candidate is elected before the keys expire, and its list matches every key (0 writes)', async () => {
    const prefix = `/el-${randomBytes(3).toString('hex')}`;
    const child = await leaderProcess(prefix);
    const followers = ['b', 'c'].map((name) => candidate(prefix, name));
    const wanted = services();
    await until(
      'the child registered as leader',
      async () => (await dump(shared.plain, `${prefix}/`)).keys.length === 3,
    );
    const before = await dump(shared.plain, `${prefix}/`);
    const lease = before.keys[0]!.lease;
    await until('followers hold the cluster lease', () =>
      followers.every((f) => leaseOf(f.registry.fingerprint(wanted[0]!)) === lease),
    );
    expect(followers.filter(leading)).toEqual([]);

    child.kill('SIGKILL');
    await until('a successor', () => followers.filter(leading).length === 1, 10_000);
    const successor = followers.find(leading)!;
    expect(await driftOf(successor.registry, wanted)).toEqual([]);
    const after = await dump(shared.plain, `${prefix}/`);
    expect(after.keys).toEqual(before.keys);
  });
});

/** A child process that campaigns first and, once elected, registers the three services. */
async function leaderProcess(prefix: string): Promise<ChildProcess> {
  const root = fileURLToPath(new URL('../../..', import.meta.url));
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-b', join(root, 'packages/etcd')], { cwd: root });
  const dist = pathToFileURL(join(root, 'packages/etcd/dist/index.js')).href;
  const script = join(tempDir('etcd-elect'), 'lead.mjs');
  writeFileSync(
    script,
    `import { createEtcdRegistry } from ${JSON.stringify(dist)};
const [endpoint, prefix, services] = process.argv.slice(2);
const registry = createEtcdRegistry({ hosts: [endpoint], nodeId: ${JSON.stringify(NODE)}, prefix, ttl: ${TTL} });
registry.elect({ candidate: 'a' }).leading$.subscribe(async (leading) => {
  if (!leading) return;
  for (const service of JSON.parse(services)) await registry.register(service);
  process.stdout.write('registered\\n');
});
setInterval(() => undefined, 1000);
`,
  );
  const child = spawn(process.execPath, [script, shared.etcd.endpoint, prefix, JSON.stringify(services())], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  await until('the child leads', () => out.includes('registered'));
  return child;
}
