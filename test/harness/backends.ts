import { startConsulDouble, type ConsulDouble } from '@registrar/consul-double';
import { formatHostPort } from '@registrar/core/kit';
import { Etcd3 } from 'etcd3';
import zookeeper from 'node-zookeeper-client';
import { startEtcd, type EtcdServer } from '@registrar/test-servers/etcd';
import { until } from '@registrar/core/testing';
import { startTcpProxy } from '@registrar/test-servers/proxy';
import { startZookeeper, type ZookeeperServer } from '@registrar/test-servers/zookeeper';

/**
 * One real backend behind a fault-injection proxy, seen the way the fault tests need it: a URI for the
 * bridge, the registered service ids under a scope, an outage switch and a way to make it forget us.
 */
export interface Backend {
  readonly name: 'etcd' | 'zookeeper' | 'consul';
  /** The bridge's registry URI for this scope (through the proxy). */
  uri(scope: string): string;
  /** Ids of every `service` entry under `scope` (any node), one element per stored entry. */
  ids(scope: string, service: string): Promise<string[]>;
  /** Ids of the `service` entries a consumer would route to: stored ones, and for Consul only passing ones. */
  passing(scope: string, service: string): Promise<string[]>;
  /** `id → address` of each stored `service` entry under `scope`, as the registry holds it. */
  addresses(scope: string, service: string): Promise<Map<string, string>>;
  /** `id → "address:port"` of each stored `service` entry under `scope`, as the registry holds it. */
  endpoints(scope: string, service: string): Promise<Map<string, string>>;
  /**
   * `id → {ipv4, ipv6}` ("address:port", IPv6 bracketed) of each stored `service` entry that records an
   * endpoint per IP family, read as a client would: etcd's and ZooKeeper's `addresses` field, Consul's
   * `TaggedAddresses.lan_ipv4`/`lan_ipv6`.
   */
  families(scope: string, service: string): Promise<Map<string, { ipv4?: string; ipv6?: string }>>;
  /** Version stamp of each `service` entry (changes on any write): proves an entry was left untouched. */
  stamps(scope: string, service: string): Promise<Map<string, string>>;
  /** Refuse connections and cut open ones, as if the server were gone. */
  down(): Promise<void>;
  up(): Promise<void>;
  /** Make the backend drop this node's liveness state: revoke the lease, expire the session, empty the agent. */
  loseLiveness(scope: string, service: string): Promise<void>;
  close(): Promise<void>;
}

export const BACKENDS = ['etcd', 'zookeeper', 'consul'] as const;

export async function startBackend(name: Backend['name']): Promise<Backend> {
  if (name === 'etcd') return etcdBackend(await startEtcd());
  if (name === 'zookeeper') return zookeeperBackend(await startZookeeper());
  return consulBackend(await startConsulDouble({ reapIntervalMs: 200, minDeregisterAfterMs: 1000 }));
}

async function etcdBackend(server: EtcdServer): Promise<Backend> {
  const proxy = await startTcpProxy(server.port);
  const client = new Etcd3({ hosts: server.endpoint });
  const ids = async (scope: string, service: string) => {
    const keys = await client.getAll().prefix(`/${scope}/${service}/`).keys();
    return keys.map((k) => k.split('/').pop() ?? k);
  };
  return {
    name: 'etcd',
    uri: (scope) => `etcd://127.0.0.1:${proxy.port}/${scope}`,
    ids,
    passing: ids,
    async addresses(scope, service) {
      const values = await client.getAll().prefix(`/${scope}/${service}/`).strings();
      return new Map(
        Object.entries(values).map(([key, v]) => [
          key.split('/').pop() ?? key,
          (JSON.parse(v) as { address: string }).address,
        ]),
      );
    },
    async endpoints(scope, service) {
      const values = await client.getAll().prefix(`/${scope}/${service}/`).strings();
      return new Map(
        Object.entries(values).map(([key, v]) => {
          const record = JSON.parse(v) as { address: string; port: number };
          return [key.split('/').pop() ?? key, `${record.address}:${record.port}`];
        }),
      );
    },
    async families(scope, service) {
      const values = await client.getAll().prefix(`/${scope}/${service}/`).strings();
      return new Map(
        Object.entries(values).map(([key, v]) => [
          key.split('/').pop() ?? key,
          familiesOf((JSON.parse(v) as { addresses?: RecordedFamilies }).addresses),
        ]),
      );
    },
    async stamps(scope, service) {
      const res = await client.getAll().prefix(`/${scope}/${service}/`).exec();
      return new Map(
        res.kvs.map((kv) => [
          kv.key.toString().split('/').pop() ?? '',
          `${kv.create_revision}/${kv.mod_revision}`,
        ]),
      );
    },
    down: () => proxy.down(),
    up: () => proxy.up(),
    async loseLiveness(scope) {
      const res = await client.getAll().prefix(`/${scope}/`).exec();
      const leases = new Set(res.kvs.map((kv) => kv.lease).filter((l) => l !== '0'));
      for (const id of leases) await client.leaseClient.leaseRevoke({ ID: id });
    },
    async close() {
      client.close();
      await proxy.close();
      await server.close();
    },
  };
}

async function zookeeperBackend(server: ZookeeperServer): Promise<Backend> {
  const proxy = await startTcpProxy(server.port);
  const client = zookeeper.createClient(server.connectString);
  await new Promise<void>((resolve) => {
    client.once('connected', () => resolve());
    client.connect();
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
  /** Each entry's Curator ServiceInstance record. */
  const records = async (scope: string, service: string) => {
    const found = new Map<string, { address: string; port: number; addresses?: RecordedFamilies }>();
    for (const id of await children(`/${scope}/${service}`)) {
      const data = await new Promise<Buffer | undefined>((resolve, reject) =>
        client.getData(`/${scope}/${service}/${id}`, (error, value) =>
          error ? reject(new Error(String(error))) : resolve(value),
        ),
      );
      found.set(
        id,
        JSON.parse(data?.toString() ?? '{}') as {
          address: string;
          port: number;
          addresses?: RecordedFamilies;
        },
      );
    }
    return found;
  };
  const backend: Backend = {
    name: 'zookeeper',
    uri: (scope) => `zookeeper://127.0.0.1:${proxy.port}/${scope}`,
    ids: (scope, service) => children(`/${scope}/${service}`),
    passing: (scope, service) => children(`/${scope}/${service}`),
    async addresses(scope, service) {
      const addresses = new Map<string, string>();
      for (const [id, record] of await records(scope, service)) addresses.set(id, record.address);
      return addresses;
    },
    async endpoints(scope, service) {
      const endpoints = new Map<string, string>();
      for (const [id, record] of await records(scope, service))
        endpoints.set(id, `${record.address}:${record.port}`);
      return endpoints;
    },
    async families(scope, service) {
      const families = new Map<string, { ipv4?: string; ipv6?: string }>();
      for (const [id, record] of await records(scope, service))
        families.set(id, familiesOf(record.addresses));
      return families;
    },
    async stamps(scope, service) {
      const stamps = new Map<string, string>();
      for (const id of await children(`/${scope}/${service}`)) {
        const stat = await new Promise<zookeeper.Stat>((resolve, reject) =>
          client.exists(`/${scope}/${service}/${id}`, (error, st) =>
            error ? reject(new Error(String(error))) : resolve(st),
          ),
        );
        stamps.set(id, `${stat.czxid.toString('hex')}/${stat.mzxid.toString('hex')}`);
      }
      return stamps;
    },
    down: () => proxy.down(),
    up: () => proxy.up(),
    async loseLiveness(scope, service) {
      // Cut the bridge off until the server has expired its session (its ephemeral nodes are gone).
      await proxy.down();
      await until('session expired', async () => (await backend.ids(scope, service)).length === 0, 30_000);
      await proxy.up();
    },
    async close() {
      client.close();
      await proxy.close();
      await server.close();
    },
  };
  return backend;
}

async function consulBackend(agent: ConsulDouble): Promise<Backend> {
  const proxy = await startTcpProxy(agent.port);
  return {
    name: 'consul',
    // Consul has no prefix: the scope is the service name prefix the tests use.
    uri: () => `consul://127.0.0.1:${proxy.port}?deregister-after=1s`,
    async ids(_scope, service) {
      const res = await fetch(`${agent.url}/v1/agent/services`);
      const services = (await res.json()) as Record<string, { Service: string }>;
      return Object.entries(services)
        .filter(([, s]) => s.Service === service)
        .map(([id]) => id);
    },
    async addresses(_scope, service) {
      const res = await fetch(`${agent.url}/v1/agent/services`);
      const services = (await res.json()) as Record<string, { Service: string; Address: string }>;
      return new Map(
        Object.entries(services)
          .filter(([, s]) => s.Service === service)
          .map(([id, s]) => [id, s.Address]),
      );
    },
    async endpoints(_scope, service) {
      const res = await fetch(`${agent.url}/v1/agent/services`);
      const services = (await res.json()) as Record<
        string,
        { Service: string; Address: string; Port: number }
      >;
      return new Map(
        Object.entries(services)
          .filter(([, s]) => s.Service === service)
          .map(([id, s]) => [id, `${s.Address}:${s.Port}`]),
      );
    },
    async families(_scope, service) {
      const res = await fetch(`${agent.url}/v1/agent/services`);
      const services = (await res.json()) as Record<
        string,
        { Service: string; TaggedAddresses?: Record<string, { Address: string; Port: number }> }
      >;
      return new Map(
        Object.entries(services)
          .filter(([, s]) => s.Service === service)
          .map(([id, s]) => {
            const tagged = s.TaggedAddresses ?? {};
            const v4 = tagged['lan_ipv4'];
            const v6 = tagged['lan_ipv6'];
            return [
              id,
              familiesOf({
                ...(v4 && { ipv4: { address: v4.Address, port: v4.Port } }),
                ...(v6 && { ipv6: { address: v6.Address, port: v6.Port } }),
              }),
            ];
          }),
      );
    },
    async passing(_scope, service) {
      const res = await fetch(`${agent.url}/v1/health/service/${service}?passing`);
      return ((await res.json()) as { Service: { ID: string } }[]).map((e) => e.Service.ID);
    },
    async stamps(_scope, service) {
      const res = await fetch(`${agent.url}/v1/health/service/${service}`);
      const entries = (await res.json()) as {
        Service: { ID: string; CreateIndex: number; ModifyIndex: number };
      }[];
      return new Map(entries.map(({ Service: s }) => [s.ID, `${s.CreateIndex}/${s.ModifyIndex}`]));
    },
    down: () => proxy.down(),
    up: () => proxy.up(),
    loseLiveness: () => agent.restart({ loseState: true }),
    async close() {
      await proxy.close();
      await agent.close();
    },
  };
}

/** The `addresses` field of etcd and ZooKeeper records (docs/engines.md). */
interface RecordedFamilies {
  readonly ipv4?: { readonly address: string; readonly port: number };
  readonly ipv6?: { readonly address: string; readonly port: number };
}

function familiesOf(addresses: RecordedFamilies | undefined): { ipv4?: string; ipv6?: string } {
  return {
    ...(addresses?.ipv4 && {
      ipv4: formatHostPort({ host: addresses.ipv4.address, port: addresses.ipv4.port }),
    }),
    ...(addresses?.ipv6 && {
      ipv6: formatHostPort({ host: addresses.ipv6.address, port: addresses.ipv6.port }),
    }),
  };
}
