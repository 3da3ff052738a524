// IPv6 dual stack, on every backend: a Docker engine of the test's own (a network namespace) with a
// dual-stack user-defined network (IPv4 /24 and a ULA /64). A container there is registered with both its
// addresses; a client in the engine's namespace reads the IPv6 one back from the registry and reaches the
// container over IPv6. The same for a port published on both wildcards with one --ip per family.
// (HEAVY in vitest.config.ts: it runs a Docker engine of its own.)
import type Docker from 'dockerode';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '@registrar/core/testing';
import { BACKENDS, startBackend, type Backend } from '../harness/backends.js';
import { spawnBridge, type BridgeProcess } from '../harness/bridge.js';
import { TEST_IMAGE } from '../harness/docker.js';
import { startEngine, type Engine } from '../harness/engine.js';

let engine: Engine;
const tag = randomBytes(3).toString('hex');

beforeAll(async () => {
  engine = await startEngine({ ipv6: true });
});

afterAll(async () => {
  await engine?.close();
});

/** GET `url` from inside the engine's namespace (where its networks are), with the body as the answer. */
const fetchInEngine = (url: string) =>
  engine.inNamespace(process.execPath, [
    '-e',
    'fetch(process.argv[1], { signal: AbortSignal.timeout(5000) }).then(async (r) => process.stdout.write(`${r.status} ${await r.text()}`))',
    url,
  ]);

async function run(name: string, service: string, publish: boolean): Promise<Docker.Container> {
  const container = await engine.docker.createContainer({
    name,
    Image: TEST_IMAGE,
    Cmd: ['httpd', '-f', '-p', '80', '-h', '/www'],
    Env: [`SERVICE_NAME=${service}`],
    ExposedPorts: { '80/tcp': {} },
    HostConfig: {
      NetworkMode: engine.network,
      // All interfaces: Docker binds 0.0.0.0 and :: (a pair of host ports).
      ...(publish && { PortBindings: { '80/tcp': [{ HostIp: '', HostPort: '' }] } }),
    },
  });
  await container.start();
  return container;
}

describe.each(BACKENDS)('%s', (backendName) => {
  let backend: Backend;
  const bridges: BridgeProcess[] = [];
  const scope = `dual-${tag}-${backendName}`;

  beforeAll(async () => {
    backend = await startBackend(backendName);
  });
  afterAll(async () => {
    await Promise.all(bridges.map((b) => b.kill()));
    await backend?.close();
  });

  const bridge = (node: string, args: string[]) => {
    const b = spawnBridge([
      '--docker-host',
      engine.host,
      '--node-id',
      node,
      '--ttl',
      '2',
      ...args,
      backend.uri(scope),
    ]);
    bridges.push(b);
    return b;
  };

  it('--internal on a dual-stack network: both addresses registered, the IPv6 one reached over IPv6', async () => {
    const service = `d${tag}${backendName.slice(0, 2)}i`;
    const node = `dual-i-${tag}`;
    bridge(node, ['--internal', '--network', engine.network]);
    const name = `dual-${tag}-${backendName}`;
    const container = await run(name, service, false);
    const net = (await container.inspect()).NetworkSettings.Networks[engine.network]!;
    const id = `${node}:${name}:80`;
    await until(
      'both families registered',
      async () => (await backend.families(scope, service)).get(id)?.ipv6 !== undefined,
    );
    const families = (await backend.families(scope, service)).get(id)!;
    expect(families).toEqual({ ipv4: `${net.IPAddress}:80`, ipv6: `[${net.GlobalIPv6Address}]:80` });
    // Today's readers keep their one address: the IPv4 one.
    expect(await backend.endpoints(scope, service)).toEqual(new Map([[id, `${net.IPAddress}:80`]]));
    // A client reads the IPv6 endpoint back from the registry and reaches the container with it.
    await until(
      'reached over IPv6',
      async () => (await fetchInEngine(`http://${families.ipv6!}/`)) === '200 registrar test\n',
    );
    expect(await fetchInEngine(`http://${families.ipv4!}/`)).toBe('200 registrar test\n');
    await container.remove({ force: true });
    await until('removed', async () => (await backend.ids(scope, service)).length === 0);
  });

  it('a port published on 0.0.0.0 and :: with --ip 127.0.0.1 --ip ::1: one service at both, reached over IPv6', async () => {
    const service = `d${tag}${backendName.slice(0, 2)}p`;
    const node = `dual-p-${tag}`;
    bridge(node, ['--ip', '127.0.0.1', '--ip', '::1']);
    const name = `pub-${tag}-${backendName}`;
    const container = await run(name, service, true);
    const ports = (await container.inspect()).NetworkSettings.Ports['80/tcp']!;
    const v4 = ports.find((b) => b.HostIp === '0.0.0.0')!.HostPort;
    const v6 = ports.find((b) => b.HostIp === '::')!.HostPort;
    const id = `${node}:${name}:80`;
    await until(
      'both families registered',
      async () => (await backend.families(scope, service)).get(id)?.ipv6 !== undefined,
    );
    expect((await backend.families(scope, service)).get(id)).toEqual({
      ipv4: `127.0.0.1:${v4}`,
      ipv6: `[::1]:${v6}`,
    });
    const ipv6 = (await backend.families(scope, service)).get(id)!.ipv6!;
    await until(
      'reached over IPv6',
      async () => (await fetchInEngine(`http://${ipv6}/`)) === '200 registrar test\n',
    );
    await container.remove({ force: true });
    await until('removed', async () => (await backend.ids(scope, service)).length === 0);
  });
});
