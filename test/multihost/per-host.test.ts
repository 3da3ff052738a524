// Per-host mode across real hosts: a two-node Swarm (harness/hosts.ts: each node a network namespace with a
// dockerd of its own, on a test bridge) with an attachable overlay network. A global service puts one task on
// each node and each node also runs a plain container on the overlay; one registrar per node (default node id:
// the node's host name) registers its own node's containers at their overlay addresses (--internal
// --network), into etcd, ZooKeeper and Consul (the double) at once.
// - Every registry holds exactly each task and container, at its overlay address and port.
// - Host 2 dies (SIGKILL to its dockerd and its registrar): its entries expire within the TTL (Consul: TTL,
//   then DeregisterCriticalServiceAfter and the reaper), and host 1's are never rewritten, not even when Swarm
//   marks host 2 down.
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '@registrar/core/testing';
import { startBackend, type Backend } from '../harness/backends.js';
import { spawnBridge, type BridgeProcess } from '../harness/bridge.js';
import { TEST_IMAGE } from '../harness/docker.js';
import { startHosts, type TestHost, type TestHosts } from '../harness/hosts.js';
import { faultScope } from '../faults/common.js';

/** Seconds: short, to keep the test fast. */
const TTL = 3;
/** The consul backend's `?deregister-after=1s` (the double's floor) plus its reaper's period. */
const CONSUL_REAP_MS = 1_000 + 200;
/** Room for a loaded two-core machine between an expiry and our next look. */
const SLACK_MS = 2_000;
/** The test image with `EXPOSE 80`, as a real image declares its port (Swarm exposes none of its own). */
const WEB_IMAGE = 'registrar-test:web';

let testHosts: TestHosts;
let backends: Backend[];
const bridges: BridgeProcess[] = [];

beforeAll(async () => {
  [testHosts, ...backends] = await Promise.all([
    startHosts(2, { swarm: true }),
    startBackend('etcd'),
    startBackend('zookeeper'),
    startBackend('consul'),
  ]);
  await Promise.all(testHosts.hosts.map((h) => buildWebImage(h.docker)));
}, 180_000);
afterAll(async () => {
  await Promise.all(bridges.map((b) => b.kill()));
  await testHosts?.close();
  await Promise.all((backends ?? []).map((b) => b.close()));
}, 120_000);

async function buildWebImage(docker: Docker) {
  const container = await docker.createContainer({ Image: TEST_IMAGE, Cmd: ['true'] });
  const [repo, tag] = WEB_IMAGE.split(':') as [string, string];
  await container.commit({ repo, tag, changes: 'EXPOSE 80/tcp' });
  await container.remove();
}

const HTTPD = ['httpd', '-f', '-p', '80', '-h', '/www'];

/** `id → "overlay address:80"` of each running container offering `service` on `h`, as its registrar names it. */
async function expectedOn(h: TestHost, service: string, overlay: string): Promise<Map<string, string>> {
  const list = await h.docker.listContainers({ filters: { label: [`SERVICE_NAME=${service}`] } });
  const expected = new Map<string, string>();
  for (const c of list) {
    const info = await h.docker.getContainer(c.Id).inspect();
    const address = info.NetworkSettings.Networks[overlay]?.IPAddress;
    if (address) expected.set(`${h.name}:${info.Name.replace(/^\//, '')}:80`, `${address}:80`);
  }
  return expected;
}

const sorted = (m: Map<string, string>) => JSON.stringify([...m].sort());

describe('per-host registrars on a two-node Swarm', () => {
  it("each registry holds every node's tasks and containers; a node that dies takes only its own entries", async () => {
    const scope = faultScope('etcd');
    const uris = backends.map((b) => b.uri(scope.scope));
    const overlay = testHosts.overlay!.name;
    const [h1, h2] = testHosts.hosts as [TestHost, TestHost];
    const labels = { SERVICE_NAME: scope.service, SERVICE_TAGS: 'multihost' };

    await h1.docker.createService({
      Name: `web-${scope.service}`,
      Mode: { Global: {} },
      TaskTemplate: {
        ContainerSpec: { Image: WEB_IMAGE, Command: HTTPD, Labels: labels, StopGracePeriod: 1_000_000_000 },
        Networks: [{ Target: overlay }],
      },
    });
    // Beside the tasks, a plain container on each node, attached to the overlay (it is attachable).
    await Promise.all(
      testHosts.hosts.map(async (h) => {
        const container = await h.docker.createContainer({
          name: `solo-${h.index}-${scope.service}`,
          Image: WEB_IMAGE,
          Cmd: HTTPD,
          Labels: labels,
          StopTimeout: 1,
          HostConfig: { NetworkMode: overlay },
        });
        await container.start();
      }),
    );
    for (const h of testHosts.hosts) {
      bridges.push(
        spawnBridge([
          '--docker-host',
          h.host,
          '--internal',
          '--network',
          overlay,
          '--ttl',
          String(TTL),
          '--log-level',
          'debug',
          ...uris,
        ]),
      );
    }
    const [bridge1, bridge2] = bridges as [BridgeProcess, BridgeProcess];

    // A task and a plain container on each node, each with its overlay address.
    let perHost: Map<string, string>[] = [];
    await until(
      'a task and a plain container running on each node',
      async () => {
        perHost = await Promise.all(testHosts.hosts.map((h) => expectedOn(h, scope.service, overlay)));
        return perHost.every((m) => m.size === 2);
      },
      60_000,
    );
    const [onHost1, onHost2] = perHost as [Map<string, string>, Map<string, string>];
    const everything = new Map([...onHost1, ...onHost2]);
    const startedAt = Date.now();
    await until(
      'every registry holding exactly both nodes’ entries',
      async () => {
        const held = await Promise.all(backends.map((b) => b.endpoints(scope.scope, scope.service)));
        return held.every((m) => sorted(m) === sorted(everything));
      },
      30_000,
    ).catch((error: unknown) => {
      for (const b of bridges)
        console.error(
          b.logs
            .slice(-30)
            .map((l) => JSON.stringify(l))
            .join('\n'),
        );
      throw error;
    });
    const registeredAfter = Date.now() - startedAt;
    for (const b of backends)
      expect(sorted(await b.endpoints(scope.scope, scope.service))).toBe(sorted(everything));
    // Every overlay address is a distinct one of the overlay's subnet.
    const addresses = [...everything.values()].map((e) => e.split(':')[0]!);
    expect(new Set(addresses).size).toBe(4);
    const prefix = testHosts.overlay!.subnet.replace(/0\/24$/, '');
    for (const a of addresses) expect(a.startsWith(prefix)).toBe(true);
    const before = await Promise.all(backends.map((b) => b.stamps(scope.scope, scope.service)));

    // Host 2 dies.
    const killedAt = Date.now();
    await Promise.all([bridge2.kill('SIGKILL'), h2.kill('SIGKILL')]);
    const goneAfter: Record<string, number> = {};
    let consulCriticalAfter = 0;
    let swarmDownAfter = 0;
    const host1Changes: string[] = [];
    await Promise.all([
      ...backends.map((b) =>
        until(
          `${b.name} dropping host 2's entries`,
          async () => {
            const held = await b.endpoints(scope.scope, scope.service);
            // Host 1's entries at every look, unchanged.
            for (const [id, endpoint] of onHost1)
              if (held.get(id) !== endpoint)
                host1Changes.push(`${b.name}: ${id} → ${held.get(id) ?? 'gone'}`);
            if ([...onHost2.keys()].some((id) => held.has(id))) return false;
            goneAfter[b.name] = Date.now() - killedAt;
            return true;
          },
          30_000,
        ),
      ),
      until(
        'Consul no longer passing host 2’s entries',
        async () => {
          const passing = await backends
            .find((b) => b.name === 'consul')!
            .passing(scope.scope, scope.service);
          if ([...onHost2.keys()].some((id) => passing.includes(id))) return false;
          consulCriticalAfter = Date.now() - killedAt;
          return true;
        },
        30_000,
      ),
      until(
        'Swarm marking host 2 down',
        async () => {
          const nodes = (await h1.docker.listNodes()) as {
            Description?: { Hostname?: string };
            Status?: { State?: string };
          }[];
          if (!nodes.some((n) => n.Description?.Hostname === h2.name && n.Status?.State === 'down'))
            return false;
          swarmDownAfter = Date.now() - killedAt;
          return true;
        },
        60_000,
      ),
    ]);

    const after = await Promise.all(backends.map((b) => b.stamps(scope.scope, scope.service)));
    const rewritten = backends.flatMap((b, i) =>
      [...onHost1.keys()]
        .filter((id) => after[i]!.get(id) !== before[i]!.get(id))
        .map((id) => `${b.name}: ${id}`),
    );
    console.log(
      `[measure] two-node Swarm, registrar per node, --ttl ${TTL}: 4 entries in every registry ${registeredAfter} ms after the registrars started; host 2 killed → its entries gone from etcd after ${goneAfter.etcd} ms, ZooKeeper ${goneAfter.zookeeper} ms, Consul ${goneAfter.consul} ms (critical after ${consulCriticalAfter} ms); Swarm marked it down after ${swarmDownAfter} ms; host 1's entries rewritten in ${rewritten.length} of ${onHost1.size * 3}`,
    );
    expect(host1Changes).toEqual([]);
    expect(rewritten).toEqual([]);
    for (const b of backends)
      expect(sorted(await b.endpoints(scope.scope, scope.service))).toBe(sorted(onHost1));
    expect(goneAfter.etcd).toBeLessThanOrEqual(TTL * 1000 + SLACK_MS);
    expect(goneAfter.zookeeper).toBeLessThanOrEqual(TTL * 1000 + SLACK_MS);
    expect(goneAfter.consul).toBeLessThanOrEqual(TTL * 1000 + CONSUL_REAP_MS + SLACK_MS);
    expect(bridge1.child.exitCode).toBeNull();
  }, 180_000);
});
