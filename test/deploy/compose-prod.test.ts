// deploy/compose/docker-compose.prod.yml on the locally built images (test/compose/build-images.sh): registrar
// behind the read-only socket proxy registers a container in a real etcd (test/deploy/prod-registry.yml adds
// one on the compose network), runs read-only, without capabilities, with no-new-privileges and without the
// socket, and `down` leaves nothing behind. The image is built with the production recipe's own `docker build`
// line (docs/deployment.md; from the offline Node base) and the stack comes up with the recipe's compose command.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Etcd3 } from 'etcd3';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '@registrar/core/testing';
import { runContainer, uniqueName } from '../harness/containers.js';
import { docker } from '../harness/docker.js';
import { buildImages, createStack, dockerGid, leftovers, type Stack } from '../compose/compose.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PROD = 'deploy/compose/docker-compose.prod.yml';
const FILES = [PROD, 'test/deploy/prod-registry.yml'];

/** The production recipe's command lines, as docs/deployment.md gives them. */
const RECIPE = (
  /<!-{2} recipe: production[^>]*-{2}>\n```sh\n([\s\S]*?)```/.exec(
    readFileSync(`${ROOT}/docs/deployment.md`, 'utf8'),
  )?.[1] ?? ''
)
  .split('\n')
  .filter((line) => line.trim() !== '' && !line.trim().startsWith('#'));
/** The recipe's image, built under a name of this test's own (the engine is shared): removed afterwards. */
const RECIPE_IMAGE = `registrar-recipe-test:${randomBytes(3).toString('hex')}`;

const ENV = {
  REGISTRAR_URI: 'etcd://etcd:2379/services',
  REGISTRAR_IP: '127.0.0.1',
  REGISTRAR_IMAGE: RECIPE_IMAGE,
  SOCKET_PROXY_IMAGE: 'registrar-local/servers:bookworm',
  REGISTRAR_METRICS_PORT: '',
};

const execFileAsync = promisify(execFile);
/** What the recipe's compose command does (checked against it below). */
const UP = ['up', '-d'];

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
  // The recipe's build line (checked below), from the offline Node base build-images.sh made, under this
  // test's own image name; the stack runs this image.
  const build = RECIPE[0]?.split(/\s+/) ?? [];
  expect(build.slice(0, 3)).toEqual(['docker', 'build', '-t']);
  const args = [...build.slice(1, 3), RECIPE_IMAGE, ...build.slice(4)];
  await execFileAsync('docker', [...args, '--quiet', '--build-arg', 'BASE_IMAGE=registrar-local/node:24'], {
    cwd: ROOT,
    maxBuffer: 64 * 1024 * 1024,
  });
}, 1_200_000);

afterAll(async () => {
  await docker
    .getImage(RECIPE_IMAGE)
    .remove({ force: true })
    .catch(() => undefined);
  await demo?.remove({ force: true }).catch(() => undefined);
  await stack?.compose('down', '-v', '--remove-orphans', '-t', '2').catch(() => undefined);
}, 120_000);

describe('deploy/compose/docker-compose.prod.yml', { timeout: 240_000, shuffle: false }, () => {
  it('the production recipe in docs/deployment.md builds the image the compose file runs and brings it up', () => {
    expect(RECIPE).toHaveLength(3);
    const [build = '', exported = '', up = ''] = RECIPE;
    // 1. The build line: the image the compose file runs by default.
    const tag = /^docker build -t (\S+) \.$/.exec(build)?.[1];
    expect(tag, build).toBeDefined();
    const image = /\$\{REGISTRAR_IMAGE:-([^}]+)\}/.exec(readFileSync(`${ROOT}/${PROD}`, 'utf8'))?.[1];
    expect(image).toBe(tag!.includes(':') ? tag : `${tag}:latest`);
    // beforeAll built it with this line (from the offline Node base, under this test's own name).
    // 2. The variables the compose file requires, and nothing else.
    expect([...exported.matchAll(/\b([A-Z_]+)=/g)].map((m) => m[1]).sort()).toEqual([
      'DOCKER_GID',
      'REGISTRAR_IP',
      'REGISTRAR_URI',
    ]);
    // 3. The compose command: this file, `up -d` (run by the next test, under a project name of its own).
    const args = up.split(/\s+/);
    expect(args.slice(0, 2)).toEqual(['docker', 'compose']);
    const files = args.flatMap((arg, i) => (args[i - 1] === '-f' ? [arg] : []));
    expect(files).toEqual([PROD]);
    expect(args.slice(-2)).toEqual(UP);
  });

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
    await s.compose(...UP);
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
