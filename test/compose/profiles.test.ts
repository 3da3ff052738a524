// docker-compose.yml's profiles: `--profile etcd` (zookeeper, consul) runs that backend's server, a registrar
// pointed at it alone and the demo services; no profile runs everything (.env: COMPOSE_PROFILES=all, what
// compose.test.ts drives). Which services a profile selects is read from what `up --no-start` creates: Compose
// v1.29's `config --services` lists every service whatever the profile, `up` honours profiles in v1 and v2 alike.
// Then one profile really runs. On locally built images (docker-compose.local.yml) unless
// COMPOSE_OFFICIAL_IMAGES=1.
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '@registrar/core/testing';
import { docker } from '../harness/docker.js';
import { buildImages, createStack, leftovers, type Stack } from './compose.js';

const everything = ['api', 'consul', 'etcd', 'haproxy', 'lb', 'registrar', 'web', 'zookeeper'];

/** Per profile (undefined: none given): every service it creates, and where each registrar writes to. */
const PROFILES: {
  title: string;
  profile?: string;
  services: string[];
  registries: Record<string, string[]>;
}[] = [
  {
    title: 'no --profile',
    services: everything,
    registries: { registrar: ['consul', 'etcd', 'zookeeper'] },
  },
  {
    title: '--profile all',
    profile: 'all',
    services: everything,
    registries: { registrar: ['consul', 'etcd', 'zookeeper'] },
  },
  {
    title: '--profile etcd',
    profile: 'etcd',
    services: ['api', 'etcd', 'registrar-etcd', 'web'],
    registries: { 'registrar-etcd': ['etcd'] },
  },
  {
    title: '--profile zookeeper',
    profile: 'zookeeper',
    services: ['api', 'registrar-zookeeper', 'web', 'zookeeper'],
    registries: { 'registrar-zookeeper': ['zookeeper'] },
  },
  {
    // HAProxy and registrar lb follow Consul: they come with it.
    title: '--profile consul',
    profile: 'consul',
    services: ['api', 'consul', 'haproxy', 'lb', 'registrar-consul', 'web'],
    registries: { 'registrar-consul': ['consul'] },
  },
];

/** Stacks that may still have containers, for afterAll when a test failed half-way. */
const open = new Set<Stack>();

function stackFor(profile: string | undefined): Stack {
  const stack = createStack(profile === undefined ? {} : { profiles: [profile] });
  open.add(stack);
  return stack;
}

async function down(stack: Stack) {
  await stack.compose('down', '-v', '--remove-orphans', '-t', '2');
  open.delete(stack);
}

/** Every container of the project, running or not. */
async function projectContainers(stack: Stack) {
  const list = await docker.listContainers({
    all: true,
    filters: { label: [`com.docker.compose.project=${stack.project}`] },
  });
  return Promise.all(list.map((c) => docker.getContainer(c.Id).inspect()));
}

const serviceOf = (c: { Config: { Labels: Record<string, string> | null } }) =>
  c.Config.Labels?.['com.docker.compose.service'] ?? '';

beforeAll(async () => {
  await buildImages();
}, 1_200_000);

afterAll(async () => {
  await Promise.all([...open].map((s) => down(s).catch(() => undefined)));
}, 120_000);

describe('docker-compose.yml profiles', { timeout: 240_000 }, () => {
  it.each(PROFILES)(
    '$title creates exactly its services, each registrar pointed at its backends only',
    async ({ profile, services, registries }) => {
      const stack = stackFor(profile);
      await stack.compose('up', '--no-start', '--no-build');
      const created = await projectContainers(stack);
      expect([...new Set(created.map(serviceOf))].sort()).toEqual(services);
      for (const [service, backends] of Object.entries(registries)) {
        const bridge = created.find((c) => serviceOf(c) === service);
        // The registry URIs are the arguments with a scheme; their host is the backend's compose service.
        const hosts = (bridge?.Config.Cmd ?? [])
          .filter((arg) => arg.includes('://'))
          .map((uri) => new URL(uri).hostname)
          .sort();
        expect(hosts, `${service}: ${bridge?.Config.Cmd?.join(' ')}`).toEqual(backends);
      }
      await down(stack);
      expect(await leftovers(stack.project)).toEqual({ containers: [], networks: [], volumes: [] });
    },
  );

  it('--profile etcd runs etcd, its registrar and the demo services, and registers them in etcd', async () => {
    const stack = stackFor('etcd');
    await stack.compose('up', '-d');
    const want = ['etcd', 'registrar-etcd', 'web', 'api'];
    await until(
      `${want.join(', ')} healthy`,
      async () => {
        const all = await Promise.all(want.map((s) => stack.containers(s)));
        return all.every((list) => list.length > 0 && list.every((c) => c.health === 'healthy'));
      },
      180_000,
    );
    expect([...new Set((await projectContainers(stack)).map(serviceOf))].sort()).toEqual([...want].sort());

    const etcd = new Etcd3({ hosts: `http://${await stack.ip('etcd')}:2379` });
    try {
      for (const [service, replicas] of [
        ['web', 3],
        ['api', 2],
      ] as const) {
        const expected = (await stack.containers(service)).map((c) => `${c.ip}:80`).sort();
        expect(expected).toHaveLength(replicas);
        let seen: string[] = [];
        await until(
          `${service} = ${expected.join(' ')} in etcd`,
          async () => {
            // The bridge registers every SERVICE_NAME container on the host: keep this project's.
            const values = await etcd.getAll().prefix(`/services/${service}/`).strings();
            seen = Object.values(values)
              .map((v) => JSON.parse(v) as { address: string; port: number })
              .map((r) => `${r.address}:${r.port}`)
              .filter((a) => expected.includes(a))
              .sort();
            return JSON.stringify(seen) === JSON.stringify(expected);
          },
          60_000,
        ).catch((error: Error) => {
          throw new Error(`${error.message}; last seen ${seen.join(' ')}`);
        });
      }
    } finally {
      etcd.close();
    }

    await down(stack);
    expect(await leftovers(stack.project)).toEqual({ containers: [], networks: [], volumes: [] });
  });
});
