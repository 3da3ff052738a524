/**
 * A program as a user of the published packages writes it. `install.test.ts` copies it into a project outside
 * the workspace, where `@registrar/*` come from the packed tarballs, compiles it with `tsc --strict` and runs
 * it with node. Each step prints one `ok ...` line; any failure throws, so node exits non-zero.
 *
 * argv/env: `ETCD_ENDPOINT` (`http://127.0.0.1:<port>`) and `ZOOKEEPER_CONNECT` (`127.0.0.1:<port>`); the
 * Consul agent double is started in-process from the installed `@registrar/consul-double`.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { createBridge, RegistryError, type DockerApi, type Registry, type Service } from '@registrar/core';
import { service } from '@registrar/core/testing';
import { createConsulRegistry } from '@registrar/consul';
import { startConsulDouble } from '@registrar/consul-double';
import { createEtcdFollower, createEtcdRegistry } from '@registrar/etcd';
import { planSlots } from '@registrar/lb';
import { followIntoFiles } from '@registrar/render';
import { filter, firstValueFrom } from 'rxjs';
import { createZookeeperRegistry } from '@registrar/zookeeper';

/** Docker's types as core's public `DockerApi` names them: the user needs no `@types/dockerode` of their own. */
type ContainerSummary = Awaited<ReturnType<DockerApi['listContainers']>>[number];
type ContainerInspect = Awaited<ReturnType<ReturnType<DockerApi['getContainer']>['inspect']>>;

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

function check(condition: boolean, what: string): asserts condition {
  if (!condition) throw new Error(`check failed: ${what}`);
}

/** Poll until `probe` holds; a wait for an observable effect with a deadline, not a sleep. */
async function eventually(what: string, probe: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** A service for the round trips, from the fixtures the core package exports for tests. */
const apiService = (node: string, port: number): Service =>
  service({ node, name: 'api', address: '127.0.0.1', port, container: { id: 'c0ffee', name: 'api' } });

/** The Registry contract, the same for every adapter: register, list, deregister, close. */
async function roundTrip(label: string, registry: Registry, entry: Service): Promise<void> {
  const lost = registry.lost$.subscribe(({ reason }) => console.error(`${label}: liveness lost: ${reason}`));
  try {
    await registry.register(entry);
    const listed = await registry.list();
    check(
      listed.some((e) => e.id === entry.id && e.name === entry.name),
      `${label} lists ${entry.id} after register (got ${JSON.stringify(listed)})`,
    );
    await registry.deregister(entry.id);
    const after = await registry.list();
    check(!after.some((e) => e.id === entry.id), `${label} no longer lists ${entry.id}`);
  } catch (error) {
    // The error taxonomy is part of the API: a failure here is a RegistryError.
    if (error instanceof RegistryError) throw new Error(`${label}: ${error.name}: ${error.message}`);
    throw error;
  } finally {
    lost.unsubscribe();
    await registry.close({ deregister: true });
  }
  console.log(`ok ${registry.backend} register list deregister close (${registry.target})`);
}

const etcdEndpoint = env('ETCD_ENDPOINT');
const zookeeperConnect = env('ZOOKEEPER_CONNECT');

await roundTrip(
  'etcd',
  createEtcdRegistry({ hosts: [etcdEndpoint], nodeId: 'pack-etcd', prefix: '/pack', ttl: 10 }),
  apiService('pack-etcd', 8081),
);

await roundTrip(
  'zookeeper',
  createZookeeperRegistry({ connectString: zookeeperConnect, nodeId: 'pack-zk', basePath: '/pack', ttl: 10 }),
  apiService('pack-zk', 8082),
);

const consul = await startConsulDouble();
try {
  await roundTrip(
    'consul',
    createConsulRegistry({ nodeId: 'pack-consul', url: consul.url, ttl: 10 }),
    apiService('pack-consul', 8083),
  );
} finally {
  await consul.close();
}

// The bridge over a synthetic Docker engine: one running container publishing 80/tcp on 127.0.0.1:32768.
const containerId = 'a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90';
const network = {
  NetworkID: '9e7ec6c24b2823f0ded013d7a723eb781cfef0e3a6ae5642a0be5f0154e9f337',
  EndpointID: '28c8f356f302c674c30ef3f79628b47723a039b45538d7ddda39ff292c73b837',
  Gateway: '172.17.0.1',
  IPAddress: '172.17.0.2',
  IPPrefixLen: 16,
  IPv6Gateway: '',
  GlobalIPv6Address: '',
  GlobalIPv6PrefixLen: 0,
  MacAddress: '02:42:ac:11:00:02',
};
const summary: ContainerSummary = {
  Id: containerId,
  Names: ['/web'],
  Image: 'nginx:1.27',
  ImageID: 'sha256:276e45373c2e934ff55898989ff3dfbe9bdb812e91bc8a8f857b05f82acad785',
  Command: 'nginx -g "daemon off;"',
  Created: 1_764_000_000,
  Ports: [{ IP: '127.0.0.1', PrivatePort: 80, PublicPort: 32768, Type: 'tcp' }],
  Labels: { SERVICE_NAME: 'web', SERVICE_TAGS: 'http,edge' },
  State: 'running',
  Status: 'Up 2 minutes',
  HostConfig: { NetworkMode: 'default' },
  NetworkSettings: { Networks: { bridge: network } },
  Mounts: [],
};
const inspect: ContainerInspect = {
  Id: containerId,
  Created: '2026-11-25T00:39:06.205771181Z',
  Path: '/docker-entrypoint.sh',
  Args: ['nginx', '-g', 'daemon off;'],
  State: {
    Status: 'running',
    Running: true,
    Paused: false,
    Restarting: false,
    OOMKilled: false,
    Dead: false,
    Pid: 5818,
    ExitCode: 0,
    Error: '',
    StartedAt: '2026-11-25T00:39:06.891045721Z',
    FinishedAt: '0001-01-01T00:00:00Z',
  },
  Image: summary.ImageID,
  ResolvConfPath: `/var/lib/docker/containers/${containerId}/resolv.conf`,
  HostnamePath: `/var/lib/docker/containers/${containerId}/hostname`,
  HostsPath: `/var/lib/docker/containers/${containerId}/hosts`,
  LogPath: `/var/lib/docker/containers/${containerId}/${containerId}-json.log`,
  Name: '/web',
  RestartCount: 0,
  Driver: 'overlay2',
  Platform: 'linux',
  MountLabel: '',
  ProcessLabel: '',
  AppArmorProfile: 'docker-default',
  HostConfig: {
    NetworkMode: 'default',
    PortBindings: { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '32768' }] },
    RestartPolicy: { Name: 'no', MaximumRetryCount: 0 },
  },
  // @types/dockerode models the devicemapper driver's fields here.
  GraphDriver: { Name: 'overlay2', Data: { DeviceId: '', DeviceName: '', DeviceSize: '' } },
  Mounts: [],
  Config: {
    Hostname: containerId.slice(0, 12),
    Domainname: '',
    User: '',
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
    ExposedPorts: { '80/tcp': {} },
    Tty: false,
    OpenStdin: false,
    StdinOnce: false,
    Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'SERVICE_REGION=eu'],
    Cmd: ['nginx', '-g', 'daemon off;'],
    Image: 'nginx:1.27',
    Volumes: {},
    WorkingDir: '',
    Entrypoint: ['/docker-entrypoint.sh'],
    Labels: { SERVICE_NAME: 'web', SERVICE_TAGS: 'http,edge' },
  },
  NetworkSettings: {
    SandboxID: '5bef183b84c3fbb243796144bfc425f00faacaf5a8ed97a47c7798e63fdf8137',
    Ports: { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '32768' }] },
    SandboxKey: '/var/run/docker/netns/5bef183b84c3',
    Networks: { bridge: network },
  },
};

const streams = new Set<PassThrough>();
const docker: DockerApi = {
  getEvents(options) {
    const stream = new PassThrough();
    // A bounded query (`until`) ends at once with no events; the live stream stays open until aborted.
    if (options?.until !== undefined) stream.end();
    else {
      streams.add(stream);
      options?.abortSignal?.addEventListener('abort', () => stream.destroy(), { once: true });
    }
    return Promise.resolve(stream);
  },
  listContainers: () => Promise.resolve([summary]),
  getContainer(id) {
    return {
      inspect: () =>
        id === containerId
          ? Promise.resolve(inspect)
          : Promise.reject(Object.assign(new Error(`no such container: ${id}`), { statusCode: 404 })),
    };
  },
};

const bridged = createEtcdRegistry({
  hosts: [etcdEndpoint],
  nodeId: 'pack-bridge',
  prefix: '/pack-bridge',
  ttl: 30,
});
const bridge = createBridge({
  docker,
  registries: [bridged],
  nodeId: 'pack-bridge',
  internal: false,
  tags: [],
  explicit: false,
  resync: 0,
});
const follower = createEtcdFollower({ hosts: [etcdEndpoint], prefix: '/pack-bridge' });
try {
  await eventually('the bridge to register web in etcd', async () =>
    (await bridged.list()).some((e) => e.name === 'web' && e.id === 'pack-bridge:web:80'),
  );
  const status = bridge.status();
  check(status.inventoryComplete && status.services === 1, `bridge status ${JSON.stringify(status)}`);
  // The read side and the load-balancer planner, as `registrar lb` uses them.
  const update = await firstValueFrom(
    follower.follow('web').pipe(filter((u) => u.kind === 'instances' && u.instances.length > 0)),
  );
  check(update.kind === 'instances', 'the follower saw web');
  const plan = planSlots(
    'web',
    [{ name: 's1', id: 1, address: '127.0.0.1', port: 1, enabled: false }],
    update.instances,
  );
  const [instance] = update.instances;
  check(
    instance !== undefined &&
      plan.commands[0] === `set server web/s1 addr ${instance.address} port ${instance.port}`,
    `plan ${JSON.stringify(plan.commands)}`,
  );
  console.log('ok follower saw pack-bridge:web:80 and planned its HAProxy slot');
  // The same follower into a file, as `registrar render` uses it.
  const dir = mkdtempSync(join(tmpdir(), 'registrar-consumer-'));
  try {
    const template = join(dir, 'web.liquid');
    const out = join(dir, 'web.conf');
    writeFileSync(template, '{% for i in services.web %}server {{ i.endpoint }};{% endfor %}');
    await firstValueFrom(
      followIntoFiles({ follower, targets: [{ template, out }] }).pipe(
        filter((event) => event.kind === 'render' && event.outcome === 'written'),
      ),
    );
    const written = readFileSync(out, 'utf8');
    check(written === `server ${instance.address}:${instance.port};`, `rendered ${JSON.stringify(written)}`);
    console.log('ok render wrote the upstream of pack-bridge:web:80');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
} finally {
  await follower.close();
  // Without `deregister` the key stays until its lease expires, so the test can read it from etcd itself.
  await bridge.stop();
  for (const stream of streams) stream.destroy();
}
console.log('ok bridge registered pack-bridge:web:80 in etcd');
