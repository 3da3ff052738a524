// --state-dir, end to end: a bridge restarted within the TTL resumes its ZooKeeper session or etcd lease, so
// its entries are neither deleted nor written again (ZooKeeper: czxid, mzxid and ephemeralOwner unchanged;
// etcd: create and mod revision and lease unchanged).
import { randomBytes } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import type zookeeper from 'node-zookeeper-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { until } from '@registrar/core/testing';
import { removeDir, tempDir } from '@registrar/test-servers/process';
import { startEtcd, type EtcdServer } from '@registrar/test-servers/etcd';
import { connectedClient, startZookeeper, type ZookeeperServer } from '@registrar/test-servers/zookeeper';
import { spawnBridge, type BridgeProcess } from '../harness/bridge.js';
import { runContainer, TEST_LABEL, uniqueName } from '../harness/containers.js';
import { removeLabelled } from '../harness/docker.js';

let zk: ZookeeperServer;
let client: zookeeper.Client;
let etcd: EtcdServer;
let etcdClient: Etcd3;
const bridges: BridgeProcess[] = [];
const dirs: string[] = [];
const runLabel = `${TEST_LABEL}.run=${randomBytes(4).toString('hex')}`;
const [labelKey, labelValue] = runLabel.split('=') as [string, string];

beforeAll(async () => {
  [zk, etcd] = await Promise.all([startZookeeper(), startEtcd()]);
  etcdClient = new Etcd3({ hosts: etcd.endpoint });
  client = await connectedClient(zk.connectString);
});

afterEach(async () => {
  await Promise.all(bridges.splice(0).map((b) => b.kill()));
  await removeLabelled(runLabel);
  for (const dir of dirs.splice(0)) removeDir(dir);
});

afterAll(async () => {
  client?.close();
  etcdClient?.close();
  await Promise.all([zk?.close(), etcd?.close()]);
});

/** czxid/mzxid/ephemeralOwner of a node, or undefined when it does not exist. */
const zkStamp = (path: string) =>
  new Promise<string | undefined>((resolve, reject) =>
    client.exists(path, (error, stat) => {
      if (error) reject(new Error(String(error)));
      else if (!stat) resolve(undefined);
      else
        resolve(
          `${stat.czxid.toString('hex')}/${stat.mzxid.toString('hex')}/${stat.ephemeralOwner.toString('hex')}`,
        );
    }),
  );

/** create/mod revision and lease of a key, or undefined when it does not exist. */
async function etcdStamp(key: string): Promise<string | undefined> {
  const kv = (await etcdClient.get(key).exec()).kvs[0];
  return kv && `${kv.create_revision}/${kv.mod_revision}/${kv.lease}`;
}

type Backend = 'zookeeper' | 'etcd';
const stamps: Record<Backend, (path: string) => Promise<string | undefined>> = {
  zookeeper: zkStamp,
  etcd: etcdStamp,
};
const resumedLog: Record<Backend, string> = {
  zookeeper: 'zookeeper session resumed from the state file',
  etcd: 'etcd lease resumed from the state file',
};
const lostLog: Record<Backend, string> = { zookeeper: 'zookeeper session lost', etcd: 'etcd lease lost' };

function scenario(backend: Backend, ttl: number, stateDir: string | undefined) {
  const tag = randomBytes(3).toString('hex');
  const node = `st-${tag}`;
  const service = `state-${tag}`;
  const uri =
    backend === 'zookeeper'
      ? `zookeeper://${zk.connectString}/state-${tag}`
      : `etcd://${etcd.endpoint.replace(/^https?:\/\//, '')}/state-${tag}`;
  const bridge = () => {
    const b = spawnBridge([
      '--ip',
      '127.0.0.1',
      '--node-id',
      node,
      '--ttl',
      String(ttl),
      '--log-level',
      'debug',
      ...(stateDir ? ['--state-dir', stateDir] : []),
      uri,
    ]);
    bridges.push(b);
    return b;
  };
  /** The first pass that saw the container after Docker's inventory: what the bridge wrote (or not) then. */
  const adopted = async (b: BridgeProcess) => {
    await b.waitForLog('inventory', (l) => l.msg === 'docker inventory complete');
    return b.waitForLog(
      'a pass over the container',
      (l) => l.msg === 'reconcile pass' && Number(l.desired) >= 1,
    );
  };
  return {
    bridge,
    adopted,
    async container() {
      const name = uniqueName('st');
      await runContainer({
        name,
        publish: ['80/tcp'],
        env: { SERVICE_NAME: service },
        labels: { [labelKey]: labelValue },
      });
      return `/state-${tag}/${service}/${node}:${name}:80`;
    },
  };
}

describe.each(['zookeeper', 'etcd'] as const)('registrar --state-dir → %s', (backend) => {
  const stamp = (path: string) => stamps[backend](path);

  it('a bridge restarted within the TTL resumes its session or lease: no entry deleted or written again', async () => {
    const dir = tempDir('state');
    dirs.push(dir);
    const s = scenario(backend, 10, dir);
    const first = s.bridge();
    const path = await s.container();
    await until('the node', async () => (await stamp(path)) !== undefined);
    await s.adopted(first);
    const before = await stamp(path);
    const [file, ...others] = readdirSync(dir);
    expect(others).toEqual([]);
    expect(statSync(join(dir, file!)).mode & 0o777).toBe(0o600);

    // A graceful restart (SIGTERM: the session is left to time out, not closed), then a crash (SIGKILL).
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      await bridges.at(-1)!.kill(signal);
      const next = s.bridge();
      await next.waitForLog('resumed', (l) => l.msg.startsWith(resumedLog[backend]));
      await s.adopted(next);
      // Passes run one after another: once a container started now is registered, whatever the adoption
      // pass was going to write is written. (Its drift counts other tests' containers too: judge by our entry.)
      const later = await s.container();
      await until('a later container registered', async () => (await stamp(later)) !== undefined);
      expect(await stamp(path)).toBe(before);
      expect(next.logs.some((l) => l.msg.startsWith(lostLog[backend]))).toBe(false);
    }
  });

  it('without --state-dir a restarted bridge writes the entry again (new session or lease)', async () => {
    const s = scenario(backend, 10, undefined);
    const first = s.bridge();
    const path = await s.container();
    await until('the node', async () => (await stamp(path)) !== undefined);
    const before = await stamp(path);
    await first.kill('SIGKILL');
    const next = s.bridge();
    await s.adopted(next);
    await until('the node of the new session', async () => {
      const now = await stamp(path);
      return now !== undefined && now !== before;
    });
  });

  it('a saved session or lease that expired meanwhile: a new one, the entry written again', async () => {
    const dir = tempDir('state');
    dirs.push(dir);
    const s = scenario(backend, 2, dir);
    const first = s.bridge();
    const path = await s.container();
    await until('the node', async () => (await stamp(path)) !== undefined);
    await first.kill('SIGKILL');
    await until(
      'the node gone with the expired session',
      async () => (await stamp(path)) === undefined,
      15_000,
    );
    const next = s.bridge();
    await until('the node back', async () => (await stamp(path)) !== undefined);
    expect(next.logs.some((l) => l.msg.startsWith(resumedLog[backend]))).toBe(false);
  });
});
