// Podman's API service killed and started again under a running bridge, and the bridge itself restarted on
// Podman: both must converge without help. (HEAVY in vitest.config.ts: it kills and restarts services.)
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEtcd, type EtcdServer } from '@registrar/test-servers/etcd';
import { until } from '@registrar/core/testing';
import { spawnBridge, type BridgeProcess } from '../harness/bridge.js';
import { runTestContainer, startPodman, type Podman } from '../harness/podman.js';
import { Etcd3 } from 'etcd3';

let podman: Podman;
let etcd: EtcdServer;
let client: Etcd3;
const tag = randomBytes(3).toString('hex');

beforeAll(async () => {
  [podman, etcd] = await Promise.all([startPodman(), startEtcd()]);
  client = new Etcd3({ hosts: etcd.endpoint });
});

afterAll(async () => {
  client?.close();
  await Promise.all([podman?.close(), etcd?.close()]);
});

const uri = (scope: string) => `etcd://${etcd.endpoint.replace(/^http:\/\//, '')}/${scope}`;
/** The ids stored under `/<scope>/<service>/`. */
const ids = async (scope: string, service: string) =>
  (await client.getAll().prefix(`/${scope}/${service}/`).keys()).map((k) => k.split('/').pop()!).sort();

async function run(name: string, service: string) {
  await runTestContainer(podman, name, ['--init', '-p', '127.0.0.1::80', '-e', `SERVICE_NAME=${service}`]);
}

describe('podman system service killed and restarted', () => {
  it('the bridge reconnects, lists again, and converges on what changed while the API was down', async () => {
    const scope = `restart-${tag}`;
    const service = `r${tag}`;
    const node = `podman-${tag}`;
    const bridge = spawnBridge([
      '--docker-host',
      podman.host,
      '--ip',
      '127.0.0.1',
      '--node-id',
      node,
      '--ttl',
      '2',
      uri(scope),
    ]);
    try {
      const before = `before-${tag}`;
      await run(before, service);
      await until('registered', async () => (await ids(scope, service)).join() === `${node}:${before}:80`);

      await podman.killService();
      await bridge.waitForLog('the lost stream noticed', (l) =>
        /docker event stream .*reconnecting/.test(l.msg),
      );
      // The CLI works on the store without the API service; the bridge cannot see any of this yet.
      const during = `during-${tag}`;
      await run(during, service);
      await podman.cli(['rm', '-f', before]);
      expect(await ids(scope, service)).toEqual([`${node}:${before}:80`]);

      await podman.startService();
      await until(
        'converged after the restart',
        async () => (await ids(scope, service)).join() === `${node}:${during}:80`,
        30_000,
      );
      await bridge.waitForLog('reconnected', (l) => l.msg === 'docker event stream connected again');
      // And it follows events again.
      await podman.cli(['rm', '-f', during]);
      await until('removed', async () => (await ids(scope, service)).length === 0);
    } finally {
      await bridge.kill();
    }
  });

  it("a restarted bridge takes its entries back: Podman's /info answers a new random ID per call, the entries' engine ID is stable", async () => {
    const scope = `adopt-${tag}`;
    const service = `a${tag}`;
    const node = `podman-a-${tag}`;
    const name = `adopt-${tag}`;
    await run(name, service);
    const args = [
      '--docker-host',
      podman.host,
      '--ip',
      '127.0.0.1',
      '--node-id',
      node,
      '--ttl',
      '10',
      uri(scope),
    ];
    const first = spawnBridge(args);
    let second: BridgeProcess | undefined;
    try {
      await until('registered', async () => (await ids(scope, service)).join() === `${node}:${name}:80`);
      const [stored] = Object.values(await client.getAll().prefix(`/${scope}/${service}/`).strings());
      const engine = (JSON.parse(stored!) as { engine?: string }).engine;
      expect(engine).toMatch(/^podman-[0-9a-f]{32}$/);
      await first.kill('SIGKILL');

      // Within the TTL, the entry is still there when the second bridge lists it: its own, not another engine's.
      second = spawnBridge(args);
      await second.waitForLog('inventory', (l) => l.msg === 'docker inventory complete');
      await podman.cli(['rm', '-f', name]);
      await until('removed by the second bridge', async () => (await ids(scope, service)).length === 0);
      expect(second.logs.filter((l) => l.level >= 50 || /another Docker engine/.test(l.msg))).toEqual([]);
    } finally {
      await Promise.all([first.kill(), second?.kill()]);
    }
  });
});
