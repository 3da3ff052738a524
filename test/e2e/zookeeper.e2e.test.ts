// End to end: the built `registrar` binary against the real Docker engine and a real ZooKeeper.
import { randomBytes } from 'node:crypto';
import zookeeper from 'node-zookeeper-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { until } from '@registrar/core/testing';
import { connectedClient, startZookeeper, type ZookeeperServer } from '@registrar/test-servers/zookeeper';
import { spawnBridge, type BridgeProcess } from '../harness/bridge.js';
import { hostPort, runContainer, TEST_LABEL, uniqueName } from '../harness/containers.js';
import { removeLabelled } from '../harness/docker.js';

let zk: ZookeeperServer;
let client: zookeeper.Client;
const bridges: BridgeProcess[] = [];
const runLabel = `${TEST_LABEL}.run=${randomBytes(4).toString('hex')}`;
const [labelKey, labelValue] = runLabel.split('=') as [string, string];
const labels = { [labelKey]: labelValue };

beforeAll(async () => {
  zk = await startZookeeper();
  client = await connectedClient(zk.connectString);
});

afterEach(async () => {
  await Promise.all(bridges.splice(0).map((b) => b.kill()));
  await removeLabelled(runLabel);
});

afterAll(async () => {
  client?.close();
  await zk?.close();
});

const children = (path: string) =>
  new Promise<string[]>((resolve, reject) =>
    client.getChildren(path, (error, names) => {
      if (error instanceof zookeeper.Exception && error.getCode() === zookeeper.Exception.NO_NODE)
        resolve([]);
      else if (error) reject(new Error(String(error)));
      else resolve(names);
    }),
  );

const data = (path: string) =>
  new Promise<{ json: Record<string, unknown>; ephemeralOwner: Buffer }>((resolve, reject) =>
    client.getData(path, (error, bytes, stat) => {
      if (error) reject(new Error(String(error)));
      else
        resolve({
          json: JSON.parse(bytes.toString()) as Record<string, unknown>,
          ephemeralOwner: stat.ephemeralOwner,
        });
    }),
  );

describe('registrar → ZooKeeper, end to end', () => {
  it('creates an ephemeral Curator instance for a container, deletes it on stop, and lets it vanish on kill -9', async () => {
    const base = `/e2e-${randomBytes(3).toString('hex')}`;
    const node = `zk-${randomBytes(2).toString('hex')}`;
    const bridge = spawnBridge([
      '--ip',
      '127.0.0.1',
      '--node-id',
      node,
      '--ttl',
      '2',
      `zookeeper://${zk.connectString}${base}`,
    ]);
    bridges.push(bridge);
    const name = uniqueName('web');
    const container = await runContainer({ name, publish: ['80/tcp'], env: { SERVICE_NAME: 'web' }, labels });
    const id = `${node}:${name}:80`;
    await until('ephemeral node', async () => (await children(`${base}/web`)).includes(id));

    const { json, ephemeralOwner } = await data(`${base}/web/${id}`);
    // What Curator's JsonInstanceSerializer reads: every ServiceInstance field, with our address and port, then
    // (default payload=none) the owner and its engine, which it ignores; test/interop/curator.test.ts reads it
    // with Curator.
    expect(Object.keys(json)).toEqual([
      'name',
      'id',
      'address',
      'port',
      'sslPort',
      'payload',
      'registrationTimeUTC',
      'serviceType',
      'uriSpec',
      'registrar.node',
      'registrar.engine',
      'registrar.container.id',
      'registrar.container.name',
    ]);
    expect(json).toMatchObject({
      name: 'web',
      id,
      address: '127.0.0.1',
      port: await hostPort(container, '80/tcp'),
      payload: null,
      serviceType: 'DYNAMIC',
      'registrar.node': node,
      'registrar.container.name': name,
    });
    expect(ephemeralOwner.equals(Buffer.alloc(8))).toBe(false);

    await container.stop({ t: 0 });
    await until('node deleted on stop', async () => !(await children(`${base}/web`)).includes(id));

    await container.start();
    await until('node back', async () => (await children(`${base}/web`)).includes(id));
    await bridge.kill('SIGKILL');
    await until(
      'node gone by session expiry',
      async () => !(await children(`${base}/web`)).includes(id),
      20_000,
    );
  });
});
