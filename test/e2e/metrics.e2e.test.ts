// End to end: `--metrics-addr` on the built binary — Prometheus metrics that move with container events,
// /healthz, and /readyz following Docker and every backend.
import { startConsulDouble, type ConsulDouble } from '@registrar/consul-double';
import { Etcd3 } from 'etcd3';
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startEtcd, type EtcdServer } from '@registrar/test-servers/etcd';
import { freePort, until } from '@registrar/core/testing';
import { CLI_VERSION, spawnBridge, type BridgeProcess } from '../harness/bridge.js';
import { runContainer, TEST_LABEL, uniqueName } from '../harness/containers.js';
import { removeLabelled } from '../harness/docker.js';

let etcd: EtcdServer;
let etcdClient: Etcd3;
const doubles: ConsulDouble[] = [];
const bridges: BridgeProcess[] = [];
const runLabel = `${TEST_LABEL}.run=${randomBytes(4).toString('hex')}`;
const [labelKey, labelValue] = runLabel.split('=') as [string, string];
const labels = { [labelKey]: labelValue };

beforeAll(async () => {
  etcd = await startEtcd();
  etcdClient = new Etcd3({ hosts: etcd.endpoint });
});

afterEach(async () => {
  await Promise.all(bridges.splice(0).map((b) => b.kill()));
  await removeLabelled(runLabel);
  await Promise.all(doubles.splice(0).map((d) => d.close()));
});

afterAll(async () => {
  etcdClient?.close();
  await etcd?.close();
});

/** One sample of a metric: `name{a="b",...}` → value; labels given must all match. */
function sample(text: string, name: string, want: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(want).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

async function get(port: number, path: string) {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.text() };
}

async function start() {
  const consul = await startConsulDouble({ reapIntervalMs: 200, minDeregisterAfterMs: 1000 });
  doubles.push(consul);
  const port = await freePort();
  const node = `metrics-${randomBytes(3).toString('hex')}`;
  const bridge = spawnBridge([
    '--ip',
    '127.0.0.1',
    '--node-id',
    node,
    '--ttl',
    '2',
    '--explicit',
    '--metrics-addr',
    `127.0.0.1:${port}`,
    `etcd://${etcd.endpoint.replace(/^https?:\/\//, '')}/metrics-${node}`,
    `consul://127.0.0.1:${consul.port}?deregister-after=1s`,
  ]);
  bridges.push(bridge);
  await until('metrics endpoint', async () => (await get(port, '/healthz')).status === 200);
  /**
   * Whether this bridge's entry for one container port is in etcd and in Consul. The metrics count every
   * container on the engine (other test files' too): only the registries say that this test's was written.
   */
  const holds = async (id: string, service: string) => {
    const key = await etcdClient.get(`/metrics-${node}/${service}/${id}`).string();
    const res = await fetch(`${consul.url}/v1/agent/service/${encodeURIComponent(id)}`);
    return { etcd: key !== null, consul: res.ok };
  };
  return { consul, port, bridge, node, holds };
}

describe('registrar --metrics-addr', () => {
  it('counts registry operations, reconcile passes and Docker events, with non-zero values', async () => {
    const { port, bridge, node, holds } = await start();
    await until('ready', async () => (await get(port, '/readyz')).status === 200);
    const starting = await bridge.waitForLog('start line', (l) => l.msg === 'registrar starting');
    expect(starting.version).toBe(CLI_VERSION);

    const service = uniqueName('metered');
    const name = uniqueName('m');
    const container = await runContainer({
      name,
      publish: ['80/tcp'],
      env: { SERVICE_NAME: service },
      labels,
    });
    const id = `${node}:${name}:80`;
    const registered = (text: string, backend: string) =>
      sample(text, 'registrar_registry_operations_total', { backend, op: 'register', outcome: 'ok' }) ?? 0;
    // Other test files' containers move these counters too: first this container's own writes, seen in the
    // registries, then the counters that must have counted them.
    await until('the container registered in both backends', async () => {
      const held = await holds(id, service);
      return held.etcd && held.consul;
    });
    await until('registrations counted in both backends', async () => {
      const { body } = await get(port, '/metrics');
      return (
        registered(body, 'etcd') >= 1 &&
        registered(body, 'consul') >= 1 &&
        (sample(body, 'registrar_registry_services', { backend: 'consul' }) ?? 0) >= 1
      );
    });
    await container.stop({ t: 1 });
    await until('the container deregistered from both backends', async () => {
      const held = await holds(id, service);
      return !held.etcd && !held.consul;
    });
    let text = '';
    await until('deregistrations counted', async () => {
      text = (await get(port, '/metrics')).body;
      return (
        (sample(text, 'registrar_registry_operations_total', {
          backend: 'etcd',
          op: 'deregister',
          outcome: 'ok',
        }) ?? 0) >= 1
      );
    });

    for (const backend of ['etcd', 'consul']) {
      expect(sample(text, 'registrar_registry_up', { backend })).toBe(1);
      expect(sample(text, 'registrar_reconcile_runs_total', { backend })).toBeGreaterThan(0);
      expect(sample(text, 'registrar_reconcile_drift_total', { backend })).toBeGreaterThanOrEqual(2);
      expect(
        sample(text, 'registrar_registry_operation_seconds_count', { backend, op: 'register' }),
      ).toBeGreaterThanOrEqual(1);
      // Other containers on the host may carry SERVICE_NAME too: only the presence is exact here.
      expect(sample(text, 'registrar_registry_services', { backend })).toBeGreaterThanOrEqual(0);
    }
    expect(sample(text, 'registrar_docker_events_total', { action: 'start' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'registrar_docker_events_total', { action: 'die' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'registrar_docker_event_lag_seconds_count')).toBeGreaterThanOrEqual(2);
    // Declared even while zero, so dashboards and alerts can rely on them.
    for (const name of [
      'registrar_liveness_losses_total',
      'registrar_heartbeat_failures_total',
      'registrar_docker_reconnects_total',
    ]) {
      expect(text).toContain(`# TYPE ${name} counter`);
    }
    expect(sample(text, 'registrar_process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(sample(text, 'registrar_build_info', { version: CLI_VERSION })).toBe(1);
  });

  it('is ready only while Docker and every backend answer: /readyz 503 when Consul is down, /healthz stays 200', async () => {
    const { consul, port } = await start();
    await until('ready', async () => (await get(port, '/readyz')).status === 200);
    const ready = JSON.parse((await get(port, '/readyz')).body) as Record<string, unknown>;
    expect(ready).toMatchObject({ ready: true, docker: true, inventory: true });

    await consul.close();
    // A container event makes the bridge write to every registry; Consul's write fails.
    await runContainer({
      name: uniqueName('m'),
      publish: ['80/tcp'],
      env: { SERVICE_NAME: uniqueName('x') },
      labels,
    });
    let body = '';
    await until(
      '/readyz 503',
      async () => {
        const res = await get(port, '/readyz');
        body = res.body;
        return res.status === 503;
      },
      30_000,
    );
    const detail = JSON.parse(body) as { ready: boolean; backends: Record<string, boolean> };
    expect(detail.ready).toBe(false);
    expect(Object.entries(detail.backends).filter(([, up]) => !up)).toHaveLength(1);
    expect(Object.keys(detail.backends).find((t) => !detail.backends[t])).toMatch(/127\.0\.0\.1/);
    expect((await get(port, '/healthz')).status).toBe(200);
    const metrics = (await get(port, '/metrics')).body;
    expect(sample(metrics, 'registrar_registry_up', { backend: 'consul' })).toBe(0);
    expect(sample(metrics, 'registrar_registry_up', { backend: 'etcd' })).toBe(1);
  });

  it('counts heartbeat failures from the adapters: etcd frozen, Consul unreachable', async () => {
    const { consul, port } = await start();
    await until('ready', async () => (await get(port, '/readyz')).status === 200);
    const failures = async (backend: string) =>
      sample((await get(port, '/metrics')).body, 'registrar_heartbeat_failures_total', { backend }) ?? 0;
    // A container of our own, so that each backend holds a lease / TTL check to keep alive: without one
    // there is no heartbeat to fail (and other test files' containers must not be what provides it).
    await runContainer({
      name: uniqueName('hb'),
      publish: ['80/tcp'],
      env: { SERVICE_NAME: uniqueName('heartbeat') },
      labels,
    });
    await until('registered in both backends', async () => {
      const { body } = await get(port, '/metrics');
      return ['etcd', 'consul'].every(
        (backend) =>
          (sample(body, 'registrar_registry_operations_total', { backend, op: 'register', outcome: 'ok' }) ??
            0) >= 1,
      );
    });
    expect(await failures('etcd')).toBe(0);
    expect(await failures('consul')).toBe(0);
    // Both down at once: etcd keepalives and Consul TTL passes fail until they are back.
    await etcd.process.pause();
    await consul.stop();
    try {
      await until('failed heartbeats counted', async () => (await failures('consul')) >= 1);
      await until('failed keepalives counted', async () => (await failures('etcd')) >= 1);
    } finally {
      etcd.process.resume();
      await consul.start();
    }
  });

  it('answers 404 with a hint on other paths', async () => {
    const { port } = await start();
    const res = await get(port, '/nope');
    expect(res.status).toBe(404);
    expect(res.body).toContain('/metrics');
  });

  it('logs one INFO line per change and registry, and shows a refused service in /readyz and registrar_service_states', async () => {
    const { consul, port, bridge, node } = await start();
    await until('ready', async () => (await get(port, '/readyz')).status === 200);
    const [etcdTarget, consulTarget] = (
      await bridge.waitForLog('bridge starting', (l) => l.msg === 'bridge starting')
    ).registries as [string, string];
    expect(consulTarget).toBe(consul.url);
    const info = (line: string) => bridge.waitForLog(line, (l) => l.level === 30 && l.msg === line);

    // Started after the inventory: one line per registry, with the address clients get.
    const name = uniqueName('m');
    const web = await runContainer({
      name,
      publish: ['80/tcp'],
      env: { SERVICE_NAME: uniqueName('web') },
      labels,
    });
    const hostPort = (await web.inspect()).NetworkSettings.Ports['80/tcp']?.[0]?.HostPort;
    const id = `${node}:${name}:80`;
    await info(`registered ${id} 127.0.0.1:${hostPort} in ${etcdTarget}`);
    await info(`registered ${id} 127.0.0.1:${hostPort} in ${consulTarget}`);
    await until('counted as registered', async () => {
      const text = (await get(port, '/metrics')).body;
      return (sample(text, 'registrar_service_states', { backend: 'etcd', state: 'registered' }) ?? 0) >= 1;
    });

    // Refused by Consul (script checks are off there): /readyz says so, with the service and the error.
    const refusedName = uniqueName('m');
    const refused = await runContainer({
      name: refusedName,
      publish: ['80/tcp'],
      env: { SERVICE_NAME: uniqueName('scripted'), SERVICE_CHECK_SCRIPT: 'true' },
      labels,
    });
    let reasons: Record<string, string> = {};
    await until('/readyz 503 naming the refusal', async () => {
      const res = await get(port, '/readyz');
      reasons = (JSON.parse(res.body) as { reasons: Record<string, string> }).reasons;
      return res.status === 503 && (reasons.services ?? '').includes(`rejected in ${consulTarget}`);
    });
    const text = (await get(port, '/metrics')).body;
    expect(
      sample(text, 'registrar_service_states', { backend: 'consul', state: 'rejected' }),
    ).toBeGreaterThanOrEqual(1);
    await refused.remove({ force: true });
    await info(`deregistered ${node}:${refusedName}:80 from ${etcdTarget} (container died)`);
    await until('ready again', async () => (await get(port, '/readyz')).status === 200);

    // docker stop: withdrawn at the stop signal (etcd holds passing services only; Consul marks it critical),
    // then removed from Consul when the process exits.
    await web.stop({ t: 1 });
    await info(`deregistered ${id} from ${etcdTarget} (drained)`);
    await bridge.waitForLog('Consul marks it critical', (l) =>
      l.msg.startsWith(
        `updated ${id} 127.0.0.1:${hostPort} in ${consulTarget} (critical: draining: Docker sent SIGTERM`,
      ),
    );
    await info(`deregistered ${id} from ${consulTarget} (container died)`);
    // Debug lines aside, nothing but these INFO lines about this container.
    const about = bridge.logs.filter((l) => l.level === 30 && l.msg.includes(id));
    expect(about.map((l) => l.msg.split(' (')[0]).sort()).toEqual(
      [
        `registered ${id} 127.0.0.1:${hostPort} in ${etcdTarget}`,
        `registered ${id} 127.0.0.1:${hostPort} in ${consulTarget}`,
        `deregistered ${id} from ${etcdTarget}`,
        `updated ${id} 127.0.0.1:${hostPort} in ${consulTarget}`,
        `deregistered ${id} from ${consulTarget}`,
      ].sort(),
    );
  });
});
