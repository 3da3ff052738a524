// Captures packages/core/src/fixtures/swarm-*.json from a real two-node Swarm (harness/hosts.ts), for the
// unit tests of core's Swarm derivation. A tool, not a test (not named *.test.ts, so `pnpm test` never runs
// it); run it with `pnpm capture:swarm-fixtures`.
// What it sets up is what swarm/derive.test.ts expects; change both together.
import type Docker from 'dockerode';
import { writeFileSync } from 'node:fs';
import { afterAll, describe, it } from 'vitest';
import { until } from '@registrar/core/testing';
import { TEST_IMAGE } from '../harness/docker.js';
import { startHosts, type TestHosts } from '../harness/hosts.js';

const FIXTURES = new URL('../../packages/core/src/fixtures/', import.meta.url);
const HTTPD = (port: number) => ['httpd', '-f', '-p', String(port), '-h', '/'];
const SECOND = 1_000_000_000;

let testHosts: TestHosts | undefined;
afterAll(async () => {
  await testHosts?.close();
}, 120_000);

interface RawTask {
  ServiceID?: string;
  DesiredState?: string;
  Status?: { State?: string };
}

async function snapshot(docker: Docker) {
  const [info, services, tasks, nodes, networks] = await Promise.all([
    docker.info() as Promise<{ Swarm?: unknown }>,
    docker.listServices(),
    docker.listTasks(),
    docker.listNodes(),
    docker.listNetworks(),
  ]);
  return { swarm: info.Swarm, services, tasks, nodes, networks };
}

function save(name: string, value: unknown) {
  writeFileSync(new URL(`swarm-${name}.json`, FIXTURES), `${JSON.stringify(value, null, 2)}\n`);
}

describe('capture Swarm fixtures', () => {
  it('writes packages/core/src/fixtures/swarm-*.json', async () => {
    testHosts = await startHosts(2, { swarm: true });
    const overlay = testHosts.overlay!.name;
    const docker = testHosts.hosts[0]!.docker;
    const events: unknown[] = [];
    const stream = await docker.getEvents({ filters: { type: ['service', 'node', 'container'] } });
    stream.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) if (line.trim() !== '') events.push(JSON.parse(line));
    });
    const base = (name: string, extra: object = {}) => ({
      Name: name,
      TaskTemplate: {
        ContainerSpec: { Image: TEST_IMAGE, Command: HTTPD(80), StopGracePeriod: SECOND },
        Networks: [{ Target: overlay }],
      },
      ...extra,
    });
    // A stack's service: labels on the service (deploy.labels) and on its containers; VIP and an ingress port.
    await docker.createService({
      ...base('shop_web'),
      Labels: { 'com.docker.stack.namespace': 'shop', SERVICE_NAME: 'web', SERVICE_TAGS: 'from-service' },
      TaskTemplate: {
        ContainerSpec: {
          Image: TEST_IMAGE,
          Command: HTTPD(80),
          StopGracePeriod: SECOND,
          Labels: {
            'com.docker.stack.namespace': 'shop',
            SERVICE_NAME: 'from-container',
            SERVICE_TAGS: 'from-container',
            SERVICE_REGION: 'eu',
          },
          Env: ['VERSION=1'],
        },
        Networks: [{ Target: overlay }],
      },
      Mode: { Replicated: { Replicas: 2 } },
      EndpointSpec: { Mode: 'vip', Ports: [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 8080 }] },
    });
    // A global service publishing in host mode: one task per node, each at its node's port 9090.
    await docker.createService({
      ...base('hostport'),
      Mode: { Global: {} },
      EndpointSpec: {
        Ports: [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 9090, PublishMode: 'host' }],
      },
    });
    // Nothing published: its port comes from a SERVICE_<port>_NAME label.
    await docker.createService({
      ...base('internal'),
      TaskTemplate: {
        ContainerSpec: {
          Image: TEST_IMAGE,
          Command: HTTPD(8080),
          StopGracePeriod: SECOND,
          Labels: { SERVICE_8080_NAME: 'api' },
        },
        Networks: [{ Target: overlay }],
      },
      Mode: { Replicated: { Replicas: 1 } },
    });
    await docker.createService({
      ...base('zero'),
      Mode: { Replicated: { Replicas: 0 } },
      EndpointSpec: { Ports: [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 8081 }] },
    });
    // Exits at once and is not restarted.
    await docker.createService({
      ...base('broken'),
      TaskTemplate: {
        ContainerSpec: { Image: TEST_IMAGE, Command: ['false'] },
        Networks: [{ Target: overlay }],
        RestartPolicy: { Condition: 'none' },
      },
      Labels: { SERVICE_80_NAME: 'broken' },
      Mode: { Replicated: { Replicas: 1 } },
    });
    // A health check that never passes: Swarm keeps the task `starting`, then replaces it.
    await docker.createService({
      ...base('sick'),
      TaskTemplate: {
        ContainerSpec: {
          Image: TEST_IMAGE,
          Command: HTTPD(80),
          StopGracePeriod: SECOND,
          Labels: { SERVICE_80_NAME: 'sick' },
          HealthCheck: { Test: ['CMD', 'false'], Interval: SECOND, Retries: 30, StartPeriod: 0 },
        },
        Networks: [{ Target: overlay }],
      },
      Mode: { Replicated: { Replicas: 1 } },
    });
    // DNS round robin: no VIP.
    await docker.createService({
      ...base('rr'),
      Labels: { SERVICE_80_NAME: 'rr' },
      Mode: { Replicated: { Replicas: 1 } },
      EndpointSpec: { Mode: 'dnsrr' },
    });

    const tasksOf = async (name: string) =>
      ((await docker.listTasks({ filters: { service: [name] } })) as RawTask[]).filter(
        (t) => t.DesiredState === 'running',
      );
    const running = async (name: string, count: number) =>
      (await tasksOf(name)).filter((t) => t.Status?.State === 'running').length === count;
    await until(
      'the services running',
      async () =>
        (await running('shop_web', 2)) &&
        (await running('hostport', 2)) &&
        (await running('internal', 1)) &&
        (await running('rr', 1)) &&
        (await tasksOf('sick')).some((t) => t.Status?.State === 'starting'),
      90_000,
    );
    await until(
      'broken has failed',
      async () =>
        ((await docker.listTasks({ filters: { service: ['broken'] } })) as RawTask[]).some(
          (t) => t.Status?.State === 'failed',
        ),
      30_000,
    );
    save('snapshot', await snapshot(docker));

    // A rolling update (an env change): the old tasks shut down, new ones take their slots.
    const web = docker.getService('shop_web');
    const current = (await web.inspect()) as {
      Version: { Index: number };
      Spec: { TaskTemplate: { ContainerSpec: { Env: string[] } } };
    };
    current.Spec.TaskTemplate.ContainerSpec.Env = ['VERSION=2'];
    await web.update({ ...current.Spec, version: current.Version.Index });
    await until(
      'shop_web updated',
      async () => {
        const all = (await docker.listTasks({ filters: { service: ['shop_web'] } })) as RawTask[];
        return (
          all.filter((t) => t.DesiredState === 'running' && t.Status?.State === 'running').length === 2 &&
          all.filter((t) => t.DesiredState === 'shutdown').length === 2 &&
          all.every((t) => t.DesiredState !== 'shutdown' || t.Status?.State !== 'running')
        );
      },
      90_000,
    );
    save('updated', await snapshot(docker));
    stream.removeAllListeners();
    (stream as unknown as { destroy(): void }).destroy();
    save('events', events);
  }, 300_000);
});
