// Podman (Debian's 4.3, rootful) through its Docker-compatible API, on every backend: a plain container is
// registered and removed, a health check gates it, stop and rename are followed, and a pod is registered once
// through its infra container. The bridge runs exactly as users run it: `--docker-host unix://<podman.sock>`.
import type { ExplainReport } from '@registrar/core/internal';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get } from '@registrar/test-servers/haproxy';
import { freePort, until } from '@registrar/core/testing';
import { BACKENDS, startBackend, type Backend } from '../harness/backends.js';
import { spawnBridge, type BridgeProcess } from '../harness/bridge.js';
import { runTestContainer, startPodman, type Podman } from '../harness/podman.js';

let podman: Podman;
const tag = randomBytes(3).toString('hex');
const node = `podman-${tag}`;
let serial = 0;

beforeAll(async () => {
  podman = await startPodman();
});

afterAll(async () => {
  await podman?.close();
});

/** `podman run -d` of the test image with the harness label; resolves with the container name. */
async function run(name: string, args: readonly string[], cmd?: readonly string[]) {
  await runTestContainer(podman, name, args, cmd);
  return name;
}

describe.each(BACKENDS)('%s', (backendName) => {
  let backend: Backend;
  let bridge: BridgeProcess;
  let metrics: string;
  const scope = `podman-${tag}-${backendName}`;
  /** A service name of this test's own (Consul has no prefix: the name is the scope there). */
  const service = () => `p${tag}${backendName.slice(0, 2)}${++serial}`;

  beforeAll(async () => {
    backend = await startBackend(backendName);
    metrics = `127.0.0.1:${await freePort()}`;
    bridge = spawnBridge([
      '--metrics-addr',
      metrics,
      '--docker-host',
      podman.host,
      '--ip',
      '127.0.0.1',
      '--node-id',
      node,
      '--ttl',
      '2',
      '--log-level',
      'debug',
      backend.uri(scope),
    ]);
    await bridge.waitForLog('first inventory', (l) => l.msg === 'docker inventory complete', 30_000);
  });

  afterAll(async () => {
    await bridge?.kill();
    await backend?.close();
  });

  const served = (svc: string) => backend.passing(scope, svc);
  const stored = (svc: string) => backend.ids(scope, svc);
  /** What the bridge says of a container (`registrar explain`'s source), or undefined while it knows none. */
  const explained = async (name: string) => {
    const res = await fetch(`http://${metrics}/debug/containers/${name}`);
    return res.ok ? ((await res.json()) as ExplainReport) : undefined;
  };

  it('registers `podman run -d -p 127.0.0.1::80 -e SERVICE_NAME=…` within a second and removes it on `podman rm -f`', async () => {
    const svc = service();
    const name = `web-${tag}-${serial}`;
    // --init: busybox httpd as PID 1 ignores SIGTERM, and `podman rm -f` would wait its 10 s stop timeout.
    await run(name, ['--init', '-p', '127.0.0.1::80', '-e', `SERVICE_NAME=${svc}`]);
    const started = Date.now();
    await until('registered', async () => (await served(svc)).length === 1, 20_000);
    const registeredMs = Date.now() - started;
    const port = Number((await podman.cli(['port', name, '80/tcp'])).trim().split(':').pop());
    expect(await backend.endpoints(scope, svc)).toEqual(
      new Map([[`${node}:${name}:80`, `127.0.0.1:${port}`]]),
    );
    // The address read back from the registry reaches the container.
    const answer = await get(`http://127.0.0.1:${port}/`);
    expect(answer).toMatchObject({ status: 200, body: 'registrar test\n' });

    await podman.cli(['rm', '-f', name]);
    const removedAt = Date.now();
    await until('removed', async () => (await stored(svc)).length === 0, 20_000);
    const removedMs = Date.now() - removedAt;
    console.log(
      `[measure] podman ${backendName}: registered ${registeredMs} ms after podman run; removed ${removedMs} ms after podman rm -f`,
    );
    expect(registeredMs).toBeLessThan(1000);
    expect(removedMs).toBeLessThan(1000);
  });

  it('a health check gates the container: served only while healthy (checks run by `podman healthcheck run`)', async () => {
    const svc = service();
    const name = `hc-${tag}-${serial}`;
    await run(name, [
      '--init',
      '-p',
      '127.0.0.1::80',
      '-e',
      `SERVICE_NAME=${svc}`,
      '--health-cmd',
      'cat /tmp/ok',
      '--health-retries',
      '1',
    ]);
    // `starting` (no check has run): etcd and ZooKeeper hold nothing; Consul holds it, not passing.
    await until('seen starting', async () => (await explained(name))?.container.health === 'starting');
    if (backendName === 'consul')
      await until('held, not passing', async () => (await stored(svc)).length === 1);
    expect(await served(svc)).toEqual([]);

    await podman.cli(['exec', name, 'touch', '/tmp/ok']);
    await podman.cli(['healthcheck', 'run', name]);
    await until('served once healthy', async () => (await served(svc)).length === 1);

    await podman.cli(['exec', name, 'rm', '/tmp/ok']);
    await podman.cli(['healthcheck', 'run', name]).catch(() => undefined); // exits 1: unhealthy
    await until('withdrawn once unhealthy', async () => (await served(svc)).length === 0).catch(
      async (error: unknown) => {
        console.error(
          JSON.stringify(await explained(name)),
          await (await fetch(`http://${metrics}/metrics`)).text(),
        );
        throw error;
      },
    );
    expect((await podman.docker.getContainer(name).inspect()).State.Health?.Status).toBe('unhealthy');
  });

  it('podman stop withdraws the container (at its exit: Podman announces no stop signal); podman start serves it again', async () => {
    const svc = service();
    const name = `stop-${tag}-${serial}`;
    await run(name, ['--init', '-p', '127.0.0.1::80', '-e', `SERVICE_NAME=${svc}`]);
    await until('served', async () => (await served(svc)).length === 1);
    await podman.cli(['stop', name]);
    await until('withdrawn', async () => (await stored(svc)).length === 0);
    await podman.cli(['start', name]);
    await until('served again', async () => (await served(svc)).length === 1);
  });

  it("--internal: registered at the container's address on Podman's network, where it answers", async () => {
    const svc = service();
    const name = `int-${tag}-${serial}`;
    const internal = spawnBridge([
      '--docker-host',
      podman.host,
      '--internal',
      '--node-id',
      `${node}-internal`,
      '--ttl',
      '2',
      backend.uri(`${scope}-internal`),
    ]);
    try {
      await run(name, ['--init', '--expose', '80', '-e', `SERVICE_NAME=${svc}`]);
      const [network] = Object.values(
        (await podman.docker.getContainer(name).inspect()).NetworkSettings.Networks,
      );
      const address = network!.IPAddress;
      const id = `${node}-internal:${name}:80`;
      await until(
        'registered at the container address',
        async () => (await backend.endpoints(`${scope}-internal`, svc)).get(id) === `${address}:80`,
      );
      expect(await get(`http://${address}:80/`)).toMatchObject({ status: 200, body: 'registrar test\n' });
    } finally {
      await internal.kill();
    }
  });

  it('podman rename moves the entry to the new name', async () => {
    const svc = service();
    const name = `old-${tag}-${serial}`;
    const renamed = `new-${tag}-${serial}`;
    await run(name, ['--init', '-p', '127.0.0.1::80', '-e', `SERVICE_NAME=${svc}`]);
    await until('served', async () => (await served(svc)).join() === `${node}:${name}:80`);
    await podman.cli(['rename', name, renamed]);
    await until('renamed', async () => (await stored(svc)).join() === `${node}:${renamed}:80`);
  });

  it("a pod with two containers is registered once, through its infra container, with the pod's labels", async () => {
    const svc = service();
    const pod = `pod-${tag}-${serial}`;
    await podman.cli([
      'pod',
      'create',
      '--name',
      pod,
      '--label',
      podman.label,
      '--label',
      `SERVICE_NAME=${svc}`,
      '-p',
      '127.0.0.1::80',
    ]);
    await run(`${pod}-web`, ['--pod', pod, '--init', '-e', 'SERVICE_NAME=member']);
    await run(`${pod}-side`, ['--pod', pod, '--init'], ['sleep', '3600']);
    const infra = (await podman.cli(['pod', 'inspect', pod, '--format', '{{.InfraContainerID}}'])).trim();
    const infraName = (await podman.docker.getContainer(infra).inspect()).Name.replace(/^\//, '');
    await until('the pod served', async () => (await served(svc)).length === 1);
    const endpoints = await backend.endpoints(scope, svc);
    expect([...endpoints.keys()]).toEqual([`${node}:${infraName}:80`]);
    // The members register nothing of their own, not even under the member's own SERVICE_NAME.
    expect(await stored('member')).toEqual([]);
    const answer = await get(`http://${[...endpoints.values()][0]}/`);
    expect(answer).toMatchObject({ status: 200, body: 'registrar test\n' });

    await podman.cli(['pod', 'rm', '-f', pod]);
    await until('withdrawn with the pod', async () => (await stored(svc)).length === 0);
  });
});
