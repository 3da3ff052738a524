// Docker-side faults, for every backend, through an HTTP proxy in front of the real Docker socket: the engine
// going away and coming back, an event stream that silently stops delivering, and a container list that
// briefly comes back empty.
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { until } from '@registrar/core/testing';
import { startDockerProxy, type DockerProxy } from '@registrar/test-servers/proxy';
import { startBackend, BACKENDS, type Backend } from '../harness/backends.js';
import { faultScope, idsOf, sameIds } from './common.js';

describe.each(BACKENDS)('%s', (name) => {
  let backend: Backend;
  let docker: DockerProxy;
  let t: ReturnType<typeof faultScope>;
  beforeAll(async () => {
    backend = await startBackend(name);
    docker = await startDockerProxy(
      join(tmpdir(), `registrar-docker-${randomBytes(3).toString('hex')}.sock`),
    );
  });
  afterEach(async () => {
    docker.emptyList = false;
    docker.holdEventStreams = false;
    await docker.up();
    await t.cleanup();
  });
  afterAll(async () => {
    await docker?.close();
    await backend?.close();
  });

  const converged = (what: string, expected: string[], timeoutMs?: number) =>
    t.converged(backend, what, expected, timeoutMs);
  const bridge = (extra: string[] = []) =>
    t.bridge(backend.uri(t.scope), t.node, ['--stall-check', '1', ...extra], { DOCKER_HOST: docker.host });

  it('the engine goes away and comes back: the bridge reconnects, replays what it missed and converges', async () => {
    t = faultScope(name);
    const b = bridge();
    const a = await t.container('a');
    await converged('a registered', idsOf(t.node, [a.name]));
    await docker.down();
    // Changes while the bridge cannot see the engine (containers are driven through the real socket).
    await a.container.stop({ t: 0 });
    const c = await t.container('c');
    await b.waitForLog('the lost stream noticed', (l) => l.msg.startsWith('docker event stream'));
    await docker.up();
    const back = Date.now();
    await converged('state after the engine came back', idsOf(t.node, [c.name]));
    console.log(`[measure] ${name}: converged ${Date.now() - back} ms after the engine came back`);
    expect(b.child.exitCode).toBeNull();
  });

  it('an /events response held for a long time: running containers are registered, the log says why, and the stream is used once it starts', async () => {
    t = faultScope(name);
    docker.holdEventStreams = true;
    const a = await t.container('a');
    // --stall-check 1 bounds the stream start to 1 s.
    const b = bridge();
    await converged('a registered without an event stream', idsOf(t.node, [a.name]));
    await b.waitForLog('why the stream is late', (l) =>
      l.msg.startsWith('docker event stream did not start within 1000 ms'),
    );
    docker.holdEventStreams = false;
    await b.waitForLog('the stream started', (l) => l.msg === 'docker event stream connected again');
    // Only the live stream can tell the bridge about this stop now (no --resync).
    await a.container.stop({ t: 0 });
    await converged('a removed after its stop', []);
    // Warned once; the retries while it stayed late are debug lines.
    const late = b.logs.filter((l) => l.msg.startsWith('docker event stream did not start'));
    expect(late.filter((l) => l.level === 40)).toHaveLength(1);
  });

  it('a silently stalled event stream is noticed within a bounded time and the bridge resyncs', async () => {
    t = faultScope(name);
    const b = bridge();
    await b.waitForLog('inventory', (l) => l.msg === 'docker inventory complete');
    expect(docker.stallOpenEventStreams()).toBeGreaterThan(0);
    const started = Date.now();
    const a = await t.container('a');
    await converged('a registered despite the stall', idsOf(t.node, [a.name]));
    console.log(`[measure] ${name}: registered ${Date.now() - started} ms after a start on a stalled stream`);
    // Stall check every 1 s, over windows that end 2 s in the past: noticed within a few seconds.
    expect(Date.now() - started).toBeLessThan(15_000);
    await b.waitForLog(
      'the stall logged',
      (l) => l.msg === 'docker event stream stalled: events were not delivered',
    );
  });

  it('a Docker API that briefly lists no containers does not wipe the registry', async () => {
    t = faultScope(name);
    const b = bridge(['--resync', '1', '--cleanup']);
    const a = await t.container('a');
    const c = await t.container('c');
    const expected = idsOf(t.node, [a.name, c.name]);
    await converged('registered', expected);
    docker.emptyList = true;
    // Force the inventory paths too: a reconnect lists containers again.
    await docker.down();
    await docker.up();
    const inventories = () => docker.requests.filter((r) => /\/containers\/json/.test(r)).length;
    const before = inventories();
    let wiped = false;
    await until('three empty container lists answered', async () => {
      if (!sameIds(await backend.ids(t.scope, t.service), expected)) wiped = true;
      return inventories() >= before + 3;
    });
    // And the next reconcile passes after them still hold both services.
    const passes = b.logs.filter((l) => l.msg === 'reconcile pass').length;
    await b.waitForLog(
      'two more passes',
      () => b.logs.filter((l) => l.msg === 'reconcile pass').length >= passes + 2,
    );
    expect(wiped).toBe(false);
    expect(await backend.ids(t.scope, t.service)).toHaveLength(2);
  });
});
