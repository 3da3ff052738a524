// `--labels-only` derives a crowd of containers from one container list instead of an inspect each. That is
// only right if a list entry says what the inspect says: for every shape of container here, on the real engine,
// labels-only derivation from the list entry equals labels-only derivation from the inspect.
import type { DeriveOptions } from '@registrar/core';
import { deriveServices, listedAsInspect } from '@registrar/core/internal';
import type Docker from 'dockerode';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSyntheticEngine, until } from '@registrar/core/testing';
import { startEtcd, type EtcdServer } from '@registrar/test-servers/etcd';
import { Etcd3 } from 'etcd3';
import { spawnBridge, type BridgeProcess } from '../harness/bridge.js';
import { runContainer, uniqueName, type ContainerSpec } from '../harness/containers.js';
import { docker, removeLabelled } from '../harness/docker.js';

const run = uniqueName('labels-only');
const label = `registrar.test.labels-only=${run}`;
const network = `${run}-net`;
const options: DeriveOptions = {
  nodeId: 'n1',
  hostIp: '10.0.0.9',
  internal: false,
  tags: ['t'],
  explicit: false,
  labelsOnly: true,
};

async function start(spec: Omit<ContainerSpec, 'name'>): Promise<Docker.Container> {
  return runContainer({
    name: uniqueName('lo'),
    ...spec,
    labels: { 'registrar.test.labels-only': run, ...spec.labels },
  });
}

/** The container's list entry and inspect, read back to back. */
async function both(container: Docker.Container) {
  const [entry] = await docker.listContainers({ filters: { id: [container.id] } });
  const inspect = await container.inspect();
  return { entry, inspect };
}

const health = async (container: Docker.Container) => (await container.inspect()).State.Health?.Status;

beforeAll(async () => {
  await docker.createNetwork({ Name: network, Labels: { 'registrar.test.labels-only': run } });
});
afterAll(async () => {
  await removeLabelled(label);
  await docker
    .getNetwork(network)
    .remove()
    .catch(() => undefined);
});

describe('labels only: a list entry derives as its inspect does (real Docker)', () => {
  /** Each shape, the options it is derived with, and how many services it offers. */
  const shapes: [string, Omit<ContainerSpec, 'name'>, Partial<DeriveOptions>, number][] = [
    [
      'labels, published on loopback',
      {
        publish: ['80/tcp'],
        labels: { SERVICE_NAME: 'web', SERVICE_TAGS: 'a,b', SERVICE_80_CHECK_HTTP: '/' },
      },
      {},
      1,
    ],
    [
      'published on every interface (IPv4 and IPv6 bindings)',
      { publish: ['80/tcp'], publishIp: '0.0.0.0' },
      {},
      1,
    ],
    [
      'tcp and udp, per-port names',
      { publish: ['80/tcp', '53/udp'], labels: { SERVICE_53_NAME: 'dns' } },
      {},
      2,
    ],
    [
      'exposed only, --internal',
      { expose: ['9000/tcp'], labels: { SERVICE_NAME: 'inner' } },
      { internal: true },
      1,
    ],
    ['a user network, --internal', { expose: ['9000/tcp'], network }, { internal: true }, 1],
    [
      'SERVICE_* in the environment only: ignored either way',
      { publish: ['80/tcp'], env: { SERVICE_NAME: 'env' } },
      {},
      1,
    ],
    ['--explicit, and nothing named', { publish: ['80/tcp'] }, { explicit: true }, 0],
  ];

  it.each(shapes)('%s', async (_, spec, extra, offered) => {
    const { entry, inspect } = await both(await start(spec));
    const listed = listedAsInspect(entry);
    expect(listed).toBeDefined();
    const opts = { ...options, ...extra };
    const fromList = deriveServices(listed!, opts);
    const fromInspect = deriveServices(inspect, opts);
    expect(fromInspect.services).toHaveLength(offered);
    expect(fromList.services).toEqual(fromInspect.services);
    expect(fromList.skipped).toEqual(fromInspect.skipped);
  });

  it('health checks: starting, healthy and unhealthy, without the probe output', async () => {
    const passing = await start({
      publish: ['80/tcp'],
      health: { test: ['CMD', 'true'], intervalMs: 500 },
    });
    const failing = await start({
      publish: ['80/tcp'],
      health: { test: ['CMD-SHELL', 'echo probe says no; exit 1'], intervalMs: 500 },
    });
    await until(
      'both checks decided',
      async () => (await health(passing)) === 'healthy' && (await health(failing)) === 'unhealthy',
    );
    for (const container of [passing, failing]) {
      const { entry, inspect } = await both(container);
      const fromList = deriveServices(listedAsInspect(entry)!, options);
      expect(fromList.services).toEqual(deriveServices(inspect, options).services);
      expect(fromList.services[0]?.health).toBe(container === passing ? 'passing' : 'critical');
    }
    // Without --labels-only the probe's output is recorded: only the inspect has it.
    const withOutput = deriveServices((await both(failing)).inspect, { ...options, labelsOnly: false });
    expect(withOutput.services[0]?.healthOutput).toContain('probe says no');
  });

  it('a paused container', async () => {
    const container = await start({ publish: ['80/tcp'] });
    await container.pause();
    const { entry, inspect } = await both(container);
    const fromList = deriveServices(listedAsInspect(entry)!, options);
    expect(fromList.services).toEqual(deriveServices(inspect, options).services);
    expect(fromList.services[0]?.health).toBe('critical');
    await container.unpause();
  });

  it('what the list cannot say is left to an inspect: host network', async () => {
    const { entry } = await both(await start({ expose: ['9000/tcp'], network: 'host' }));
    expect(listedAsInspect(entry)).toBeUndefined();
  });
});

describe('registrar --labels-only → etcd, end to end (real Docker)', () => {
  let etcd: EtcdServer;
  let client: Etcd3;
  let bridge: BridgeProcess | undefined;
  beforeAll(async () => {
    etcd = await startEtcd();
    client = new Etcd3({ hosts: etcd.endpoint });
  });
  afterAll(async () => {
    await bridge?.kill();
    client?.close();
    await etcd?.close();
  });

  /** `count` containers at once, each labelled as service `name`. */
  const crowd = (count: number, name: string) =>
    Promise.all(
      Array.from({ length: count }, () => start({ publish: ['80/tcp'], labels: { SERVICE_NAME: name } })),
    );
  const keys = async (prefix: string) => Object.keys(await client.getAll().prefix(`${prefix}/`).strings());
  const count = async (prefix: string, service: string) =>
    (await keys(prefix)).filter((key) => key.startsWith(`${prefix}/${service}/`)).length;

  it('a crowd at start-up and a burst later are registered, environment ignored, removed when they die; restarted, adopted and followed', async () => {
    const prefix = `/${run}`;
    // The lease is kept here, so a restarted bridge resumes it and adopts its entries without writing them.
    const stateDir = mkdtempSync(join(tmpdir(), 'labels-only-state-'));
    const args = [
      ...['--ip', '127.0.0.1', '--node-id', 'lo1', '--labels-only', '--state-dir', stateDir],
      ...['--log-level', 'debug', `etcd://127.0.0.1:${etcd.port}${prefix}`],
    ];
    // 70 containers before the bridge starts: the inventory is a crowd.
    const before = await crowd(70, 'crowd');
    const fromEnv = await start({ publish: ['80/tcp'], env: { SERVICE_NAME: 'from-env' } });
    bridge = spawnBridge(args);
    await until('the crowd registered', async () => (await count(prefix, 'crowd')) === 70, 60_000);
    // SERVICE_NAME in its environment is not read: the service is named after the image (registrar-test).
    await until('the env-only container registered by its image', async () =>
      (await keys(prefix)).includes(
        `${prefix}/registrar-test/lo1:${(await fromEnv.inspect()).Name.slice(1)}:80`,
      ),
    );
    expect(await count(prefix, 'from-env')).toBe(0);
    // A burst while running: 70 more at once.
    const burst = await crowd(70, 'burst');
    await until('the burst registered', async () => (await count(prefix, 'burst')) === 70, 60_000);
    // Listed ones go when they die.
    await Promise.all(before.slice(0, 35).map((c) => c.kill()));
    await until('the killed half removed', async () => (await count(prefix, 'crowd')) === 35, 60_000);

    // Restarted: its start-up crowd (106 containers) is answered by lists, and every entry is adopted.
    await bridge.kill('SIGTERM');
    const revision = async () => Number((await client.get('/').exec()).header.revision);
    const r0 = await revision();
    bridge = spawnBridge(args);
    const restarted = bridge;
    await restarted.waitForLog('the inventory', (l) => l.msg === 'docker inventory complete', 60_000);
    // The inventory is followed by a full pass against the registry: every pass since the restart found no
    // drift, and etcd's revision did not move.
    const inventoryAt = restarted.logs.findIndex((l) => l.msg === 'docker inventory complete');
    await until('a full pass after the inventory', () =>
      restarted.logs.slice(inventoryAt).some((l) => l.msg === 'reconcile pass'),
    );
    const drifts = restarted.logs.filter((l) => l.msg === 'reconcile pass').map((l) => l.drift);
    expect(drifts.length).toBeGreaterThan(0);
    expect(drifts.every((drift) => drift === 0)).toBe(true);
    expect(await revision()).toBe(r0);
    expect(await count(prefix, 'crowd')).toBe(35);
    expect(await count(prefix, 'burst')).toBe(70);
    // Then followed: a rename moves its key, a death removes its entry.
    const [renamed, killed] = burst;
    const newName = uniqueName('lo-renamed');
    await renamed.rename({ name: newName });
    await until('the renamed key moved', async () => {
      const now = await keys(prefix);
      return now.includes(`${prefix}/burst/lo1:${newName}:80`) && (await count(prefix, 'burst')) === 70;
    });
    await killed.kill();
    await until('the killed one removed', async () => (await count(prefix, 'burst')) === 69);
    await bridge.kill();
    bridge = undefined;
    rmSync(stateDir, { recursive: true, force: true });
  });
});

describe('registrar --labels-only --swarm', () => {
  it('says it does not apply', async () => {
    const engine = await startSyntheticEngine({ swarm: { nodes: 2 } });
    const etcd = await startEtcd();
    const bridge = spawnBridge(['--swarm', '--labels-only', `etcd://127.0.0.1:${etcd.port}/${run}-swarm`], {
      DOCKER_HOST: engine.host,
    });
    try {
      await bridge.waitForLog('the warning', (l) =>
        l.msg.startsWith('--labels-only does not apply with --swarm'),
      );
    } finally {
      await bridge.kill();
      await etcd.close();
      await engine.close();
    }
  });
});
