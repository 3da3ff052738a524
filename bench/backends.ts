// The three real backends as the synthetic suites use them: the adapter under test, the backend's own client
// doing the same kind of write directly (the "raw" limit), and server-side counters of writes and requests.
import { createConsulRegistry } from '@registrar/consul';
import { startConsulDouble, type ConsulDouble } from '@registrar/consul-double';
import type { Registry } from '@registrar/core';
import { createEtcdRegistry } from '@registrar/etcd';
import { createZookeeperRegistry } from '@registrar/zookeeper';
import { Etcd3 } from 'etcd3';
import zookeeper, { type Client } from 'node-zookeeper-client';
import { startEtcd, type EtcdServer } from '@registrar/test-servers/etcd';
import { fourLetter, startZookeeper, type ZookeeperServer } from '@registrar/test-servers/zookeeper';

export type BackendName = 'etcd' | 'zookeeper' | 'consul';
export const BACKENDS: readonly BackendName[] = ['etcd', 'zookeeper', 'consul'];

export interface AdapterSettings {
  readonly nodeId: string;
  /** Liveness TTL, seconds. */
  readonly ttl?: number;
  /** Heartbeat interval, seconds. */
  readonly refresh?: number;
}

export interface Backend {
  readonly name: BackendName;
  /** etcd only: the client URL. */
  readonly endpoint?: string;
  /** The adapter under test, as the CLI would build it. */
  registry(settings: AdapterSettings): Registry;
  /** Writes the server has applied so far (etcd revision, ZooKeeper zxid, Consul agent PUTs). */
  writes(): Promise<number>;
  /** Requests the server has received so far (heartbeat cost). */
  requests(): Promise<number>;
  /** The backend's own client writing directly: one registration-shaped write and its removal. */
  raw: RawClient;
  /** The registry URI a `registrar` process is given, entries under `base` (etcd prefix, ZooKeeper base path). */
  uri(base: string): string;
  /** Entries of `service` visible under `base` now (cheap: a count, not a listing, where the backend has one). */
  entries(base: string, service: string): Promise<number>;
  /**
   * Count the writes of entries under `base` from now on, the backend's own bookkeeping (election keys,
   * sessions) left out: etcd a watch on the prefix, ZooKeeper the entry nodes whose czxid/mzxid changed (or
   * that came or went), Consul the agent's register/deregister PUTs.
   */
  watchWrites(base: string): Promise<{ count(): Promise<number>; close(): void }>;
  /** Entries of all of `services` under `base` now (one listing or count where the backend allows). */
  total(base: string, services: readonly string[]): Promise<number>;
  close(): Promise<void>;
}

export interface RawClient {
  put(i: number): Promise<void>;
  remove(i: number): Promise<void>;
  /**
   * The backend's own batch, where it has one: the entries `ids` put in etcd txns or created in ZooKeeper
   * multis of BATCH ops, MAX_BATCHES_IN_FLIGHT at a time. Undefined for Consul (its agent API has none).
   */
  putBatch?(ids: readonly number[]): Promise<void>;
  close(): Promise<void>;
}

/** Ops per raw etcd txn / ZooKeeper multi (the profile: 64). */
export const BATCH = 64;
const MAX_BATCHES_IN_FLIGHT = 4;

/** `ids` in chunks of BATCH, `send` on each with MAX_BATCHES_IN_FLIGHT in flight. */
async function inBatches(ids: readonly number[], send: (chunk: readonly number[]) => Promise<void>) {
  const chunks: number[][] = [];
  for (let i = 0; i < ids.length; i += BATCH) chunks.push(ids.slice(i, i + BATCH));
  await pool(chunks.length, MAX_BATCHES_IN_FLIGHT, (i) => send(chunks[i]));
}

/** A Consul registration shaped like the adapter's: service, alias liveness check, health TTL check. */
export function consulRegistration(id: string, name: string, port: number, bridgeId: string) {
  return {
    ID: id,
    Name: name,
    Address: '127.0.0.1',
    Port: port,
    Tags: ['a', 'b,c'],
    Meta: { 'registrar-node': 'raw', 'container-id': id, 'container-name': id },
    Checks: [
      { Name: 'liveness', AliasService: bridgeId, DeregisterCriticalServiceAfter: '1m0s' },
      { Name: 'container health', TTL: '720h0m0s', Status: 'passing' },
    ],
  };
}

const recordValue = (i: number) =>
  JSON.stringify({
    id: `raw:c${i}:80`,
    name: 'raw',
    address: '127.0.0.1',
    port: 20000 + i,
    protocol: 'tcp',
    tags: ['a', 'b,c'],
    meta: { region: 'eu' },
    node: 'raw',
    container: { id: `${i}`.padStart(64, 'f'), name: `c${i}` },
  });

export async function startBackend(name: BackendName): Promise<Backend> {
  if (name === 'etcd') return startEtcdBackend();
  if (name === 'zookeeper') return startZookeeperBackend();
  return startConsulBackend();
}

async function startEtcdBackend(): Promise<Backend> {
  const server: EtcdServer = await startEtcd();
  const client = new Etcd3({ hosts: server.endpoint });
  const revision = async () => Number((await client.kv.range({ key: Buffer.from('\0') })).header.revision);
  return {
    name: 'etcd',
    endpoint: server.endpoint,
    registry: ({ nodeId, ttl, refresh }) =>
      createEtcdRegistry({
        hosts: [server.endpoint],
        nodeId,
        prefix: '/services',
        ...(ttl !== undefined && { ttl }),
        ...(refresh !== undefined && { keepaliveInterval: refresh }),
      }),
    writes: revision,
    requests: () => Promise.reject(new Error('etcd requests are counted with an instrumented client')),
    raw: await rawEtcd(server.endpoint),
    uri: (base) => `etcd://127.0.0.1:${server.port}${base}`,
    entries: (base, service) => client.getAll().prefix(`${base}/${service}/`).count(),
    async watchWrites(base) {
      let count = 0;
      const watcher = await client.watch().prefix(`${base}/`).create();
      watcher.on('put', () => (count += 1));
      watcher.on('delete', () => (count += 1));
      return { count: () => Promise.resolve(count), close: () => void watcher.cancel() };
    },
    async total(base, services) {
      const counts = await Promise.all(
        services.map((service) => client.getAll().prefix(`${base}/${service}/`).count()),
      );
      return counts.reduce((a, b) => a + b, 0);
    },
    async close() {
      client.close();
      await server.close();
    },
  };
}

async function rawEtcd(endpoint: string): Promise<RawClient> {
  const client = new Etcd3({ hosts: endpoint });
  const lease = await client.leaseClient.leaseGrant({ TTL: 60 });
  const key = (i: number) => Buffer.from(`/raw/raw/raw:c${i}:80`);
  return {
    async put(i) {
      await client.kv.put({ key: key(i), value: Buffer.from(recordValue(i)), lease: lease.ID });
    },
    async remove(i) {
      await client.kv.deleteRange({ key: key(i) });
    },
    putBatch: (ids) =>
      inBatches(ids, async (chunk) => {
        await client.kv.txn({
          compare: [],
          success: chunk.map((i) => ({
            request_put: { key: key(i), value: Buffer.from(recordValue(i)), lease: lease.ID },
          })),
          failure: [],
        });
      }),
    async close() {
      await client.leaseClient.leaseRevoke({ ID: lease.ID }).catch(() => undefined);
      client.close();
    },
  };
}

/** ZooKeeper's last zxid from `srvr`. */
export async function zxid(port: number): Promise<number> {
  const match = /Zxid: 0x([0-9a-f]+)/i.exec(await fourLetter(port, 'srvr'));
  if (!match) throw new Error('srvr: no Zxid');
  return Number.parseInt(match[1], 16);
}

/** ZooKeeper's count of packets received from clients, from `mntr`. */
export async function packetsReceived(port: number): Promise<number> {
  const match = /zk_packets_received\s+(\d+)/.exec(await fourLetter(port, 'mntr'));
  if (!match) throw new Error('mntr: no zk_packets_received');
  return Number(match[1]);
}

export function connectZookeeper(connectString: string, sessionTimeout = 15_000): Promise<Client> {
  const client = zookeeper.createClient(connectString, { sessionTimeout, retries: 0 });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('zookeeper: no session')), 10_000);
    client.once('connected', () => {
      clearTimeout(timer);
      resolve(client);
    });
    client.connect();
  });
}

/** Promise form of node-zookeeper-client's callback API. */
export function zk<T = unknown>(run: (cb: (error: unknown, result?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) =>
    run((error, result) => (error ? reject(error as Error) : resolve(result as T))),
  );
}

async function startZookeeperBackend(): Promise<Backend> {
  const server: ZookeeperServer = await startZookeeper();
  // Opened on first use: only the process suite counts entries.
  let counter: Promise<Client> | undefined;
  const children = async (base: string, service: string) => {
    const client = await (counter ??= connectZookeeper(server.connectString));
    const stat = await zk<zookeeper.Stat | undefined>((cb) => client.exists(`${base}/${service}`, cb));
    return stat?.numChildren ?? 0;
  };
  return {
    name: 'zookeeper',
    registry: ({ nodeId, ttl }) =>
      createZookeeperRegistry({
        connectString: server.connectString,
        nodeId,
        basePath: '/services',
        ...(ttl !== undefined && { ttl }),
      }),
    writes: () => zxid(server.port),
    requests: () => packetsReceived(server.port),
    raw: await rawZookeeper(server.connectString),
    uri: (base) => `zookeeper://${server.connectString}${base}`,
    // The parent's stat counts its children: no listing of thousands of names per poll.
    entries: (base, service) => children(base, service),
    async watchWrites(base) {
      const client = await (counter ??= connectZookeeper(server.connectString));
      /** Every entry node under `base`: path → `czxid/mzxid`. */
      const snapshot = async () => {
        const nodes = new Map<string, string>();
        const list = (path: string) =>
          zk<string[]>((cb) => client.getChildren(path, cb)).catch(() => [] as string[]);
        for (const service of await list(base)) {
          const parent = `${base}/${service}`;
          await Promise.all(
            (await list(parent)).map(async (child) => {
              const stat = await zk<zookeeper.Stat | undefined>((cb) =>
                client.exists(`${parent}/${child}`, cb),
              );
              if (stat)
                nodes.set(
                  `${parent}/${child}`,
                  `${stat.czxid.toString('hex')}/${stat.mzxid.toString('hex')}`,
                );
            }),
          );
        }
        return nodes;
      };
      const before = await snapshot();
      return {
        async count() {
          const after = await snapshot();
          let changed = 0;
          for (const [path, version] of after) if (before.get(path) !== version) changed += 1;
          for (const path of before.keys()) if (!after.has(path)) changed += 1;
          return changed;
        },
        close: () => undefined,
      };
    },
    async total(base, services) {
      const counts = await Promise.all(services.map((service) => children(base, service)));
      return counts.reduce((a, b) => a + b, 0);
    },
    async close() {
      (await counter)?.close();
      await server.close();
    },
  };
}

async function rawZookeeper(connectString: string): Promise<RawClient> {
  const client = await connectZookeeper(connectString);
  await zk((cb) => client.mkdirp('/raw/raw', cb));
  const path = (i: number) => `/raw/raw/raw:c${i}:80`;
  const open = [new zookeeper.ACL(zookeeper.Permission.ALL, new zookeeper.Id('world', 'anyone'))];
  return {
    put: (i) =>
      zk<string>((cb) =>
        client.create(path(i), Buffer.from(recordValue(i)), open, zookeeper.CreateMode.EPHEMERAL, cb),
      ).then(() => undefined),
    remove: (i) => zk((cb) => client.remove(path(i), -1, cb)).then(() => undefined),
    putBatch: (ids) =>
      inBatches(ids, async (chunk) => {
        const multi = client.transaction();
        for (const i of chunk)
          multi.create(path(i), Buffer.from(recordValue(i)), open, zookeeper.CreateMode.EPHEMERAL);
        await zk((cb) => multi.commit(cb));
      }),
    close: () => Promise.resolve(client.close()),
  };
}

/** PUTs the agent received, heartbeats of the bridge check excepted: the writes a reconcile made. */
export const consulWrites = (double: ConsulDouble) =>
  double.countRequests((r) => r.method === 'PUT' && !r.path.startsWith('/v1/agent/check/pass/'));

async function startConsulBackend(): Promise<Backend> {
  const double = await startConsulDouble();
  return {
    name: 'consul',
    registry: ({ nodeId, ttl, refresh }) =>
      createConsulRegistry({
        url: double.url,
        nodeId,
        ...(ttl !== undefined && { ttl }),
        ...(refresh !== undefined && { ttlRefresh: refresh }),
      }),
    writes: () => Promise.resolve(consulWrites(double)),
    requests: () => Promise.resolve(double.countRequests()),
    raw: await rawConsul(double.url),
    uri: () => `consul://127.0.0.1:${double.port}`,
    watchWrites() {
      const entryWrites = () =>
        double.countRequests(
          (r) =>
            r.method === 'PUT' &&
            (r.path.startsWith('/v1/agent/service/register') ||
              r.path.startsWith('/v1/agent/service/deregister/')),
        );
      const before = entryWrites();
      return Promise.resolve({
        count: () => Promise.resolve(entryWrites() - before),
        close: () => undefined,
      });
    },
    async entries(_base, service) {
      const services = (await (await fetch(`${double.url}/v1/agent/services`)).json()) as Record<
        string,
        { Service: string }
      >;
      return Object.values(services).filter((s) => s.Service === service).length;
    },
    async total(_base, names) {
      const wanted = new Set(names);
      const services = (await (await fetch(`${double.url}/v1/agent/services`)).json()) as Record<
        string,
        { Service: string }
      >;
      return Object.values(services).filter((s) => wanted.has(s.Service)).length;
    },
    async close() {
      await double.close();
    },
  };
}

async function rawConsul(url: string): Promise<RawClient> {
  const put = async (path: string, body?: unknown) => {
    const res = await fetch(`${url}${path}`, {
      method: 'PUT',
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    await res.text();
    if (!res.ok) throw new Error(`consul ${path}: ${res.status}`);
  };
  const bridgeId = 'raw-bridge';
  // Nothing passes this check: a TTL longer than any run, or on a loaded machine the agent's reaper removes the
  // raw services (alias checks gone critical) before their removals are timed.
  await put('/v1/agent/service/register', { ID: bridgeId, Name: 'raw-bridge', Check: { TTL: '24h' } });
  return {
    put: (i) =>
      put(
        '/v1/agent/service/register?replace-existing-checks=true',
        consulRegistration(`raw:c${i}:80`, 'raw', 20000 + i, bridgeId),
      ),
    remove: (i) => put(`/v1/agent/service/deregister/raw:c${i}:80`),
    close: () => Promise.resolve(),
  };
}

/** Run `task(0..count-1)` with `limit` in flight, like the reconciler's pool. */
export async function pool(count: number, limit: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Poll `check` every few ms until it holds; throws after `timeoutMs`. */
export async function waitUntil(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

/** Poll `read` every `everyMs` until it gives `count`; seconds from `since` (a performance.now()). */
export async function countReaches(
  read: () => Promise<number>,
  count: number,
  since: number,
  what: string,
  timeoutMs = 300_000,
  everyMs = 10,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let seen = -1;
  while ((seen = await read()) !== count) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${seen} of ${count} entries`);
    await sleep(everyMs);
  }
  return (performance.now() - since) / 1000;
}

/** Poll the backend every 10 ms until `service` has `count` entries; seconds from `since`. */
export const converged = (
  backend: Backend,
  base: string,
  service: string,
  count: number,
  since: number,
  what: string,
  timeoutMs = 300_000,
) => countReaches(() => backend.entries(base, service), count, since, `${what} (${service})`, timeoutMs);
