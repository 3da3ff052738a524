// deploy/compose/docker-compose.prod.yml on the locally built images (test/compose/build-images.sh): registrar
// behind the read-only socket proxy registers a container in a real etcd (test/deploy/prod-registry.yml adds
// one on the compose network), runs read-only, without capabilities, with no-new-privileges and without the
// socket, and `down` leaves nothing behind.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Etcd3 } from 'etcd3';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runContainer, uniqueName } from '../harness/containers.js';
import { docker } from '../harness/docker.js';
import { until } from '../harness/net.js';
import { buildImages, createStack, dockerGid, leftovers, type Stack } from '../compose/compose.js';

const FILES = ['deploy/compose/docker-compose.prod.yml', 'test/deploy/prod-registry.yml'];
const ENV = {
  REGISTRAR_URI: 'etcd://etcd:2379/services',
  REGISTRAR_IP: '127.0.0.1',
  REGISTRAR_IMAGE: 'registrar:local',
  SOCKET_PROXY_IMAGE: 'registrar-local/servers:bookworm',
  REGISTRAR_METRICS_PORT: '',
};

const execFileAsync = promisify(execFile);

/** `docker exec` to completion: exit code and output, whatever the code. */
async function dockerExec(id: string, cmd: string[]) {
  try {
    const { stdout, stderr } = await execFileAsync('docker', ['exec', id, ...cmd]);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** One line of /proc/1/status (the container's PID 1, tini), e.g. `CapEff`. */
const procStatus = (status: string, key: string) => new RegExp(`^${key}:\\s*(.*)$`, 'm').exec(status)?.[1];

let stack: Stack | undefined;
let demo: Docker.Container | undefined;

beforeAll(async () => {
  await buildImages();
}, 1_200_000);

afterAll(async () => {
  await demo?.remove({ force: true }).catch(() => undefined);
  await stack?.compose('down', '-v', '--remove-orphans', '-t', '2').catch(() => undefined);
}, 120_000);

describe('deploy/compose/docker-compose.prod.yml', { timeout: 240_000, shuffle: false }, () => {
  it.each(['DOCKER_GID', 'REGISTRAR_URI', 'REGISTRAR_IP'])('refuses to start without %s', async (name) => {
    const unset = createStack({ files: FILES, env: { ...ENV, [name]: '' } });
    const failure = await unset.compose('config', '-q').then(
      () => undefined,
      (error: Error & { stderr?: string }) => error.stderr ?? error.message,
    );
    expect(failure).toContain(`set ${name} to`);
  });

  it('runs registrar behind the read-only socket proxy, hardened, and registers a container in etcd', async () => {
    stack = createStack({ files: FILES, env: ENV });
    const s = stack;
    await s.compose('up', '-d');
    await until(
      'socket-proxy, registrar and etcd healthy',
      async () => {
        const all = await Promise.all(
          ['socket-proxy', 'registrar', 'etcd'].map((name) => s.containers(name)),
        );
        return all.every((list) => list.length === 1 && list[0]!.health === 'healthy');
      },
      120_000,
    );
    const [bridge] = await s.containers('registrar');
    const [proxy] = await s.containers('socket-proxy');
    const registrar = await docker.getContainer(bridge!.id).inspect();
    const socketProxy = await docker.getContainer(proxy!.id).inspect();

    // Hardened, as configured ...
    for (const c of [registrar, socketProxy]) {
      expect(c.HostConfig.ReadonlyRootfs, c.Name).toBe(true);
      expect(c.HostConfig.CapDrop, c.Name).toEqual(['ALL']);
      expect(c.HostConfig.SecurityOpt, c.Name).toEqual(['no-new-privileges:true']);
      expect(c.HostConfig.RestartPolicy?.Name, c.Name).toBe('unless-stopped');
    }
    // ... and in effect: no capabilities, no_new_privs, and a file system that refuses writes.
    for (const c of [registrar, socketProxy]) {
      const status = (await dockerExec(c.Id, ['cat', '/proc/1/status'])).stdout;
      expect(procStatus(status, 'CapEff'), c.Name).toBe('0000000000000000');
      expect(procStatus(status, 'NoNewPrivs'), c.Name).toBe('1');
    }
    const write = await dockerExec(registrar.Id, ['touch', '/app/written']);
    expect(write.code).not.toBe(0);
    expect(write.stderr).toContain('Read-only file system');

    // Only the proxy holds the socket, as an unprivileged user with the socket's group.
    const socketMounts = (c: Docker.ContainerInspectInfo) =>
      c.Mounts.filter((m) => m.Destination === '/var/run/docker.sock').map((m) => m.RW);
    expect(socketMounts(registrar)).toEqual([]);
    expect(registrar.HostConfig.GroupAdd ?? []).toEqual([]);
    expect(registrar.Config.User).not.toMatch(/^(|0|root)(:|$)/);
    expect(socketMounts(socketProxy)).toEqual([false]);
    expect(socketProxy.HostConfig.GroupAdd).toEqual([dockerGid()]);
    const proxyId = await dockerExec(socketProxy.Id, ['id', '-u']);
    expect(proxyId.stdout.trim()).not.toBe('0');
    // The proxy sits on an internal network only; registrar reads Docker through it and cannot write.
    const proxyNetworks = Object.keys(socketProxy.NetworkSettings.Networks);
    expect(proxyNetworks).toEqual([`${s.project}_docker-api`]);
    expect((await docker.getNetwork(proxyNetworks[0]!).inspect()).Internal).toBe(true);
    const status = (method: string, path: string) =>
      dockerExec(registrar.Id, [
        'node',
        '-e',
        `fetch('http://socket-proxy:2375${path}', { method: '${method}' }).then((r) => console.log(r.status))`,
      ]).then((r) => r.stdout.trim());
    expect(await status('GET', '/info')).toBe('200');
    expect(await status('POST', '/containers/create')).toBe('403');

    // A container started now is registered (events through the proxy), and removed once it is gone.
    const name = uniqueName('prod-demo');
    demo = await runContainer({ name, env: { SERVICE_NAME: name }, publish: ['80/tcp'] });
    const hostPort = Number((await demo.inspect()).NetworkSettings.Ports['80/tcp']?.[0]?.HostPort);
    const node = (await docker.info()) as { Name: string };
    const etcd = new Etcd3({ hosts: `http://${await s.ip('etcd')}:2379` });
    try {
      const entries = async () =>
        Object.values(await etcd.getAll().prefix(`/services/${name}/`).strings()).map(
          (v) => JSON.parse(v) as { port: number; node: string; container: { name: string } },
        );
      await until(
        'the demo container registered in etcd',
        async () => (await entries()).length === 1,
        30_000,
      );
      expect(await entries()).toEqual([
        expect.objectContaining({
          port: hostPort,
          node: node.Name,
          container: expect.objectContaining({ name }),
        }),
      ]);
      await demo.remove({ force: true });
      demo = undefined;
      await until('the demo container deregistered', async () => (await entries()).length === 0, 30_000);
    } finally {
      etcd.close();
    }

    await s.compose('down', '-v', '--remove-orphans', '-t', '2');
    stack = undefined;
    expect(await leftovers(s.project)).toEqual({ containers: [], networks: [], volumes: [] });
  });
});
