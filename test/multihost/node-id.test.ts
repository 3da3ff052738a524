// Two hosts with the same host name, as cloned machines have (harness/hosts.ts: each a network namespace with
// a dockerd of its own, so each engine has its own ID). Both registrars run with the default node id, the
// host name, into etcd, ZooKeeper and Consul (the double) at once. Host 1's registrar registers its
// containers; host 2's, with a container of the same name (the same service id), must find host 1's entries
// written by another engine, exit 2 with one line saying to set --node-id, and leave them untouched.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '@registrar/core/testing';
import { startBackend, type Backend } from '../harness/backends.js';
import { runCli, spawnBridge, type BridgeProcess, type SpawnOptions } from '../harness/bridge.js';
import { TEST_IMAGE } from '../harness/docker.js';
import { startHosts, type TestHost, type TestHosts } from '../harness/hosts.js';
import { faultScope } from '../faults/common.js';

/** What the test reads of `docker info`. */
interface EngineInfo {
  readonly Name: string;
  readonly ID: string;
}

const HOST_NAME = 'clone';
const NETWORK = 'svc';

let testHosts: TestHosts;
let backends: Backend[];
const bridges: BridgeProcess[] = [];

beforeAll(async () => {
  [testHosts, ...backends] = await Promise.all([
    startHosts(2, { names: [HOST_NAME, HOST_NAME] }),
    startBackend('etcd'),
    startBackend('zookeeper'),
    startBackend('consul'),
  ]);
}, 180_000);
afterAll(async () => {
  await Promise.all(bridges.map((b) => b.kill()));
  await testHosts?.close();
  await Promise.all((backends ?? []).map((b) => b.close()));
}, 120_000);

/** A running container named `name` offering port 80 of `service` on `h`'s own bridge network. */
async function runWeb(h: TestHost, name: string, service: string) {
  const container = await h.docker.createContainer({
    name,
    Image: TEST_IMAGE,
    Cmd: ['sleep', '3600'],
    Labels: { SERVICE_NAME: service },
    ExposedPorts: { '80/tcp': {} },
    StopTimeout: 1,
    HostConfig: { NetworkMode: NETWORK },
  });
  await container.start();
}

/** `exitIsFatal: false` for a bridge expected to exit (see harness/bridge.ts). */
const bridgeOn = (h: TestHost, uris: string[], options: SpawnOptions = {}) => {
  const b = spawnBridge(
    [
      '--docker-host',
      h.host,
      '--internal',
      '--network',
      NETWORK,
      '--ttl',
      '5',
      '--log-level',
      'debug',
      ...uris,
    ],
    {},
    options,
  );
  bridges.push(b);
  return b;
};

const consulBridgeMeta = async (backend: Backend) => {
  const url = new URL(backend.uri('')).host;
  // Through the proxy: the agent API is the same.
  const services = (await (await fetch(`http://${url}/v1/agent/services`)).json()) as Record<
    string,
    { Meta?: Record<string, string> }
  >;
  return services[`registrar:${HOST_NAME}`]?.Meta;
};

describe('two hosts sharing a host name (cloned machines)', () => {
  it("the second registrar exits 2 with one line saying to set --node-id and never touches the first's entries", async () => {
    const scope = faultScope('etcd');
    const uris = backends.map((b) => b.uri(scope.scope));
    const [h1, h2] = testHosts.hosts as [TestHost, TestHost];
    const [info1, info2] = (await Promise.all([h1.docker.info(), h2.docker.info()])) as [
      EngineInfo,
      EngineInfo,
    ];
    expect([info1.Name, info2.Name]).toEqual([HOST_NAME, HOST_NAME]);
    expect(info1.ID).not.toBe(info2.ID);

    await Promise.all(
      testHosts.hosts.map((h) => h.docker.createNetwork({ Name: NETWORK, Driver: 'bridge' })),
    );
    await Promise.all([runWeb(h1, 'web', scope.service), runWeb(h1, 'api', scope.service)]);
    // Host 2 runs a container of the same name: the same service id, which it would overwrite.
    await Promise.all([runWeb(h2, 'web', scope.service), runWeb(h2, 'extra', scope.service)]);
    const expected = [`${HOST_NAME}:api:80`, `${HOST_NAME}:web:80`];

    const bridge1 = bridgeOn(h1, uris);
    await until(
      'host 1’s entries in every registry',
      async () => {
        const held = await Promise.all(backends.map((b) => b.ids(scope.scope, scope.service)));
        return held.every((ids) => JSON.stringify(ids.sort()) === JSON.stringify(expected));
      },
      30_000,
    );
    const before = await Promise.all(backends.map((b) => b.stamps(scope.scope, scope.service)));
    const consul = backends.find((b) => b.name === 'consul')!;
    expect((await consulBridgeMeta(consul))?.['registrar-engine']).toBe(info1.ID);

    const started = Date.now();
    const bridge2 = bridgeOn(h2, uris, { exitIsFatal: false });
    const { code } = await bridge2.exited;
    const exitedAfter = Date.now() - started;
    expect(code).toBe(2);
    expect(bridge2.stderr).toHaveLength(1);
    expect(bridge2.stderr[0]).toMatch(
      new RegExp(
        `^registrar: (registry (etcd|zookeeper)://|consul registry http://)\\S+ holds entries of node id "${HOST_NAME}" written by another Docker engine \\(ID ${info1.ID.replace(/[^A-Za-z0-9]/g, '\\$&')}\\); two hosts share this node id \\(cloned machines share host names\\): set --node-id to a name unique to this host$`,
      ),
    );
    // Nothing was written by host 2's registrar: no op at all, not even a refused one.
    expect(bridge2.logs.filter((l) => l.msg === 'registered' || l.msg === 'deregistered')).toEqual([]);

    // `registrar check` on host 2 reports the same conflict for every registry (reading only); on host 1, none.
    const check2 = await runCli(['check', '--docker-host', h2.host, ...uris]);
    expect(check2.code).toBe(1);
    expect(check2.stdout.slice(1)).toHaveLength(3);
    for (const line of check2.stdout.slice(1)) {
      expect(line).toMatch(
        /^FAIL {2}\S+ {2}.*holds entries of node id "clone" written by another Docker engine/,
      );
    }
    const check1 = await runCli(['check', '--docker-host', h1.host, ...uris]);
    expect(check1.code, check1.stdout.join('\n')).toBe(0);

    const after = await Promise.all(backends.map((b) => b.stamps(scope.scope, scope.service)));
    backends.forEach((b, i) => {
      expect([...after[i]!].sort(), b.name).toEqual([...before[i]!].sort());
    });
    expect((await consulBridgeMeta(consul))?.['registrar-engine']).toBe(info1.ID);
    expect(bridge1.child.exitCode).toBeNull();
    console.log(
      `[measure] two hosts named "${HOST_NAME}": the second registrar exited 2 after ${exitedAfter} ms; host 1's ${expected.length} entries unchanged in etcd, ZooKeeper and Consul`,
    );
  }, 120_000);
});
