// Heartbeat cost: requests each adapter sends its backend per TTL interval while holding 1, 100 and 1,000
// services, counted on the server side (Consul double's request log, ZooKeeper's `mntr` packets received)
// or, for etcd, at the client's gRPC stubs (keepalive streams and every other call).
import type { Registry } from '@registrar/core';
import { service } from '@registrar/core/testing';
import { createEtcdRegistry } from '@registrar/etcd';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { BACKENDS, pool, sleep, startBackend, type Backend } from './backends.js';
import { record } from './report.js';

const SIZES = [1, 100, 1_000];
const TTL = 3;
const REFRESH = 1;

/** An etcd client whose unary calls and keepalive streams are counted. */
function countingEtcd(endpoint: string) {
  const client = new Etcd3({ hosts: endpoint });
  const counts = { keepalive: 0, other: 0 };
  const lease = client.leaseClient;
  const keepAlive = lease.leaseKeepAlive.bind(lease);
  lease.leaseKeepAlive = (options) => {
    counts.keepalive += 1;
    return keepAlive(options);
  };
  for (const [target, methods] of [
    [client.kv, ['put', 'range', 'deleteRange', 'txn']],
    [lease, ['leaseGrant', 'leaseRevoke']],
  ] as const) {
    for (const method of methods) {
      const t = target as unknown as Record<string, (...args: unknown[]) => unknown>;
      const original = t[method].bind(target);
      t[method] = (...args: unknown[]) => {
        counts.other += 1;
        return original(...args);
      };
    }
  }
  return { client, counts, total: () => counts.keepalive + counts.other };
}

describe.each(BACKENDS)('%s', (name) => {
  let backend: Backend;
  beforeAll(async () => {
    backend = await startBackend(name);
    await backend.raw.close();
  });
  afterAll(async () => {
    await backend?.close();
  });

  it(`requests per ${TTL} s TTL interval with ${SIZES.join(', ')} services`, async () => {
    const perInterval: Record<string, number> = {};
    const writesPerInterval: Record<string, number> = {};
    for (const size of SIZES) {
      const node = `hb${size}`;
      let registry: Registry;
      let requests: () => Promise<number>;
      let etcdClient: Etcd3 | undefined;
      if (name === 'etcd') {
        const counting = countingEtcd(backend.endpoint!);
        etcdClient = counting.client;
        registry = createEtcdRegistry({
          client: counting.client,
          nodeId: node,
          ttl: TTL,
          keepaliveInterval: REFRESH,
        });
        requests = () => Promise.resolve(counting.total());
      } else {
        registry = backend.registry({ nodeId: node, ttl: TTL, refresh: REFRESH });
        requests = () => backend.requests();
      }
      await pool(size, 16, (i) =>
        registry.register(
          service({
            node,
            name: 'hb',
            address: '127.0.0.1',
            port: 20000 + i,
            container: { id: `${i}`.padStart(64, '0'), name: `c${i}` },
          }),
        ),
      );
      // Let the heartbeat settle into its rhythm, then count one whole TTL interval with nothing to write.
      await sleep(REFRESH * 1000 + 200);
      const r0 = await requests();
      const w0 = await backend.writes();
      await sleep(TTL * 1000);
      perInterval[size] = (await requests()) - r0;
      writesPerInterval[size] = (await backend.writes()) - w0;
      await registry.close({ deregister: true });
      etcdClient?.close();
    }
    const counts = SIZES.map((s) => perInterval[s]);
    record('heartbeat', name, {
      ttlSeconds: TTL,
      refreshSeconds: REFRESH,
      requestsPerTtl: perInterval,
      writesPerTtl: writesPerInterval,
      counted:
        name === 'etcd'
          ? 'client gRPC calls (keepalive streams + unary)'
          : name === 'zookeeper'
            ? 'server mntr zk_packets_received (pings included)'
            : 'Consul double request log',
      goal: 'constant',
      goalMet: Math.max(...counts) - Math.min(...counts) <= 1,
    });
  });
});
