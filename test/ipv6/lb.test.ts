// IPv6 entries end to end, on every backend: a container published on all interfaces, registered with
// `--ip ::1` (its `::` binding), is followed by `registrar lb` into a real HAProxy that sends requests to it
// over IPv6; `registrar explain` shows its endpoint bracketed.
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { get, startHaproxy, type HaproxyServer } from '@registrar/test-servers/haproxy';
import { freePort, until } from '@registrar/core/testing';
import { BACKENDS, startBackend, type Backend } from '../harness/backends.js';
import { runCli, spawnBridge, type BridgeProcess } from '../harness/bridge.js';
import { runContainer, TEST_LABEL, uniqueName } from '../harness/containers.js';
import { removeLabelled } from '../harness/docker.js';

const tag = randomBytes(3).toString('hex');
const label = `${TEST_LABEL}.ipv6=${tag}`;

describe.each(BACKENDS)('%s', (backendName) => {
  let backend: Backend;
  let haproxy: HaproxyServer;
  const processes: BridgeProcess[] = [];
  const scope = `v6-${tag}-${backendName}`;

  beforeAll(async () => {
    [backend, haproxy] = await Promise.all([
      startBackend(backendName),
      startHaproxy({ backends: { web: 2 } }),
    ]);
  });
  afterEach(async () => {
    await Promise.all(processes.splice(0).map((p) => p.kill()));
    await removeLabelled(label);
  });
  afterAll(async () => {
    await backend?.close();
    await haproxy?.stop();
  });

  it('an entry at [::1]:port is followed into HAProxy, which reaches it over IPv6; explain brackets it', async () => {
    const service = `v${tag}${backendName.slice(0, 2)}`;
    const node = `v6-${tag}`;
    const metrics = `127.0.0.1:${await freePort()}`;
    processes.push(
      spawnBridge([
        '--ip',
        '::1',
        '--node-id',
        node,
        '--ttl',
        '2',
        '--metrics-addr',
        metrics,
        backend.uri(scope),
      ]),
    );
    const name = uniqueName('v6');
    const [key, value] = label.split('=') as [string, string];
    // HostIp "": Docker publishes 0.0.0.0 and :: (docker-proxy listens on both).
    const container = await runContainer({
      name,
      publish: ['80/tcp'],
      publishIp: '',
      env: { SERVICE_NAME: service },
      labels: { [key]: value },
    });
    const v6 = (await container.inspect()).NetworkSettings.Ports['80/tcp']!.find((b) => b.HostIp === '::')!;
    const endpoint = `[::1]:${v6.HostPort}`;
    await until('registered at ::1', async () => {
      const endpoints = await backend.endpoints(scope, service);
      return endpoints.get(`${node}:${name}:80`) === `::1:${v6.HostPort}`;
    });

    processes.push(
      spawnBridge([
        'lb',
        '--haproxy',
        haproxy.socket,
        '--service',
        `${service}=web`,
        '--check-interval',
        '0.5',
        backend.uri(scope),
      ]),
    );
    await until('HAProxy serving the IPv6 entry', async () => {
      const answer = await get(haproxy.url('web'));
      return 'body' in answer && answer.status === 200 && answer.body === 'registrar test\n';
    });

    const { code, stdout } = await runCli(['explain', name, '--metrics-addr', metrics]);
    expect(code).toBe(0);
    expect(stdout.join('\n')).toContain(`${service} at ${endpoint} (id ${node}:${name}:80)`);
  });
});
