// Swarm mode (`registrar --swarm`) on a real two-node Swarm (harness/hosts.ts): one manager, one worker, an
// attachable overlay. Three registrars watch the manager at once, one per --swarm-mode, each writing into
// etcd, ZooKeeper and Consul (the double); each has its own node id, so their entries are told apart by id.
// - tasks (default node id: swarm-<cluster id>): exactly the running tasks at their overlay addresses, through
//   scale 2 → 4 → 1, a rolling update and removal;
// - vip: the service's virtual IP on the overlay;
// - ingress: one entry per node at the node's address for the published port. The harness's engines run with
//   --iptables=false, so the routing mesh may not forward traffic here: what is asserted is the registration.
// - `--swarm` against the worker fails with one line and exit code 2.
// - a task with a HEALTHCHECK is registered only once Swarm reports it running (after its check passed), and
//   when its container turns unhealthy Swarm replaces it: the old entry goes, the new task's comes.
// - a node that dies: once Swarm marks it down, its tasks' entries go (the other node's stay untouched).
// - deploy/swarm's stack files, deployed with `docker stack deploy` on the manager, make the services they say
//   (placement, mode, node id template), and the manager stack's command registers the cluster's tasks.
import type Docker from 'dockerode';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '@registrar/core/testing';
import { startBackend, type Backend } from '../harness/backends.js';
import { spawnBridge, type BridgeProcess } from '../harness/bridge.js';
import { TEST_IMAGE } from '../harness/docker.js';
import { SWARM_HEARTBEAT_MS, startHosts, type TestHost, type TestHosts } from '../harness/hosts.js';
import { faultScope } from '../faults/common.js';
import { addressOn, runningTasks, sorted, type RawTask } from './swarm-tasks.js';

const TTL = 3;
const PUBLISHED = 8080;
const HTTPD = ['httpd', '-f', '-p', '80', '-h', '/'];
const SECOND = 1_000_000_000;

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
}, 180_000);
afterAll(async () => {
  await Promise.all(bridges.map((b) => b.kill()));
  await testHosts?.close();
  await Promise.all((backends ?? []).map((b) => b.close()));
}, 120_000);

const execFileAsync = promisify(execFile);
const stackFile = (name: string) => fileURLToPath(new URL(`../../deploy/swarm/${name}`, import.meta.url));

interface ServiceSpec {
  Spec: {
    Mode: { Replicated?: { Replicas: number }; Global?: object };
    TaskTemplate: {
      ContainerSpec: { Args?: string[]; Env?: string[]; User?: string };
      Placement?: { Constraints?: string[] };
    };
  };
}

/** The tasks Swarm wants running, whatever their state (a failed one is no longer wanted). */
async function runningOrStarting(docker: Docker, service: string): Promise<RawTask[]> {
  return (await docker.listTasks({
    filters: { service: [service], 'desired-state': ['running'] },
  })) as RawTask[];
}

/** `id → address:port` of the entries of `service` that `nodeId` owns, in each registry. */
async function heldBy(scope: string, service: string, nodeId: string): Promise<Map<string, string>[]> {
  const all = await Promise.all(backends.map((b) => b.endpoints(scope, service)));
  return all.map((m) => new Map([...m].filter(([id]) => id.startsWith(`${nodeId}:`))));
}

describe('registrar --swarm on a two-node Swarm', () => {
  it('registers tasks, the VIP and the mesh ports, and converges through scale, update and removal', async () => {
    const [h1, h2] = testHosts.hosts as [TestHost, TestHost];
    const overlay = testHosts.overlay!.name;
    const scope = faultScope('etcd');
    const name = scope.service;
    const swarmName = `stack${name}_web`;
    const cluster = ((await h1.docker.swarmInspect()) as { ID: string }).ID;
    const nodeIds = { tasks: `swarm-${cluster}`, vip: `vip-${name}`, ingress: `mesh-${name}` };
    const scopes = { tasks: `${scope.scope}-t`, vip: `${scope.scope}-v`, ingress: `${scope.scope}-i` };

    // `--swarm` needs a manager: against the worker it says so in one line and exits 2.
    const onWorker = spawnBridge(
      ['--docker-host', h2.host, '--swarm', backends[0]!.uri(scopes.tasks)],
      {},
      { exitIsFatal: false },
    );
    const refused = await onWorker.exited;
    expect(refused.code).toBe(2);
    expect(onWorker.stderr).toEqual([
      `registrar: --swarm: Docker engine "${h2.name}" is a Swarm worker; run registrar --swarm on a manager (placement constraint node.role == manager)`,
    ]);

    for (const mode of ['tasks', 'vip', 'ingress'] as const) {
      bridges.push(
        spawnBridge([
          '--docker-host',
          h1.host,
          '--swarm',
          ...(mode === 'tasks' ? [] : ['--swarm-mode', mode, '--node-id', nodeIds[mode]]),
          '--network',
          overlay,
          '--ttl',
          String(TTL),
          '--stall-check',
          '5',
          '--log-level',
          'debug',
          ...backends.map((b) => b.uri(scopes[mode])),
        ]),
      );
    }
    const dump = (error: unknown) => {
      for (const b of bridges)
        console.error(
          b.logs
            .slice(-30)
            .map((l) => JSON.stringify(l))
            .join('\n'),
          b.stderr.join('\n'),
        );
      throw error;
    };

    // A stack's service: SERVICE_NAME in its deploy labels (the service's own), a different one on its
    // containers, which the service's label beats.
    const spec = (replicas: number, version: string) => ({
      Name: swarmName,
      Labels: { 'com.docker.stack.namespace': `stack${name}`, SERVICE_NAME: name },
      TaskTemplate: {
        ContainerSpec: {
          Image: TEST_IMAGE,
          Command: HTTPD,
          StopGracePeriod: SECOND,
          Labels: { SERVICE_NAME: 'not-this-one' },
          Env: [`VERSION=${version}`],
        },
        Networks: [{ Target: overlay }],
      },
      Mode: { Replicated: { Replicas: replicas } },
      UpdateConfig: { Parallelism: 2, Delay: 0, Order: 'stop-first' },
      EndpointSpec: { Ports: [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: PUBLISHED }] },
    });
    const { id: serviceId } = await h1.docker.createService(spec(2, '1') as Docker.CreateServiceOptions);
    const service = h1.docker.getService(serviceId);

    /** Waits until Swarm runs `replicas` tasks and every registry holds exactly them (tasks mode). */
    const convergeTasks = async (replicas: number, what: string) => {
      const startedAt = Date.now();
      let expected = new Map<string, string>();
      await until(
        `${what}: ${replicas} tasks running and registered`,
        async () => {
          const tasks = await runningTasks(h1.docker, serviceId);
          if (tasks.length !== replicas) return false;
          expected = new Map(
            tasks.map((t) => [
              `${nodeIds.tasks}:${swarmName}.${t.Slot}.${t.ID}:80`,
              `${addressOn(t, overlay)}:80`,
            ]),
          );
          const held = await heldBy(scopes.tasks, name, nodeIds.tasks);
          return held.every((m) => sorted(m) === sorted(expected));
        },
        60_000,
      ).catch(dump);
      return { expected, ms: Date.now() - startedAt };
    };

    const created = await convergeTasks(2, 'created');
    const prefix = testHosts.overlay!.subnet.replace(/0\/24$/, '');
    for (const endpoint of created.expected.values()) expect(endpoint.startsWith(prefix)).toBe(true);

    // vip: the service's virtual IP on the overlay, one entry.
    const networks = await h1.docker.listNetworks({ filters: { name: [overlay] } });
    const overlayId = networks.find((n) => n.Name === overlay)!.Id;
    const inspected = (await service.inspect()) as {
      Endpoint: { VirtualIPs: { NetworkID: string; Addr: string }[] };
    };
    const vip = inspected.Endpoint.VirtualIPs.find((v) => v.NetworkID === overlayId)!.Addr.split('/')[0]!;
    const vipExpected = new Map([[`${nodeIds.vip}:${swarmName}:80`, `${vip}:80`]]);
    // ingress: each node of the mesh at its address, the published port.
    const nodes = (await h1.docker.listNodes()) as { ID: string; Status: { Addr: string } }[];
    const meshExpected = new Map(
      nodes.map((n) => [
        `${nodeIds.ingress}:${swarmName}.${n.ID}:${PUBLISHED}`,
        `${n.Status.Addr}:${PUBLISHED}`,
      ]),
    );
    expect(new Set([...meshExpected.values()])).toEqual(
      new Set(testHosts.hosts.map((h) => `${h.address}:${PUBLISHED}`)),
    );
    await until(
      'the VIP and both mesh nodes registered',
      async () => {
        const [vips, mesh] = await Promise.all([
          heldBy(scopes.vip, name, nodeIds.vip),
          heldBy(scopes.ingress, name, nodeIds.ingress),
        ]);
        return (
          vips.every((m) => sorted(m) === sorted(vipExpected)) &&
          mesh.every((m) => sorted(m) === sorted(meshExpected))
        );
      },
      30_000,
    ).catch(dump);

    const update = async (replicas: number, version: string) => {
      const current = (await service.inspect()) as { Version: { Index: number } };
      await service.update({ ...spec(replicas, version), version: current.Version.Index });
    };
    await update(4, '1');
    const up = await convergeTasks(4, 'scaled to 4');
    await update(1, '1');
    const down = await convergeTasks(1, 'scaled to 1');
    // Scaling down keeps the surviving task's entry as it was.
    expect([...down.expected.keys()].every((id) => up.expected.has(id))).toBe(true);

    // A rolling update: every task replaced, every entry with it.
    await update(2, '2');
    await until(
      'the rolling update completed',
      async () =>
        ((await service.inspect()) as { UpdateStatus?: { State?: string } }).UpdateStatus?.State ===
        'completed',
      60_000,
    );
    const rolled = await convergeTasks(2, 'updated');
    for (const id of rolled.expected.keys()) expect(down.expected.has(id)).toBe(false);
    // The VIP stays where it was.
    for (const m of await heldBy(scopes.vip, name, nodeIds.vip)) expect(sorted(m)).toBe(sorted(vipExpected));

    // Removed: gone from every registry, in every mode.
    const removedAt = Date.now();
    await service.remove();
    await until(
      'every entry of the removed service gone',
      async () => {
        const held = await Promise.all(
          (['tasks', 'vip', 'ingress'] as const).map((mode) => heldBy(scopes[mode], name, nodeIds[mode])),
        );
        return held.flat().every((m) => m.size === 0);
      },
      30_000,
    ).catch(dump);
    const removedMs = Date.now() - removedAt;
    console.log(
      `[measure] registrar --swarm, two nodes: 2 tasks registered ${created.ms} ms after create (registrar start included); scale 2→4 ${up.ms} ms, 4→1 ${down.ms} ms, rolling update ${rolled.ms} ms after it completed, removal ${removedMs} ms`,
    );
    for (const b of bridges) expect(b.child.exitCode).toBeNull();
  }, 180_000);

  it("deploy/swarm's stack files: the manager stack on every manager, the per-host one on every node, and its command registers the tasks", async () => {
    const h1 = testHosts.hosts[0]!;
    const overlay = testHosts.overlay!.name;
    const scope = faultScope('etcd');
    const etcd = backends.find((b) => b.name === 'etcd')!;
    const env = {
      ...process.env,
      DOCKER_HOST: h1.host,
      // Swarm records what the file says; the tasks themselves need not run for that.
      REGISTRAR_IMAGE: TEST_IMAGE,
      REGISTRAR_URI: etcd.uri(scope.scope),
      REGISTRAR_NETWORK: overlay,
      DOCKER_GID: '0',
    };
    const deploy = async (file: string, stack: string) => {
      await execFileAsync('docker', ['stack', 'deploy', '--detach=true', '-c', stackFile(file), stack], {
        env,
      });
      return (await h1.docker.getService(`${stack}_registrar`).inspect()) as ServiceSpec;
    };
    const manager = await deploy('registrar-manager.yml', `m${scope.service}`);
    const perHost = await deploy('registrar-per-host.yml', `h${scope.service}`);
    for (const stack of [`m${scope.service}`, `h${scope.service}`])
      await execFileAsync('docker', ['stack', 'rm', stack], { env });

    const task = manager.Spec.TaskTemplate;
    expect(task.Placement?.Constraints).toEqual(['node.role == manager']);
    expect(manager.Spec.Mode.Global).toBeDefined();
    expect(task.ContainerSpec.Args).toEqual(['--swarm', env.REGISTRAR_URI]);
    expect(task.ContainerSpec.User).toBe('10001:0');
    expect(perHost.Spec.Mode.Global).toBeDefined();
    expect(perHost.Spec.TaskTemplate.ContainerSpec.Env).toContain('REGISTRAR_NODE_ID={{.Node.Hostname}}');
    expect(perHost.Spec.TaskTemplate.ContainerSpec.Args).toEqual([
      '--internal',
      '--deregister-on-exit',
      env.REGISTRAR_URI,
    ]);

    // The manager stack's command and environment, run against the manager, register a service's tasks.
    const specEnv = Object.fromEntries(
      (task.ContainerSpec.Env ?? []).map((entry) => [
        entry.slice(0, entry.indexOf('=')),
        entry.slice(entry.indexOf('=') + 1),
      ]),
    );
    const bridge = spawnBridge(
      [...task.ContainerSpec.Args!, '--docker-host', h1.host, '--ttl', String(TTL)],
      specEnv,
    );
    bridges.push(bridge);
    const { id } = await h1.docker.createService({
      Name: `d${scope.service}`,
      Labels: { SERVICE_NAME: scope.service },
      TaskTemplate: {
        ContainerSpec: { Image: TEST_IMAGE, Command: HTTPD, StopGracePeriod: SECOND },
        Networks: [{ Target: overlay }],
      },
      Mode: { Replicated: { Replicas: 2 } },
      EndpointSpec: { Ports: [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: PUBLISHED + 1 }] },
    });
    const cluster = ((await h1.docker.swarmInspect()) as { ID: string }).ID;
    await until(
      "the stack command's registrar holding the service's two tasks",
      async () => {
        const tasks = await runningTasks(h1.docker, id);
        const held = await etcd.endpoints(scope.scope, scope.service);
        const expected = new Map(
          tasks.map((t) => [
            `swarm-${cluster}:d${scope.service}.${t.Slot}.${t.ID}:80`,
            `${addressOn(t, overlay)}:80`,
          ]),
        );
        return tasks.length === 2 && sorted(held) === sorted(expected);
      },
      60_000,
    ).catch((error: unknown) => {
      console.error(
        bridge.logs
          .slice(-20)
          .map((l) => JSON.stringify(l))
          .join('\n'),
        bridge.stderr.join('\n'),
      );
      throw error;
    });
    await h1.docker.getService(id).remove();
    await until(
      'the removed service gone from etcd',
      async () => (await etcd.endpoints(scope.scope, scope.service)).size === 0,
    );
  }, 120_000);

  it('health: registered once its check passed; an unhealthy task is replaced, and so is its entry', async () => {
    const h1 = testHosts.hosts[0]!;
    const overlay = testHosts.overlay!.name;
    const scope = faultScope('etcd');
    const etcd = backends.find((b) => b.name === 'etcd')!;
    const bridge = spawnBridge([
      '--docker-host',
      h1.host,
      '--swarm',
      '--ttl',
      String(TTL),
      '--stall-check',
      '5',
      etcd.uri(scope.scope),
    ]);
    bridges.push(bridge);
    const { id } = await h1.docker.createService({
      Name: `hc${scope.service}`,
      Labels: { SERVICE_80_NAME: scope.service },
      TaskTemplate: {
        ContainerSpec: {
          Image: TEST_IMAGE,
          // Healthy about 3 s after it starts, for as long as /tmp/ready exists.
          Command: ['sh', '-c', 'sleep 3 && touch /tmp/ready && exec httpd -f -p 80 -h /'],
          StopGracePeriod: SECOND,
          HealthCheck: {
            Test: ['CMD', 'test', '-f', '/tmp/ready'],
            Interval: SECOND / 2,
            Timeout: SECOND,
            Retries: 2,
            // Failures while it starts do not count; once it has passed, two in a row make it unhealthy.
            StartPeriod: 20 * SECOND,
          },
        },
        Networks: [{ Target: overlay }],
        RestartPolicy: { Condition: 'any', Delay: SECOND / 10 },
      },
      Mode: { Replicated: { Replicas: 1 } },
    });
    const task = async () => (await runningOrStarting(h1.docker, id))[0];
    const entryOf = (t: RawTask) => `swarm-${cluster}:hc${scope.service}.${t.Slot}.${t.ID}:80`;
    const cluster = ((await h1.docker.swarmInspect()) as { ID: string }).ID;
    const early: string[] = [];
    let first: RawTask | undefined;
    await until(
      'the task healthy, running and registered',
      async () => {
        // The registry first: whatever it holds was written before Swarm's answer below.
        const held = await etcd.ids(scope.scope, scope.service);
        const t = await task();
        if (t === undefined) return false;
        if (t.Status.State !== 'running' && held.includes(entryOf(t))) early.push(t.Status.State);
        first = t;
        return t.Status.State === 'running' && held.includes(entryOf(t));
      },
      60_000,
    ).catch(async (error: unknown) => {
      console.error(JSON.stringify(await runningOrStarting(h1.docker, id)).slice(0, 3000));
      console.error(await etcd.ids(scope.scope, scope.service));
      console.error(
        bridge.logs
          .slice(-20)
          .map((l) => JSON.stringify(l))
          .join('\n'),
        bridge.stderr.join('\n'),
      );
      throw error;
    });
    expect(early).toEqual([]);

    // Unhealthy: Swarm fails the task and starts another in its slot.
    const nodes = await Promise.all(
      testHosts.hosts.map(async (h) => ({
        h,
        node: ((await h.docker.info()) as { Swarm: { NodeID: string } }).Swarm.NodeID,
      })),
    );
    const onNode = nodes.find((n) => n.node === first!.NodeID)!.h;
    const exec = await onNode.docker.getContainer(first!.Status.ContainerStatus!.ContainerID!).exec({
      Cmd: ['rm', '/tmp/ready'],
    });
    await exec.start({});
    const unhealthyAt = Date.now();
    await until(
      'the unhealthy task replaced, and the registry holding only its successor',
      async () => {
        const held = await etcd.ids(scope.scope, scope.service);
        const t = await task();
        return (
          t !== undefined &&
          t.ID !== first!.ID &&
          t.Status.State === 'running' &&
          JSON.stringify(held) === JSON.stringify([entryOf(t)])
        );
      },
      60_000,
    ).catch((error: unknown) => {
      console.error(
        bridge.logs
          .slice(-20)
          .map((l) => JSON.stringify(l))
          .join('\n'),
      );
      throw error;
    });
    console.log(
      `[measure] registrar --swarm: an unhealthy task's replacement registered (and the old entry gone) ${Date.now() - unhealthyAt} ms after its check file was removed (Swarm's detection, restart and the new task's 3 s start included)`,
    );
    await h1.docker.getService(id).remove();
  }, 120_000);

  // Last: it kills host 2 (afterAll starts it again to clean up).
  it("a node that goes down takes its tasks' entries with it; the other node's stay as they were", async () => {
    const [h1, h2] = testHosts.hosts as [TestHost, TestHost];
    const overlay = testHosts.overlay!.name;
    const scope = faultScope('etcd');
    const etcd = backends.find((b) => b.name === 'etcd')!;
    const bridge = spawnBridge([
      '--docker-host',
      h1.host,
      '--swarm',
      '--ttl',
      String(TTL),
      '--stall-check',
      '5',
      etcd.uri(scope.scope),
    ]);
    bridges.push(bridge);
    const { id } = await h1.docker.createService({
      Name: `g${scope.service}`,
      Labels: { SERVICE_80_NAME: scope.service },
      TaskTemplate: {
        ContainerSpec: { Image: TEST_IMAGE, Command: HTTPD, StopGracePeriod: SECOND },
        Networks: [{ Target: overlay }],
      },
      Mode: { Global: {} },
    });
    const h2Node = ((await h2.docker.info()) as { Swarm: { NodeID: string } }).Swarm.NodeID;
    let onH1 = '';
    let onH2 = '';
    await until(
      'a task on each node, both registered',
      async () => {
        const tasks = await runningTasks(h1.docker, id);
        const held = await etcd.ids(scope.scope, scope.service);
        const ids = (node: string) =>
          tasks.filter((t) => t.NodeID === node).map((t) => held.find((e) => e.includes(`.${t.ID}:`)));
        const [mine] = ids(tasks.find((t) => t.NodeID !== h2Node)?.NodeID ?? '');
        const [theirs] = ids(h2Node);
        onH1 = mine ?? '';
        onH2 = theirs ?? '';
        return tasks.length === 2 && held.length === 2 && onH1 !== '' && onH2 !== '';
      },
      60_000,
    );
    const before = await etcd.stamps(scope.scope, scope.service);
    const killedAt = Date.now();
    await h2.kill('SIGKILL');
    await until(
      "host 2's task withdrawn",
      async () => {
        const held = await etcd.ids(scope.scope, scope.service);
        return !held.includes(onH2) && held.includes(onH1);
      },
      60_000,
    ).catch((error: unknown) => {
      console.error(
        bridge.logs
          .slice(-20)
          .map((l) => JSON.stringify(l))
          .join('\n'),
      );
      throw error;
    });
    const withdrawnMs = Date.now() - killedAt;
    const after = await etcd.stamps(scope.scope, scope.service);
    expect([...after.keys()]).toEqual([onH1]);
    expect(after.get(onH1)).toBe(before.get(onH1));
    console.log(
      `[measure] registrar --swarm: host 2 killed → its task's entry withdrawn after ${withdrawnMs} ms (Swarm heartbeat ${SWARM_HEARTBEAT_MS} ms); host 1's entry not rewritten`,
    );

    // Host 2 comes back and is a ready node again: the tests that run after this one (the file runs in any
    // order) have both hosts.
    await h1.docker.getService(id).remove();
    await h2.start();
    await until(
      'host 2 ready again',
      async () =>
        ((await h1.docker.listNodes()) as { ID: string; Status: { State: string } }[]).some(
          (n) => n.ID === h2Node && n.Status.State === 'ready',
        ),
      60_000,
    );
  }, 180_000);
});
