// Interop: real Apache Curator 5.4 (Debian's jars) reading the nodes that the built `registrar` binary writes
// for a real container, in each `?payload=` mode. Two consumers, both using Curator's own JsonInstanceSerializer:
// a generic one (`ServiceDiscovery<Map>`, no Spring class on its class path) and a Spring-style one
// (payload type `org.springframework.cloud.zookeeper.discovery.ZookeeperInstance`, compiled here).
import type Docker from 'dockerode';
import { randomBytes } from 'node:crypto';
import type zookeeper from 'node-zookeeper-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { until } from '@registrar/core/testing';
import { removeDir, tempDir } from '@registrar/test-servers/process';
import { connectedClient, startZookeeper, type ZookeeperServer } from '@registrar/test-servers/zookeeper';
import { spawnBridge, type BridgeProcess } from '../harness/bridge.js';
import { hostPort, runContainer, TEST_LABEL, uniqueName } from '../harness/containers.js';
import { docker, removeLabelled } from '../harness/docker.js';
import {
  checkCuratorTools,
  compileProbe,
  startProbe,
  type CuratorInstance,
  type CuratorProbe,
  type ProbeAnswer,
  type ReaderType,
} from './curator-probe.js';

const SPRING_CLASS = 'org.springframework.cloud.zookeeper.discovery.ZookeeperInstance';

let zk: ZookeeperServer | undefined;
let raw: zookeeper.Client | undefined;
let dir: string | undefined;
let network: Docker.Network | undefined;
/** A generic Curator consumer (payload type Map) and a Spring-style one (payload type ZookeeperInstance). */
const probes: Partial<Record<ReaderType, CuratorProbe>> = {};
const bridges: BridgeProcess[] = [];
const runLabel = `${TEST_LABEL}.run=${randomBytes(4).toString('hex')}`;
const [labelKey, labelValue] = runLabel.split('=') as [string, string];
/**
 * The service name every container here offers. The bridges see the whole engine, and other test files run
 * containers offering `web` at the same time; a name of this run's own keeps their instances out of these queries.
 */
const SERVICE = `web-${labelValue}`;

beforeAll(async () => {
  await checkCuratorTools();
  dir = tempDir('curator');
  // A network of its own: nothing here depends on Docker's default bridge or on other tests' containers.
  network = await docker.createNetwork({
    Name: `registrar-curator-${labelValue}`,
    Labels: { [labelKey]: labelValue },
  });
  const [classpath, server] = await Promise.all([compileProbe(dir), startZookeeper()]);
  zk = server;
  const connectString = zk.connectString;
  await Promise.all([
    startProbe({ classpath: classpath.generic, connectString, dir, name: 'curator-map' }).then(
      (p) => (probes.map = p),
    ),
    startProbe({ classpath: classpath.spring, connectString, dir, name: 'curator-spring' }).then(
      (p) => (probes.spring = p),
    ),
  ]);
  raw = await connectedClient(zk.connectString);
});

afterEach(async () => {
  await Promise.all(bridges.splice(0).map((b) => b.kill()));
  await removeLabelled(runLabel);
});

afterAll(async () => {
  await Promise.all(Object.values(probes).map((p) => p.close()));
  raw?.close();
  await zk?.close();
  await removeLabelled(runLabel);
  await network?.remove();
  if (dir) removeDir(dir);
});

const probe = (type: ReaderType) => probes[type]!;

/** The bytes of a node as registrar stored them. */
const stored = (path: string) =>
  new Promise<string>((resolve, reject) =>
    raw!.getData(path, (error, data) =>
      error ? reject(new Error(String(error))) : resolve(data.toString()),
    ),
  );

function instances(answer: ProbeAnswer): CuratorInstance[] {
  if (!answer.ok) throw new Error(`Curator failed: ${answer.error}: ${answer.message}`);
  return answer.instances ?? [];
}

const ids = (answer: ProbeAnswer) => instances(answer).map((i) => i.id);

/**
 * A bridge writing into `uris`, and one container offering SERVICE on a published port, with metadata.
 * `dualStack`: published on all interfaces (0.0.0.0 and ::) and advertised with `--ip 127.0.0.1 --ip ::1`.
 */
async function bridgeAndContainer(uris: string[], dualStack = false) {
  const node = `cur-${randomBytes(2).toString('hex')}`;
  const ips = dualStack ? ['--ip', '127.0.0.1', '--ip', '::1'] : ['--ip', '127.0.0.1'];
  bridges.push(spawnBridge([...ips, '--node-id', node, '--ttl', '2', ...uris]));
  const name = uniqueName('curator');
  const container = await runContainer({
    name,
    publish: ['80/tcp'],
    ...(dualStack && { publishIp: '' }),
    env: { SERVICE_NAME: SERVICE, SERVICE_TAGS: 'blue,green', SERVICE_VERSION: '1.2' },
    labels: { [labelKey]: labelValue },
    network: network!.id,
  });
  return { node, name, container, id: `${node}:${name}:80`, port: await hostPort(container, '80/tcp') };
}

/**
 * The metadata registrar derives for that container (the spring and plain payloads carry it), with the
 * writing engine's ID beside the owner node.
 */
const metadataOf = async (node: string, name: string, container: Docker.Container) => ({
  version: '1.2',
  tags: 'blue,green',
  protocol: 'tcp',
  'registrar.node': node,
  'registrar.engine': (await docker.info()).ID as string,
  'registrar.container.id': container.id,
  'registrar.container.name': name,
});

describe('Apache Curator 5 reads what the bridge writes', () => {
  const modes: {
    mode: 'spring' | 'plain' | 'none';
    readers: ReaderType[];
    /** Consumers whose whole query throws, with the exception. */
    refusedBy: Partial<Record<ReaderType, string>>;
  }[] = [
    {
      mode: 'spring',
      readers: ['spring'],
      refusedBy: { map: 'com.fasterxml.jackson.databind.exc.InvalidTypeIdException' },
    },
    { mode: 'plain', readers: ['map'], refusedBy: { spring: 'java.lang.ClassCastException' } },
    { mode: 'none', readers: ['map', 'spring'], refusedBy: {} },
  ];

  it.each(modes)(
    'payload=$mode: queryForInstances and a ServiceCache see the container, and see it go on docker stop',
    async ({ mode, readers, refusedBy }) => {
      const base = `/curator-${mode}-${randomBytes(3).toString('hex')}`;
      // Caches started before the container exists, like a consumer that runs all along.
      for (const type of readers) expect(ids(await probe(type).cache(type, base, SERVICE))).toEqual([]);

      const { node, name, container, id, port } = await bridgeAndContainer([
        `zookeeper://${zk!.connectString}${base}?payload=${mode}`,
      ]);
      const metadata = await metadataOf(node, name, container);

      for (const type of readers) {
        let found: CuratorInstance[] = [];
        await until(`${type} consumer: queryForInstances(${SERVICE}) in ${base}`, async () => {
          found = instances(await probe(type).query(type, base, SERVICE));
          return found.length > 0;
        });
        expect(found).toHaveLength(1);
        const instance = found[0]!;
        expect(instance).toMatchObject({
          id,
          name: SERVICE,
          address: '127.0.0.1',
          port,
          sslPort: null,
          serviceType: 'DYNAMIC',
          enabled: true,
        });
        const bytes = await stored(`${base}/${SERVICE}/${id}`);
        if (mode === 'spring') {
          expect(instance.payloadClass).toBe(SPRING_CLASS);
          expect(instance.payload).toEqual({ id, name: SERVICE, metadata });
        } else if (mode === 'plain') {
          expect(instance.payloadClass).toBe('java.util.LinkedHashMap');
          expect(instance.payload).toEqual(metadata);
          // Byte for byte what Curator itself writes for this instance with a Map payload.
          expect(bytes).toBe(instance.serialized);
        } else {
          expect(instance.payloadClass).toBeNull();
          expect(instance.payload).toBeNull();
          // Curator's own bytes, then the owner fields its JsonInstanceSerializer ignored.
          expect(bytes.startsWith(`${instance.serialized.slice(0, -1)},"registrar.node":"${node}",`)).toBe(
            true,
          );
        }

        await until(`${type} consumer: ServiceCache(${SERVICE}) in ${base} has ${id}`, async () =>
          ids(await probe(type).cache(type, base, SERVICE)).includes(id),
        );
        expect(instances(await probe(type).cache(type, base, SERVICE))).toMatchObject([
          { id, address: '127.0.0.1', port },
        ]);
      }

      // A consumer built for the other payload type: its whole query throws.
      for (const [type, error] of Object.entries(refusedBy) as [ReaderType, string][]) {
        expect(await probe(type).query(type, base, SERVICE)).toMatchObject({ ok: false, error });
      }

      await container.stop({ t: 0 });
      for (const type of readers) {
        await until(`${type} consumer: ServiceCache(${SERVICE}) in ${base} loses ${id}`, async () =>
          ids(await probe(type).cache(type, base, SERVICE)).every((found) => found !== id),
        );
        expect(ids(await probe(type).query(type, base, SERVICE))).toEqual([]);
      }
    },
  );

  it("a consumer of the other payload type fails on the whole query, even beside its own application's instance; its ServiceCache skips the node", async () => {
    const base = `/curator-mixed-${randomBytes(3).toString('hex')}`;
    const { id } = await bridgeAndContainer(
      (['spring', 'plain', 'none'] as const).map(
        (mode) => `zookeeper://${zk!.connectString}${base}-${mode}?payload=${mode}`,
      ),
    );
    for (const mode of ['spring', 'plain', 'none']) {
      await until(
        `registrar's node in ${base}-${mode}`,
        async () => (await stored(`${base}-${mode}/${SERVICE}/${id}`).catch(() => '')) !== '',
      );
    }
    // Each consumer's own application registers an instance of SERVICE through Curator.
    expect(await probe('map').register('map', `${base}-spring`, SERVICE, 'app-map', 1111)).toEqual({
      ok: true,
    });
    expect(await probe('spring').register('spring', `${base}-plain`, SERVICE, 'app-spring', 2222)).toEqual({
      ok: true,
    });
    expect(await probe('map').register('map', `${base}-none`, SERVICE, 'app-map', 1111)).toEqual({
      ok: true,
    });

    // Spring payload, generic consumer: Jackson cannot resolve the @class, and nothing of SERVICE comes back.
    expect(await probe('map').query('map', `${base}-spring`, SERVICE)).toEqual({
      ok: false,
      error: 'com.fasterxml.jackson.databind.exc.InvalidTypeIdException',
      message: `Could not resolve type id '${SPRING_CLASS}' as a subtype of \`java.lang.Object\`: no such class found`,
    });
    // Plain payload, Spring-style consumer: the Map is not a ZookeeperInstance.
    expect(await probe('spring').query('spring', `${base}-plain`, SERVICE)).toEqual({
      ok: false,
      error: 'java.lang.ClassCastException',
      message: `Cannot cast java.util.LinkedHashMap to ${SPRING_CLASS}`,
    });
    // A ServiceCache started now has loaded every node once start() returns: it keeps the application's
    // instance and leaves out the node it cannot read (Curator logs the exception).
    expect(ids(await probe('map').cache('map', `${base}-spring`, SERVICE))).toEqual(['app-map']);
    expect(ids(await probe('spring').cache('spring', `${base}-plain`, SERVICE))).toEqual(['app-spring']);

    // No payload: the generic consumer gets its application's instance and registrar's in one query.
    expect(ids(await probe('map').query('map', `${base}-none`, SERVICE))).toEqual(['app-map', id].sort());
  });

  it("a dual-stack node's `addresses` field is ignored by every consumer: they read the IPv4 address and port", async () => {
    const base = `/curator-dual-${randomBytes(3).toString('hex')}`;
    const { id, port } = await bridgeAndContainer(
      (['spring', 'plain', 'none'] as const).map(
        (mode) => `zookeeper://${zk!.connectString}${base}-${mode}?payload=${mode}`,
      ),
      true,
    );
    for (const { mode, readers } of modes) {
      await until(`the dual-stack node in ${base}-${mode}`, async () =>
        (await stored(`${base}-${mode}/${SERVICE}/${id}`).catch(() => '')).includes('"addresses"'),
      );
      for (const type of readers) {
        expect(instances(await probe(type).query(type, `${base}-${mode}`, SERVICE))).toMatchObject([
          { id, address: '127.0.0.1', port },
        ]);
      }
    }
  });
});
