// The built CLI against a hostile Docker engine (@registrar/core/testing's synthetic engine on a unix socket,
// with faults), writing to a real etcd: calls that hang, event lines that are malformed, endless or countless,
// a stall check whose query never ends, an inspect that always fails, a host name that is no node id. Nothing
// the engine sends may crash, hang or blind the bridge.
import { freePort, startSyntheticEngine, until, type SyntheticEngine } from '@registrar/core/testing';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startBackend, type Backend } from '../harness/backends.js';
import { runCli, type BridgeProcess } from '../harness/bridge.js';
import { faultScope, idsOf, sameIds } from './common.js';

let backend: Backend;
let engine: SyntheticEngine;
let t: ReturnType<typeof faultScope>;

beforeAll(async () => {
  backend = await startBackend('etcd');
});
afterEach(async () => {
  await t.cleanup();
  await engine?.close();
});
afterAll(async () => {
  await backend?.close();
});

/** A bridge on the hostile engine; `--docker-timeout 1` keeps hung calls short. */
async function start(extra: string[] = [], options: Parameters<typeof startSyntheticEngine>[0] = {}) {
  engine = await startSyntheticEngine(options);
  t = faultScope('etcd');
  const metricsPort = await freePort();
  const bridge = t.bridge(
    backend.uri(t.scope),
    t.node,
    ['--docker-timeout', '1', '--metrics-addr', `127.0.0.1:${metricsPort}`, ...extra],
    { DOCKER_HOST: engine.host },
  );
  return { bridge, metricsPort };
}

const held = (what: string, names: string[], timeoutMs?: number) =>
  until(what, async () => sameIds(await backend.ids(t.scope, t.service), idsOf(t.node, names)), timeoutMs);

const readyz = async (port: number) =>
  (await (await fetch(`http://127.0.0.1:${port}/readyz`)).json()) as Record<string, unknown>;

const metric = async (port: number, name: string) => {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return text.split('\n').filter((line) => line.startsWith(name));
};

/** Peak resident memory (MiB) and CPU time (s) of a process so far. */
function usage(bridge: BridgeProcess) {
  const pid = bridge.child.pid!;
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const peakKiB = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1]);
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  const ticks = Number(stat[11]) + Number(stat[12]);
  return { peakMiB: peakKiB / 1024, cpuSeconds: ticks / 100 };
}

const openFds = (bridge: BridgeProcess) => readdirSync(`/proc/${bridge.child.pid}/fd`).length;

describe('calls that hang', () => {
  it('20 hung inspects: a new container is still registered, the hang is logged and /readyz says why', async () => {
    const { bridge, metricsPort } = await start();
    await bridge.waitForLog('inventory', (l) => l.msg === 'docker inventory complete');
    for (let i = 0; i < 20; i++) {
      const id = engine.start({ name: `hung-${i}`, service: t.service });
      engine.fault('inspect', { kind: 'hang' }, id);
    }
    engine.start({ name: 'fresh', service: t.service });
    await held('the fresh container registered despite 20 hung inspects', ['fresh']);
    await bridge.waitForLog('the hang', (l) =>
      /did not answer within 1000 ms/.test(String((l.err as { message?: string } | undefined)?.message)),
    );
    await until('/readyz names the failing calls', async () => {
      const body = await readyz(metricsPort);
      return body.ready === false && body.dockerCalls !== undefined;
    });
    const timeouts = await metric(
      metricsPort,
      'registrar_docker_calls_total{call="inspect",outcome="timeout"}',
    );
    expect(Number(timeouts[0]?.split(' ')[1])).toBeGreaterThan(0);
    // Shutdown is prompt whatever hangs.
    const signalled = Date.now();
    bridge.child.kill('SIGTERM');
    expect((await bridge.exited).code).toBe(0);
    expect(Date.now() - signalled).toBeLessThan(3_000);
  });

  it('a die queued behind a hung inspect of the same container applies at once', async () => {
    const { bridge } = await start(['--docker-timeout', '30']);
    const id = engine.start({ name: 'web', service: t.service });
    await held('registered', ['web']);
    engine.fault('inspect', { kind: 'hang' }, id);
    // An event that asks for an inspect, which hangs (for 30 s), then the container dies.
    engine.emitRaw({ Action: 'update', id, Actor: { ID: id, Attributes: {} } });
    await until('the hung inspect is in flight', () => engine.held() === 1);
    engine.die(id);
    await held('removed at the die, without waiting for the hung inspect', [], 5_000);
    expect(bridge.child.exitCode).toBeNull();
  });

  it('a container list that hangs at start: logged, and the containers are registered once it answers', async () => {
    engine = await startSyntheticEngine();
    engine.fault('list', { kind: 'hang' });
    engine.add({ name: 'early', service: `later` });
    t = faultScope('etcd');
    const bridge = t.bridge(backend.uri(t.scope), t.node, ['--docker-timeout', '1'], {
      DOCKER_HOST: engine.host,
    });
    engine.add({ name: 'web', service: t.service });
    await bridge.waitForLog('the hung list', (l) => l.level === 40 && /container list/.test(l.msg));
    engine.fault('list', undefined);
    await held('registered once the list answers', ['web']);
  });

  it('an inspect that always fails does not hold back the inventory; /readyz names the container', async () => {
    engine = await startSyntheticEngine();
    const broken = engine.add({ name: 'broken', service: 'x' });
    engine.fault('inspect', { kind: 'fail', status: 500 }, broken);
    t = faultScope('etcd');
    engine.add({ name: 'web', service: t.service });
    const metricsPort = await freePort();
    const bridge = t.bridge(backend.uri(t.scope), t.node, ['--metrics-addr', `127.0.0.1:${metricsPort}`], {
      DOCKER_HOST: engine.host,
    });
    await bridge.waitForLog('inventory', (l) => l.msg === 'docker inventory complete');
    await bridge.waitForLog('the broken container', (l) => l.msg.startsWith('container cannot be inspected'));
    await held('the other registered', ['web']);
    const body = await readyz(metricsPort);
    expect(body).toMatchObject({ ready: false, inventory: true, unresolved: [{ id: broken }] });
  });
});

describe('event lines', () => {
  it('malformed events (timeNano "abc", Action 5, …) are skipped; thousands of actions make no new series', async () => {
    const { bridge, metricsPort } = await start();
    await bridge.waitForLog('inventory', (l) => l.msg === 'docker inventory complete');
    const id = 'f'.repeat(64);
    engine.emitRaw({ Action: 'start', id, Actor: { ID: id }, timeNano: 'abc', time: 'x' });
    engine.emitRaw({ Action: 5, id, Actor: { ID: id } });
    engine.emitRaw({ Action: 'start', Actor: 'nope' });
    engine.emitRaw({ Action: 'start', id: '../../info', Actor: { ID: '../../info' } });
    engine.writeRaw('[1,2,3]\nnull\n"text"\n');
    for (let i = 0; i < 2_000; i++) engine.emitRaw({ Action: `made-up-${i}`, id, Actor: { ID: id } });
    engine.start({ name: 'after', service: t.service });
    await held('a container started after them registered', ['after']);
    expect(bridge.child.exitCode).toBeNull();
    const series = await metric(metricsPort, 'registrar_docker_events_total{');
    expect(series.length).toBeGreaterThan(0);
    expect(series.length).toBeLessThanOrEqual(14);
  });

  it('100 MB without a newline, with --ttl 4: bounded CPU and memory, no lease lost, the next event applies', async () => {
    const { bridge } = await start(['--ttl', '4']);
    await bridge.waitForLog('inventory', (l) => l.msg === 'docker inventory complete');
    const before = usage(bridge);
    const chunk = Buffer.alloc(1 << 20, 'x');
    for (let i = 0; i < 100; i++) engine.writeRaw(chunk);
    engine.writeRaw('\n');
    engine.start({ name: 'after', service: t.service });
    await held('registered after the endless line', ['after']);
    const after = usage(bridge);
    console.log(
      `[measure] 100 MB line: ${(after.cpuSeconds - before.cpuSeconds).toFixed(2)} s CPU, peak RSS ${after.peakMiB.toFixed(0)} MiB`,
    );
    // Was 36 s of CPU and 834 MB for 50 MB.
    expect(after.cpuSeconds - before.cpuSeconds).toBeLessThan(10);
    expect(after.peakMiB).toBeLessThan(300);
    expect(bridge.logs.filter((l) => l.msg.includes('liveness lost'))).toEqual([]);
    expect(bridge.logs.filter((l) => l.msg === 'docker event line skipped')).toHaveLength(1);
  });

  it('200,000 unparseable lines: warned about a handful of times, not 200,000', async () => {
    const { bridge } = await start();
    await bridge.waitForLog('inventory', (l) => l.msg === 'docker inventory complete');
    const lines = 'not json at all\n'.repeat(10_000);
    for (let i = 0; i < 20; i++) engine.writeRaw(lines);
    engine.start({ name: 'after', service: t.service });
    await held('registered after the garbage', ['after']);
    const warned = bridge.logs.filter((l) => l.msg === 'docker event line skipped');
    expect(warned.length).toBeGreaterThanOrEqual(1);
    expect(warned.length).toBeLessThanOrEqual(3);
  });

  it('a burst of 50,000 events for unknown containers: peak memory stays under 256 MB', async () => {
    const { bridge } = await start();
    await bridge.waitForLog('inventory', (l) => l.msg === 'docker inventory complete');
    for (let i = 0; i < 50_000; i++) {
      const id = i.toString(16).padStart(64, '0');
      engine.emitRaw({ Action: 'start', id, Actor: { ID: id, Attributes: { name: `ghost-${i}` } } });
    }
    engine.start({ name: 'after', service: t.service });
    // Its start event came after the 50,000: registered once they are dealt with.
    await held('registered after the burst', ['after'], 60_000);
    const { peakMiB } = usage(bridge);
    console.log(
      `[measure] 50,000 unknown ids: peak RSS ${peakMiB.toFixed(0)} MiB, ${engine.requests.inspect} inspects, ${engine.requests.list} lists`,
    );
    expect(peakMiB).toBeLessThan(256);
    // Container lists answered most of them: an inspect each would be 50,000 requests.
    expect(engine.requests.inspect).toBeLessThan(10_000);
  });
});

describe('the stall check', () => {
  it('a bounded query whose body never ends: no connection kept per interval, one warning', async () => {
    const { bridge } = await start(['--stall-check', '1']);
    await bridge.waitForLog('inventory', (l) => l.msg === 'docker inventory complete');
    engine.fault('eventsQuery', { kind: 'stall' });
    await until('a stalled query', () => engine.requests.eventsQueries >= 2, 20_000);
    const fds = openFds(bridge);
    const queries = engine.requests.eventsQueries;
    await until('ten more intervals', () => engine.requests.eventsQueries >= queries + 10, 30_000);
    // The old check leaked one connection per interval (32 → 83 fds in 60 s).
    expect(openFds(bridge) - fds).toBeLessThanOrEqual(2);
    expect(engine.held()).toBeLessThanOrEqual(1);
    expect(
      bridge.logs.filter((l) => l.msg.startsWith('docker stall check failed')).map((l) => l.level),
    ).toEqual([40]);
  });
});

describe('what the engine says about itself', () => {
  it('a host name that cannot be a node id: exit 2 with one line that says to pass --node-id', async () => {
    engine = await startSyntheticEngine({ name: 'bad:name' });
    t = faultScope('etcd');
    const result = await runCli(['--ip', '127.0.0.1', backend.uri(t.scope)], { DOCKER_HOST: engine.host });
    expect(result.code).toBe(2);
    expect(result.stderr.join('\n')).toMatch(/host name "bad:name".*pass --node-id/);
  });
});

describe('/debug', () => {
  /** A non-loopback address of this machine, of the project's test range, on a veth pair of its own. */
  function testAddress() {
    const tag = randomBytes(2).toString('hex');
    const link = `rgdbg-${tag}`;
    const address = `10.236.${process.pid % 250}.1`;
    execFileSync('ip', ['link', 'add', link, 'type', 'veth', 'peer', 'name', `${link}p`]);
    execFileSync('ip', ['addr', 'add', `${address}/32`, 'dev', link]);
    execFileSync('ip', ['link', 'set', link, 'up']);
    return { address, remove: () => execFileSync('ip', ['link', 'del', link]) };
  }

  it('answers loopback clients only, unless --debug-remote; /metrics answers everyone', async () => {
    const local = testAddress();
    try {
      engine = await startSyntheticEngine();
      t = faultScope('etcd');
      const port = await freePort();
      const served = (extra: string[]) =>
        t.bridge(backend.uri(t.scope), t.node, ['--metrics-addr', `${local.address}:${port}`, ...extra], {
          DOCKER_HOST: engine.host,
        });
      const bridge = served([]);
      await bridge.waitForLog('inventory', (l) => l.msg === 'docker inventory complete');
      // Connecting to an address of this machine that is not loopback: the client is not loopback either.
      const remote = await fetch(`http://${local.address}:${port}/debug/containers`);
      expect(remote.status).toBe(403);
      expect(((await remote.json()) as { message: string }).message).toMatch(/--debug-remote/);
      expect((await fetch(`http://${local.address}:${port}/metrics`)).status).toBe(200);
      await bridge.kill();

      const open = served(['--debug-remote']);
      await open.waitForLog('inventory', (l) => l.msg === 'docker inventory complete');
      expect((await fetch(`http://${local.address}:${port}/debug/containers`)).status).toBe(200);
    } finally {
      local.remove();
    }
  });
});
