// Real Docker engine restarts, on a dockerd of this file's own (a network namespace; see harness/engine.ts), so
// no other test's containers are touched. One bridge writes to etcd, ZooKeeper and Consul (the double) at once,
// registering the containers' addresses on the engine's bridge network (--internal --network).
// - With --live-restore: the engine restarts amid churn; containers keep running; the bridge reconnects,
//   replays and converges with no entry removed and re-added (write stamps unchanged).
// - Without it: `--restart always` containers come back; the registries hold exactly their addresses now.
// - The engine down for 60 s: the bridge stays up, /readyz says Docker is not connected, and it converges when
//   the engine returns.
import type Docker from 'dockerode';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freePort, until } from '@registrar/core/testing';
import { startBackend, type Backend } from '../harness/backends.js';
import { spawnBridge, type BridgeProcess } from '../harness/bridge.js';
import { TEST_IMAGE } from '../harness/docker.js';
import { startEngine, type Engine } from '../harness/engine.js';
import { faultScope, sameIds } from './common.js';

let engine: Engine;
let backends: Backend[];
let bridge: BridgeProcess | undefined;

beforeAll(async () => {
  [engine, ...backends] = await Promise.all([
    startEngine({ liveRestore: true }),
    startBackend('etcd'),
    startBackend('zookeeper'),
    startBackend('consul'),
  ]);
}, 180_000);
afterEach(async () => {
  await bridge?.kill();
  bridge = undefined;
  if (!engine.running) await engine.start({ liveRestore: true });
  const list = await engine.docker.listContainers({ all: true });
  await Promise.all(list.map((c) => engine.docker.getContainer(c.Id).remove({ force: true })));
}, 120_000);
afterAll(async () => {
  await engine?.close();
  await Promise.all((backends ?? []).map((b) => b.close()));
}, 120_000);

/** One scope for the three registries: a prefix for etcd and ZooKeeper, the service name for Consul. */
function scoped() {
  const scope = faultScope('etcd');
  const uris = backends.map((b) => b.uri(scope.scope));
  return { scope, uris };
}

async function start(scope: ReturnType<typeof faultScope>, prefix: string, restart = false) {
  const name = `${prefix}-${Math.random().toString(16).slice(2, 8)}`;
  const container = await engine.docker.createContainer({
    name,
    Image: TEST_IMAGE,
    Cmd: ['httpd', '-f', '-p', '80', '-h', '/www'],
    Env: [`SERVICE_NAME=${scope.service}`],
    ExposedPorts: { '80/tcp': {} },
    StopTimeout: 1,
    HostConfig: { NetworkMode: engine.network, ...(restart && { RestartPolicy: { Name: 'always' } }) },
  });
  await container.start();
  return { name, container };
}

/** Each registry's `<id> → stamp` for the scope's service. */
async function stamps(scope: ReturnType<typeof faultScope>): Promise<Map<string, string>[]> {
  return Promise.all(backends.map((b) => b.stamps(scope.scope, scope.service)));
}

/** Until every registry holds exactly these ids (any order). */
async function exact(scope: ReturnType<typeof faultScope>, what: string, ids: string[], timeoutMs = 30_000) {
  await until(
    what,
    async () => {
      const held = await Promise.all(backends.map((b) => b.ids(scope.scope, scope.service)));
      return held.every((h) => sameIds(h, ids));
    },
    timeoutMs,
  );
}

const idOf = (node: string, name: string) => `${node}:${name}:80`;

function spawn(scope: ReturnType<typeof faultScope>, uris: string[], extra: string[] = []) {
  bridge = spawnBridge([
    '--docker-host',
    engine.host,
    '--internal',
    '--network',
    engine.network,
    '--node-id',
    scope.node,
    '--ttl',
    '5',
    '--stall-check',
    '2',
    '--log-level',
    'debug',
    ...extra,
    ...uris,
  ]);
  return bridge;
}

describe('a real Docker engine restarted', { shuffle: false }, () => {
  it('with --live-restore, amid churn: containers keep running and no entry is removed and re-added', async () => {
    const { scope, uris } = scoped();
    spawn(scope, uris);
    const [a, b] = await Promise.all([start(scope, 'a'), start(scope, 'b')]);
    await exact(scope, 'a and b registered', [idOf(scope.node, a.name), idOf(scope.node, b.name)]);
    const before = await stamps(scope);

    // Churn on both sides of the restart: c starts just before it, b goes and d starts right after.
    const c = await start(scope, 'c');
    await engine.stop();
    await engine.start({ liveRestore: true });
    const backAt = Date.now();
    const [, d] = await Promise.all([b.container.remove({ force: true }), start(scope, 'd')]);
    const expected = [a, c, d].map((x) => idOf(scope.node, x.name));
    await exact(scope, 'exact after the restart', expected);
    const converged = Date.now() - backAt;

    expect((await a.container.inspect()).State.Running).toBe(true);
    const after = await stamps(scope);
    const rewritten = backends.filter(
      (_, i) => after[i]!.get(idOf(scope.node, a.name)) !== before[i]!.get(idOf(scope.node, a.name)),
    );
    console.log(
      `[measure] engine restarted with --live-restore amid churn: every registry exact ${converged} ms after it returned; a's entry rewritten in ${rewritten.length} of 3`,
    );
    expect(rewritten.map((r) => r.name)).toEqual([]);
  }, 120_000);

  it('without --live-restore: --restart always containers come back and the registries hold exactly their addresses', async () => {
    const { scope, uris } = scoped();
    await engine.stop();
    await engine.start({ liveRestore: false });
    // A spacer takes the network's first address and is gone before the restart; the engine then hands its
    // containers addresses from the start of the range again, so they come back at other addresses.
    const spacer = await engine.docker.createContainer({
      Image: TEST_IMAGE,
      Cmd: ['sleep', '3600'],
      HostConfig: { NetworkMode: engine.network },
    });
    await spacer.start();
    spawn(scope, uris);
    const a = await start(scope, 'a', true);
    const b = await start(scope, 'b', true);
    await spacer.remove({ force: true });
    const ids = [a, b].map((x) => idOf(scope.node, x.name));
    await exact(scope, 'a and b registered', ids);
    const address = async (x: { container: Docker.Container }) =>
      (await x.container.inspect()).NetworkSettings.Networks[engine.network]?.IPAddress ?? '';
    const oldAddresses = await Promise.all([a, b].map(address));

    await engine.stop();
    await engine.start({ liveRestore: false });
    const backAt = Date.now();
    await until('both restarted by Docker', async () =>
      (await Promise.all([a, b].map(async (x) => (await x.container.inspect()).State.Running))).every(
        Boolean,
      ),
    );
    const newAddresses = await Promise.all([a, b].map(address));
    // Every registry holds each container at the address it has now, and nothing else.
    const current = Object.fromEntries([a, b].map((x, i) => [idOf(scope.node, x.name), newAddresses[i]]));
    await until(
      'every registry holding the current addresses',
      async () =>
        (await addressesIn(scope)).every(
          (held) =>
            JSON.stringify(Object.fromEntries([...held].sort())) ===
            JSON.stringify(Object.fromEntries(Object.entries(current).sort())),
        ),
      30_000,
    );
    const converged = Date.now() - backAt;
    const changed = oldAddresses.filter((old, i) => old !== newAddresses[i]).length;
    console.log(
      `[measure] engine restarted without --live-restore: every registry exact ${converged} ms after it returned; ${changed} of 2 containers came back at a new address (${oldAddresses.join(',')} → ${newAddresses.join(',')})`,
    );
    for (const held of await addressesIn(scope)) expect(Object.fromEntries(held)).toEqual(current);
    expect(changed).toBeGreaterThan(0);
    await engine.stop();
    await engine.start({ liveRestore: true });
  }, 180_000);

  it('down for 60 s: the bridge stays up, /readyz says why, and it converges when the engine returns', async () => {
    const { scope, uris } = scoped();
    const port = await freePort();
    const b = spawn(scope, uris, ['--metrics-addr', `127.0.0.1:${port}`]);
    const a = await start(scope, 'a');
    await exact(scope, 'a registered', [idOf(scope.node, a.name)]);
    const readyz = async () => {
      const res = await fetch(`http://127.0.0.1:${port}/readyz`);
      return { status: res.status, body: (await res.json()) as { docker?: boolean } };
    };
    // Registered is not yet ready: a first list that came back empty (the bridge listed before `a` started) is
    // confirmed by a second one a second later, and the inventory is complete only then.
    await until('ready', async () => (await readyz()).status === 200);
    const before = await stamps(scope);

    const downAt = Date.now();
    await engine.stop();
    await until('/readyz says Docker is not connected', async () => {
      const r = await readyz();
      return r.status === 503 && r.body.docker === false;
    });
    // The fault itself lasts 60 s (the scenario).
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, downAt + 60_000 - Date.now())));
    expect(b.child.exitCode).toBeNull();
    await engine.start({ liveRestore: true });
    const backAt = Date.now();
    const c = await start(scope, 'c');
    await exact(
      scope,
      'exact after the engine returned',
      [a, c].map((x) => idOf(scope.node, x.name)),
    );
    const converged = Date.now() - backAt;
    await until('/readyz ready again', async () => (await readyz()).status === 200);
    const after = await stamps(scope);
    const rewritten = backends.filter(
      (_, i) => after[i]!.get(idOf(scope.node, a.name)) !== before[i]!.get(idOf(scope.node, a.name)),
    );
    console.log(
      `[measure] engine down for 60 s: bridge up throughout; exact ${converged} ms after it returned; a's entry rewritten in ${rewritten.length} of 3`,
    );
    // a ran through it (live restore): nothing about it changed, so nothing was written.
    expect(rewritten.map((r) => r.name)).toEqual([]);
  }, 180_000);
});

/** `id → address` in each registry for the scope's service. */
async function addressesIn(scope: ReturnType<typeof faultScope>): Promise<Map<string, string>[]> {
  return Promise.all(backends.map((b) => b.addresses(scope.scope, scope.service)));
}
