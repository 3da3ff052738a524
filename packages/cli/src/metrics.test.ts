import type { LivenessLoss, Registry, RegistryEvent } from '@registrar/core';
import { RegistryConnectionError } from '@registrar/core';
import { Subject } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { Health } from './health.js';
import { Metrics } from './metrics.js';

/** A registry that only reports the liveness events a test pushes. */
function fakeRegistry(backend: string, target: string) {
  const events = new Subject<RegistryEvent>();
  const registry: Registry = {
    backend,
    target,
    nodeId: 'n1',
    mirrorsHealth: false,
    lost$: new Subject<LivenessLoss>(),
    events$: events.asObservable(),
    fingerprint: () => '',
    register: () => Promise.resolve(),
    deregister: () => Promise.resolve(),
    list: () => Promise.resolve([]),
    close: () => Promise.resolve(),
  };
  return { registry, events };
}

async function sample(metrics: Metrics, name: string, labels: Record<string, string>) {
  const metric = await metrics.registry.getSingleMetric(name)?.get();
  return metric?.values.find((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want))?.value;
}

describe('Metrics and the registries’ events$', () => {
  it('counts heartbeat failures and liveness losses per registry from events$', async () => {
    const etcd = fakeRegistry('etcd', 'etcd://127.0.0.1:2379/services');
    const zk = fakeRegistry('zookeeper', 'zookeeper://127.0.0.1:2181/services');
    const metrics = new Metrics(new Health([]));
    metrics.attach([etcd.registry, zk.registry]);
    const failed = { type: 'heartbeat-failed', error: new RegistryConnectionError('down', 'etcd') } as const;

    etcd.events.next(failed);
    etcd.events.next(failed);
    etcd.events.next({ type: 'recovered' });
    zk.events.next(failed);
    zk.events.next({ type: 'liveness-lost', reason: 'session expired' });

    const etcdLabels = { backend: 'etcd', target: etcd.registry.target };
    const zkLabels = { backend: 'zookeeper', target: zk.registry.target };
    expect(await sample(metrics, 'registrar_heartbeat_failures_total', etcdLabels)).toBe(2);
    expect(await sample(metrics, 'registrar_heartbeat_failures_total', zkLabels)).toBe(1);
    expect(await sample(metrics, 'registrar_liveness_losses_total', zkLabels)).toBe(1);
    expect(await sample(metrics, 'registrar_liveness_losses_total', etcdLabels)).toBeUndefined();
  });

  it('declares the counters before any event, then counts each failed heartbeat', async () => {
    const consul = fakeRegistry('consul', 'consul://127.0.0.1:8500');
    const metrics = new Metrics(new Health([]));
    metrics.attach([consul.registry]);
    const text = await metrics.registry.metrics();
    expect(text).toContain('# TYPE registrar_heartbeat_failures_total counter');
    expect(
      await sample(metrics, 'registrar_heartbeat_failures_total', { backend: 'consul' }),
    ).toBeUndefined();
    consul.events.next({ type: 'heartbeat-failed', error: new Error('ECONNREFUSED') });
    expect(await sample(metrics, 'registrar_heartbeat_failures_total', { backend: 'consul' })).toBe(1);
  });

  it('serves build info and Docker as down from the first second, before any registry exists', async () => {
    const health = new Health(['etcd://127.0.0.1:2379/services']);
    const metrics = new Metrics(health);
    expect(await sample(metrics, 'registrar_docker_up', {})).toBe(0);
    expect(await sample(metrics, 'registrar_build_info', {})).toBe(1);
    health.docker(undefined);
    expect(await sample(metrics, 'registrar_docker_up', {})).toBe(1);
  });

  it('reports a registry down while its heartbeats fail, and up again once they recover', async () => {
    const etcd = fakeRegistry('etcd', 'etcd://127.0.0.1:2379/services');
    const metrics = new Metrics(new Health([]));
    metrics.attach([etcd.registry]);
    const labels = { backend: 'etcd', target: etcd.registry.target };
    metrics.observer.onReachable?.(etcd.registry, true);
    expect(await sample(metrics, 'registrar_registry_up', labels)).toBe(1);
    etcd.events.next({ type: 'heartbeat-failed', error: new RegistryConnectionError('down', 'etcd') });
    expect(await sample(metrics, 'registrar_registry_up', labels)).toBe(0);
    etcd.events.next({ type: 'recovered' });
    expect(await sample(metrics, 'registrar_registry_up', labels)).toBe(1);
  });
});

describe('Metrics and the bridge status', () => {
  it('computes the bridge status once per scrape, not once per gauge that reads it', async () => {
    let computed = 0;
    const health = new Health([]);
    health.attachBridge({
      status: () => {
        computed += 1;
        return {
          dockerConnected: true,
          inventoryComplete: true,
          containers: 3,
          services: 4,
          docker: { failing: 0, timeouts: 0 },
          unresolved: [],
          registries: [],
        };
      },
    });
    const metrics = new Metrics(health);
    const text = await metrics.registry.metrics();
    expect(text).toContain('registrar_services 4');
    expect(text).toContain('registrar_containers 3');
    expect(computed).toBe(1);
    // The next scrape sees a fresh status.
    await new Promise((resolve) => setImmediate(resolve));
    await metrics.registry.metrics();
    expect(computed).toBe(2);
  });
});
