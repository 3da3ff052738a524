// The root docker-compose.yml, end to end: registrations in Consul, etcd and ZooKeeper follow the demo
// replicas through scaling, a killed replica, an unhealthy one and a dead bridge; HAProxy's pool follows Consul;
// `down` leaves nothing behind. No --profile: the default from .env, `all`. Runs on locally built images
// (docker-compose.local.yml) unless COMPOSE_OFFICIAL_IMAGES=1.
import { Etcd3 } from 'etcd3';
import zookeeper from 'node-zookeeper-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '@registrar/core/testing';
import { CLI_VERSION } from '../harness/bridge.js';
import { docker } from '../harness/docker.js';
import { buildImages, createStack, leftovers, type Stack } from './compose.js';

const stack: Stack = createStack();
let etcd: Etcd3 | undefined;
let zk: zookeeper.Client | undefined;
let up = false;

type Backend = 'consul' | 'etcd' | 'zookeeper';
const BACKENDS: Backend[] = ['consul', 'etcd', 'zookeeper'];

beforeAll(async () => {
  await buildImages();
  up = true;
  await stack.compose('up', '-d');
  await until(
    'every container of the stack healthy',
    async () => {
      const all = await Promise.all(
        ['consul', 'etcd', 'zookeeper', 'registrar', 'web', 'api', 'haproxy', 'lb'].map((s) =>
          stack.containers(s),
        ),
      );
      return all.every((list) => list.length > 0 && list.every((c) => c.health === 'healthy'));
    },
    180_000,
  );
  etcd = new Etcd3({ hosts: `http://${await stack.ip('etcd')}:2379` });
  zk = zookeeper.createClient(`${await stack.ip('zookeeper')}:2181`, { sessionTimeout: 10_000 });
  const client = zk;
  await new Promise<void>((resolve) => client.once('connected', () => resolve()).connect());
}, 1_200_000);

afterAll(async () => {
  etcd?.close();
  zk?.close();
  if (up) await stack.compose('down', '-v', '--remove-orphans', '-t', '2');
}, 120_000);

/** Every address the stack's containers have: registrations of other containers on the host are ignored. */
async function projectIps(): Promise<Set<string>> {
  const list = await docker.listContainers({
    filters: { label: [`com.docker.compose.project=${stack.project}`] },
  });
  return new Set(list.flatMap((c) => Object.values(c.NetworkSettings.Networks).map((n) => n.IPAddress)));
}

const noNode = (error: unknown) =>
  error instanceof zookeeper.Exception && error.getCode() === zookeeper.Exception.NO_NODE;

async function zkChildren(path: string): Promise<string[]> {
  return new Promise((resolve, reject) =>
    zk!.getChildren(path, (error, names) => {
      if (noNode(error)) resolve([]);
      else if (error) reject(error instanceof Error ? error : new Error(String(error)));
      else resolve(names);
    }),
  );
}

async function zkData(path: string): Promise<string | undefined> {
  return new Promise((resolve, reject) =>
    zk!.getData(path, (error, data) => {
      if (noNode(error)) resolve(undefined);
      else if (error) reject(error instanceof Error ? error : new Error(String(error)));
      else resolve(data?.toString());
    }),
  );
}

/** Addresses registered for `service` in one backend (Consul: passing instances only), sorted. */
async function registered(backend: Backend, service: string): Promise<string[]> {
  const ips = await projectIps();
  let addresses: string[];
  if (backend === 'consul') {
    const res = await fetch(`http://${await stack.ip('consul')}:8500/v1/health/service/${service}?passing`);
    const entries = (await res.json()) as { Service: { Address: string; Port: number } }[];
    addresses = entries.map((e) => `${e.Service.Address}:${e.Service.Port}`);
  } else if (backend === 'etcd') {
    const all = await etcd!.getAll().prefix(`/services/${service}/`).strings();
    addresses = Object.values(all).map((v) => {
      const r = JSON.parse(v) as { address: string; port: number };
      return `${r.address}:${r.port}`;
    });
  } else {
    const base = `/services/${service}`;
    const data = await Promise.all((await zkChildren(base)).map((id) => zkData(`${base}/${id}`)));
    addresses = data.flatMap((d) => {
      if (d === undefined) return [];
      const r = JSON.parse(d) as { address: string; port: number };
      return [`${r.address}:${r.port}`];
    });
  }
  return addresses.filter((a) => ips.has(a.slice(0, a.lastIndexOf(':')))).sort();
}

/** Wait until every backend lists exactly `expected` (ip:port) for `service`. */
async function expectRegistered(service: string, expected: string[], timeoutMs = 60_000) {
  const want = [...expected].sort();
  const last: Partial<Record<Backend, string[]>> = {};
  await until(
    `${service} = ${want.join(' ')} in every backend`,
    async () => {
      for (const b of BACKENDS) last[b] = await registered(b, service);
      return BACKENDS.every((b) => JSON.stringify(last[b]) === JSON.stringify(want));
    },
    timeoutMs,
  ).catch((error: Error) => {
    throw new Error(`${error.message}; last seen ${JSON.stringify(last)}`);
  });
}

const endpoints = async (service: string) => (await stack.containers(service)).map((c) => `${c.ip}:80`);
const healthyEndpoints = async (service: string) =>
  (await stack.containers(service)).filter((c) => c.health === 'healthy').map((c) => `${c.ip}:80`);

/** Requests through HAProxy until every replica of `service` answered; returns the hostnames seen. */
async function reachEvery(service: string, port: number, timeoutMs = 60_000): Promise<Set<string>> {
  const hosts = new Set((await stack.containers(service)).map((c) => c.id.slice(0, 12)));
  const seen = new Set<string>();
  const lb = await stack.ip('haproxy');
  await until(
    `HAProxy :${port} reaches every ${service} replica`,
    async () => {
      const res = await fetch(`http://${lb}:${port}/`, { signal: AbortSignal.timeout(2_000) });
      const [name, host] = (await res.text()).trim().split(' ');
      if (res.ok && name === service && host !== undefined) seen.add(host);
      return [...hosts].every((h) => seen.has(h));
    },
    timeoutMs,
  ).catch((error: Error) => {
    throw new Error(`${error.message}; expected ${[...hosts].join(' ')}, seen ${[...seen].join(' ')}`);
  });
  return seen;
}

// One stack, one scenario: each step starts from the state the previous one left (scaled back, bridge
// restarted, then `down`), so the order stays fixed even when the suite runs shuffled.
describe('docker-compose.yml demo stack', { timeout: 240_000, shuffle: false }, () => {
  it('registers every replica in Consul, etcd and ZooKeeper, and HAProxy spreads requests over them', async () => {
    expect(await stack.containers('web')).toHaveLength(3);
    expect(await stack.containers('api')).toHaveLength(2);
    await expectRegistered('web', await endpoints('web'));
    await expectRegistered('api', await endpoints('api'));
    expect((await reachEvery('web', 8080)).size).toBe(3);
    expect((await reachEvery('api', 8081)).size).toBe(2);
  });

  it("runs an image whose version label is the CLI package's version", async () => {
    const [registrar] = await stack.containers('registrar');
    const image = await docker.getImage((await docker.getContainer(registrar!.id).inspect()).Image).inspect();
    expect(image.Config.Labels?.['org.opencontainers.image.version']).toBe(CLI_VERSION);
  });

  it('follows scaling up and down without restarting anything', async () => {
    const before = new Map(
      [...(await stack.containers('web')), ...(await stack.containers('haproxy'))].map((c) => [
        c.id,
        c.startedAt,
      ]),
    );
    await stack.compose('up', '-d', '--scale', 'web=5');
    await until('5 healthy web replicas', async () => (await healthyEndpoints('web')).length === 5, 60_000);
    await expectRegistered('web', await endpoints('web'));
    expect((await reachEvery('web', 8080)).size).toBe(5);
    for (const [id, startedAt] of before) {
      expect((await docker.getContainer(id).inspect()).State.StartedAt).toBe(startedAt);
    }

    await stack.compose('up', '-d', '--scale', 'web=2');
    await until('2 web replicas', async () => (await stack.containers('web')).length === 2, 60_000);
    await expectRegistered('web', await endpoints('web'));
    expect((await reachEvery('web', 8080)).size).toBe(2);
  });

  it('drops a killed replica and an unhealthy one, and takes the unhealthy one back once it recovers', async () => {
    await stack.compose('up', '-d', '--scale', 'web=3');
    await until('3 healthy web replicas', async () => (await healthyEndpoints('web')).length === 3, 60_000);
    await expectRegistered('web', await endpoints('web'));

    const [victim, sick, ...rest] = await stack.containers('web');
    await docker.getContainer(victim!.id).kill();
    await expectRegistered('web', [`${sick!.ip}:80`, ...rest.map((c) => `${c.ip}:80`)]);

    await docker
      .getContainer(sick!.id)
      .exec({ Cmd: ['busybox', 'touch', '/tmp/unhealthy'] })
      .then((e) => e.start({}));
    await expectRegistered(
      'web',
      rest.map((c) => `${c.ip}:80`),
    );
    // Consul keeps the unhealthy instance, failing; etcd and ZooKeeper drop it.
    const all = (await (
      await fetch(`http://${await stack.ip('consul')}:8500/v1/health/service/web`)
    ).json()) as { Service: { Address: string }; Checks: { Status: string }[] }[];
    const entry = all.find((e) => e.Service.Address === sick!.ip);
    expect(entry?.Checks.some((c) => c.Status === 'critical' || c.Status === 'warning')).toBe(true);
    // Only the remaining replica answers through the load balancer.
    const lb = await stack.ip('haproxy');
    await until('HAProxy pool without the sick replica', async () => {
      const hosts = new Set<string>();
      for (let i = 0; i < 6; i++)
        hosts.add((await (await fetch(`http://${lb}:8080/`)).text()).trim().split(' ')[1]!);
      return hosts.size === rest.length && !hosts.has(sick!.id.slice(0, 12));
    });

    await docker
      .getContainer(sick!.id)
      .exec({ Cmd: ['busybox', 'rm', '-f', '/tmp/unhealthy'] })
      .then((e) => e.start({}));
    await expectRegistered('web', [`${sick!.ip}:80`, ...rest.map((c) => `${c.ip}:80`)]);
  });

  it("lets a dead bridge's entries expire, and a restarted bridge registers them again", async () => {
    const expected = await endpoints('api');
    await expectRegistered('api', expected);
    // SIGKILL: no graceful deregistration, only the TTLs (etcd lease, ZooKeeper session, Consul TTL check).
    await stack.compose('kill', '-s', 'SIGKILL', 'registrar');
    await expectRegistered('api', [], 60_000);
    await stack.compose('start', 'registrar');
    await expectRegistered('api', expected);
    // SIGTERM through tini: node shuts down gracefully (exit 0, not 137 from the SIGKILL Docker sends
    // after the 10 s grace period) and deregisters first.
    await stack.compose('stop', '-t', '10', 'registrar');
    const [bridge] = await docker.listContainers({
      all: true,
      filters: {
        label: [`com.docker.compose.project=${stack.project}`, 'com.docker.compose.service=registrar'],
      },
    });
    expect((await docker.getContainer(bridge!.Id).inspect()).State.ExitCode).toBe(0);
    await expectRegistered('api', [], 10_000);
    await stack.compose('start', 'registrar');
    await expectRegistered('api', expected);
  });

  it('brings everything down and leaves no container, network or volume behind', async () => {
    await stack.compose('down', '-v', '--remove-orphans', '-t', '2');
    up = false;
    expect(await leftovers(stack.project)).toEqual({ containers: [], networks: [], volumes: [] });
  });
});
