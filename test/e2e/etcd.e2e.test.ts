// End to end: the built `registrar` binary against the real Docker engine and a real etcd.
import { Etcd3 } from 'etcd3';
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startEtcd, type EtcdServer } from '@registrar/test-servers/etcd';
import { until } from '@registrar/core/testing';
import { spawnBridge, type BridgeProcess } from '../harness/bridge.js';
import { exec, hostPort, runContainer, TEST_LABEL, uniqueName } from '../harness/containers.js';
import { docker, removeLabelled } from '../harness/docker.js';

let etcd: EtcdServer;
let client: Etcd3;
const bridges: BridgeProcess[] = [];
const runLabel = `${TEST_LABEL}.run=${randomBytes(4).toString('hex')}`;
const [labelKey, labelValue] = runLabel.split('=') as [string, string];

beforeAll(async () => {
  etcd = await startEtcd();
  client = new Etcd3({ hosts: etcd.endpoint });
});

afterEach(async () => {
  await Promise.all(bridges.splice(0).map((b) => b.kill()));
  await removeLabelled(runLabel);
});

afterAll(async () => {
  client?.close();
  await etcd?.close();
});

/** A fresh prefix and node id per test, so tests cannot see each other's keys. */
function scope() {
  const tag = randomBytes(3).toString('hex');
  return { prefix: `/e2e-${tag}`, node: `node-${tag}` };
}

function bridge(node: string, uri: string, extra: string[] = []) {
  const b = spawnBridge([
    '--ip',
    '127.0.0.1',
    '--node-id',
    node,
    '--ttl',
    '2',
    '--log-level',
    'debug',
    ...extra,
    uri,
  ]);
  bridges.push(b);
  return b;
}

const labels = { [labelKey]: labelValue };

async function entries(prefix: string): Promise<Record<string, Record<string, unknown>>> {
  const all = await client.getAll().prefix(`${prefix}/`).strings();
  return Object.fromEntries(
    Object.entries(all).map(([k, v]) => [k, JSON.parse(v) as Record<string, unknown>]),
  );
}

async function waitForKeys(
  prefix: string,
  what: string,
  predicate: (keys: string[]) => boolean,
  timeoutMs?: number,
) {
  await until(what, async () => predicate(Object.keys(await entries(prefix))), timeoutMs);
}

describe('registrar → etcd, end to end', () => {
  it('registers a started container under its lease, removes it on stop, and lets it expire on kill -9', async () => {
    const { prefix, node } = scope();
    const b = bridge(node, `etcd://127.0.0.1:${etcd.port}${prefix}`);
    const name = uniqueName('web');
    const container = await runContainer({ name, publish: ['80/tcp'], env: { SERVICE_NAME: 'web' }, labels });
    const port = await hostPort(container, '80/tcp');
    const key = `${prefix}/web/${node}:${name}:80`;

    await waitForKeys(prefix, 'key of the started container', (keys) => keys.includes(key));
    const record = (await entries(prefix))[key];
    expect(record).toMatchObject({
      id: `${node}:${name}:80`,
      name: 'web',
      address: '127.0.0.1',
      port,
      protocol: 'tcp',
      node,
      container: { id: container.id, name },
    });
    // The key is attached to a lease (a plain put would detach it).
    const raw = await client.get(key).exec();
    expect(Number(raw.kvs[0].lease)).toBeGreaterThan(0);

    await container.stop({ t: 0 });
    await waitForKeys(prefix, 'key removed after docker stop', (keys) => !keys.includes(key));

    await container.start();
    await waitForKeys(prefix, 'key back after restart', (keys) => keys.includes(key));
    await b.kill('SIGKILL');
    // Nobody renews the 2 s lease any more: etcd deletes the key by itself.
    await waitForKeys(prefix, 'key expired after the bridge died', (keys) => keys.length === 0, 15_000);
  });

  it('serves a container with a HEALTHCHECK only while it is healthy', async () => {
    const { prefix, node } = scope();
    bridge(node, `etcd://127.0.0.1:${etcd.port}${prefix}`);
    const name = uniqueName('hc');
    const container = await runContainer({
      name,
      publish: ['80/tcp'],
      env: { SERVICE_NAME: 'hc' },
      labels,
      cmd: ['sh', '-c', 'touch /tmp/healthy; exec httpd -f -p 80 -h /www'],
      health: { test: ['CMD-SHELL', 'test -f /tmp/healthy'], intervalMs: 500 },
    });
    const key = `${prefix}/hc/${node}:${name}:80`;
    await waitForKeys(prefix, 'healthy container registered', (keys) => keys.includes(key));
    await exec(container, ['rm', '/tmp/healthy']);
    await waitForKeys(prefix, 'unhealthy container removed', (keys) => !keys.includes(key));
    await exec(container, ['touch', '/tmp/healthy']);
    await waitForKeys(prefix, 'healthy again', (keys) => keys.includes(key));
  });

  it('adopts running containers after a restart without duplicates, and a resync writes nothing', async () => {
    const { prefix, node } = scope();
    const uri = `etcd://127.0.0.1:${etcd.port}${prefix}`;
    const names = [uniqueName('a'), uniqueName('b'), uniqueName('c')];
    // Other test files run containers on the same engine, and the bridge registers them in this prefix too:
    // look only at a service name of this test's own, which no other container (nor a leftover of an earlier
    // run) can offer.
    const service = `adopt-${node}`;
    for (const name of names) {
      await runContainer({ name, publish: ['80/tcp'], env: { SERVICE_NAME: service }, labels });
    }
    const ours = `${prefix}/${service}/`;
    const first = bridge(node, uri);
    await waitForKeys(prefix, 'three keys', (keys) => keys.filter((k) => k.startsWith(ours)).length === 3);
    await first.kill('SIGKILL');

    // A new process (new lease) adopts the surviving keys: the same three keys, re-put under its lease.
    const second = bridge(node, uri, ['--resync', '1']);
    const before = await client.getAll().prefix(ours).exec();
    const oldLease = before.kvs[0].lease;
    await until('keys moved to the new lease', async () => {
      const now = await client.getAll().prefix(ours).exec();
      return now.kvs.length === 3 && now.kvs.every((kv) => kv.lease !== oldLease);
    });
    expect(
      Object.keys(await entries(prefix))
        .filter((k) => k.startsWith(ours))
        .sort(),
    ).toEqual(names.map((n) => `${ours}${node}:${n}:80`).sort());

    // Converged: through three resync passes none of these keys is written again (mod_revision unchanged).
    const stamps = async () =>
      (await client.getAll().prefix(ours).exec()).kvs.map((kv) => `${kv.key.toString()}@${kv.mod_revision}`);
    const adopted = await stamps();
    const passesBefore = second.logs.filter((l) => l.msg === 'reconcile pass').length;
    await second.waitForLog('three more reconcile passes', () => {
      const passes = second.logs.filter((l) => l.msg === 'reconcile pass');
      return passes.length >= passesBefore + 3;
    });
    expect(await stamps()).toEqual(adopted);
  });

  it('registers each port of a two-port container under its port-specific name', async () => {
    const { prefix, node } = scope();
    bridge(node, `etcd://127.0.0.1:${etcd.port}${prefix}`);
    const name = uniqueName('two');
    const container = await runContainer({
      name,
      publish: ['80/tcp', '81/tcp'],
      env: { SERVICE_80_NAME: 'front', SERVICE_81_NAME: 'admin', SERVICE_TAGS: 'x,y' },
      labels,
      cmd: ['sh', '-c', 'httpd -p 81 -h /www; exec httpd -f -p 80 -h /www'],
    });
    const front = `${prefix}/front/${node}:${name}:80`;
    const admin = `${prefix}/admin/${node}:${name}:81`;
    await waitForKeys(prefix, 'both ports', (keys) => keys.includes(front) && keys.includes(admin));
    const all = await entries(prefix);
    expect(all[front]).toMatchObject({ port: await hostPort(container, '80/tcp'), tags: ['x', 'y'] });
    expect(all[admin]).toMatchObject({ port: await hostPort(container, '81/tcp'), tags: ['x', 'y'] });
  });

  it('--internal advertises the container IP on a user-defined network and the exposed port', async () => {
    const { prefix, node } = scope();
    const network = uniqueName('net');
    await docker.createNetwork({ Name: network, Labels: labels });
    try {
      bridge(node, `etcd://127.0.0.1:${etcd.port}${prefix}`, ['--internal', '--network', network]);
      const name = uniqueName('int');
      const container = await runContainer({
        name,
        expose: ['80/tcp'],
        env: { SERVICE_NAME: 'int' },
        labels,
        network,
      });
      const key = `${prefix}/int/${node}:${name}:80`;
      await waitForKeys(prefix, 'internal service', (keys) => keys.includes(key));
      const ip = (await container.inspect()).NetworkSettings.Networks[network].IPAddress;
      expect((await entries(prefix))[key]).toMatchObject({ address: ip, port: 80 });
    } finally {
      await removeLabelled(runLabel);
      await docker.getNetwork(network).remove();
    }
  });

  it('warns about garbage labels and keeps serving every other container', async () => {
    const { prefix, node } = scope();
    const b = bridge(node, `etcd://127.0.0.1:${etcd.port}${prefix}`);
    const bad = uniqueName('bad');
    const good = uniqueName('good');
    await runContainer({
      name: bad,
      publish: ['80/tcp'],
      labels: { ...labels, SERVICE_NAME: '', SERVICE_99999_NAME: 'x', SERVICE_TAGS: ',,,' },
    });
    await runContainer({ name: good, publish: ['80/tcp'], env: { SERVICE_NAME: 'good' }, labels });
    await waitForKeys(prefix, 'good container registered', (keys) =>
      keys.includes(`${prefix}/good/${node}:${good}:80`),
    );
    const warning = await b.waitForLog(
      'warning naming the bad container',
      (l) => l.level === 40 && l.container === bad,
    );
    expect(String(warning.label)).toMatch(/^SERVICE_/);
    expect(b.child.exitCode).toBeNull();
  });
});
