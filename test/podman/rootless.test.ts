// Rootless Podman: `podman system service` run by a test user with subordinate ids (harness/podman.ts creates
// it), with a store of its own. Container addresses live in the user's network namespace, so published ports
// are registered at the binding's host address or --ip, and --internal is refused with a clear line.
import { randomBytes } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEtcd, type EtcdServer } from '@registrar/test-servers/etcd';
import { get } from '@registrar/test-servers/haproxy';
import { until } from '@registrar/core/testing';
import { runCli, spawnBridge, type BridgeProcess } from '../harness/bridge.js';
import { PODMAN_TEST_IMAGE, runTestContainer, startPodman, type Podman } from '../harness/podman.js';

/**
 * Whether this machine runs rootless Podman at all, and with published ports (slirp4netns, which needs
 * /dev/net/tun): the exact error when it does not, for the skip message.
 */
async function probe(): Promise<{ podman?: Podman; rootless?: string; publish?: string }> {
  let podman: Podman;
  try {
    podman = await startPodman({ rootless: true });
  } catch (error) {
    return { rootless: (error as Error).message };
  }
  const attempt = async (args: string[]) => {
    try {
      await podman.cli(['run', '--rm', ...args, PODMAN_TEST_IMAGE, 'true']);
      return undefined;
    } catch (error) {
      return (error as Error).message.replace(/\s+/g, ' ').slice(0, 400);
    }
  };
  const rootless = await attempt(['--network', 'host']);
  if (rootless !== undefined) {
    await podman.close();
    return { rootless };
  }
  return {
    podman,
    ...(await attempt(['-p', '127.0.0.1::80']).then((publish) => (publish ? { publish } : {}))),
  };
}

const probed = await probe();
const podman = probed.podman;
const tag = randomBytes(3).toString('hex');
const node = `rootless-${tag}`;
let etcd: EtcdServer;
let client: Etcd3;
let bridge: BridgeProcess;
const scope = `rootless-${tag}`;

describe.skipIf(podman === undefined)(
  `rootless Podman${podman === undefined ? ` (cannot run on this machine: ${probed.rootless})` : ''}`,
  () => {
    const p = podman!;
    beforeAll(async () => {
      etcd = await startEtcd();
      client = new Etcd3({ hosts: etcd.endpoint });
      bridge = spawnBridge([
        '--docker-host',
        p.host,
        '--ip',
        '127.0.0.1',
        '--node-id',
        node,
        '--ttl',
        '2',
        uri(),
      ]);
      await bridge.waitForLog('inventory', (l) => l.msg === 'docker inventory complete', 30_000);
    });
    afterAll(async () => {
      await bridge?.kill();
      client?.close();
      await Promise.all([p.close(), etcd?.close()]);
    });

    const uri = () => `etcd://${etcd.endpoint.replace(/^http:\/\//, '')}/${scope}`;
    const sorted = (record: Record<string, string>) => JSON.stringify(Object.entries(record).sort());
    const endpoints = async (service: string) =>
      Object.fromEntries(
        Object.entries(await client.getAll().prefix(`/${scope}/${service}/`).strings()).map(
          ([key, value]) => {
            const record = JSON.parse(value) as { address: string; port: number };
            return [key.split('/').pop()!, `${record.address}:${record.port}`];
          },
        ),
      );

    it('the engine is recognised as rootless Podman, with an engine ID of its own store', async () => {
      // Named once the engine answered (the start line comes before anything can wait).
      const line = await bridge.waitForLog('the engine named', (l) => l.msg === 'bridge starting');
      expect(line.engine).toMatch(/^Podman 4\.\d+\.\d+ \(rootless\)$/);
    });

    it('--internal is refused with one line saying what to do instead (exit 2)', async () => {
      const { code, stderr } = await runCli([
        '--docker-host',
        p.host,
        '--internal',
        '--node-id',
        node,
        uri(),
      ]);
      expect(code).toBe(2);
      expect(stderr).toEqual([
        expect.stringMatching(
          /^registrar: --internal cannot be served by rootless Podman 4\.\d+\.\d+: .* publish the ports \(-p\) and run registrar with --ip <this host's address> instead$/,
        ),
      ]);
    });

    it.skipIf(probed.publish !== undefined)(
      `published ports (slirp4netns) are registered at the binding's host address and at --ip${probed.publish ? ` (cannot run on this machine: ${probed.publish})` : ''}`,
      async () => {
        const service = `s${tag}`;
        const local = `local-${tag}`;
        const any = `any-${tag}`;
        const common = ['--init', '-e', `SERVICE_NAME=${service}`];
        await runTestContainer(p, local, ['-p', '127.0.0.1::80', ...common]);
        await runTestContainer(p, any, ['-p', '80', ...common]);
        const portOf = async (name: string) =>
          Number((await p.cli(['port', name, '80/tcp'])).trim().split(':').pop());
        const expected = {
          [`${node}:${local}:80`]: `127.0.0.1:${await portOf(local)}`,
          // Published on all interfaces (HostIp ""): advertised at --ip.
          [`${node}:${any}:80`]: `127.0.0.1:${await portOf(any)}`,
        };
        await until('registered', async () => sorted(await endpoints(service)) === sorted(expected));
        for (const endpoint of Object.values(expected))
          expect(await get(`http://${endpoint}/`)).toMatchObject({ status: 200, body: 'registrar test\n' });
        await p.cli(['rm', '-f', local, any]);
        await until('removed', async () => Object.keys(await endpoints(service)).length === 0);
      },
    );
  },
);
