/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-argument -- tests edit raw engine JSON */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  deriveSwarmServices,
  isTaskServed,
  type SwarmDeriveOptions,
  type SwarmMode,
  type SwarmSnapshot,
} from './derive.js';

// Captured from a real two-node Swarm by test/multihost/swarm-fixtures.capture.ts (`pnpm capture:swarm-fixtures`) (which says what each
// service is): `swarm-snapshot.json` with everything running, `swarm-updated.json` after a rolling update of
// shop_web.
interface Fixture extends SwarmSnapshot {
  readonly swarm: { Cluster: { ID: string } };
}
const load = (name: string): Fixture =>
  JSON.parse(readFileSync(new URL(`../../fixtures/swarm-${name}.json`, import.meta.url), 'utf8')) as Fixture;
const snapshot = load('snapshot');
const updated = load('updated');

type Raw = Record<string, any>;
const services = (s: SwarmSnapshot) => s.services as Raw[];
const tasks = (s: SwarmSnapshot) => s.tasks as Raw[];
const serviceNamed = (s: SwarmSnapshot, name: string) => services(s).find((x) => x.Spec.Name === name)!;
const tasksOf = (s: SwarmSnapshot, name: string) =>
  tasks(s).filter((t) => t.ServiceID === serviceNamed(s, name).ID);
const runningTasksOf = (s: SwarmSnapshot, name: string) => tasksOf(s, name).filter(isTaskServed);
const overlayAddress = (task: Raw) =>
  (task.NetworksAttachments as Raw[])
    .find((a) => a.Network.Spec.Name === 'testoverlay')!
    .Addresses[0].split('/')[0] as string;
const nodeAddress = (s: SwarmSnapshot, id: string) =>
  (s.nodes as Raw[]).find((n) => n.ID === id)!.Status.Addr as string;

const options = (mode: SwarmMode, extra: Partial<SwarmDeriveOptions> = {}): SwarmDeriveOptions => ({
  nodeId: 'swarm-c1',
  mode,
  tags: ['global'],
  explicit: false,
  ...extra,
});
const derive = (s: SwarmSnapshot, mode: SwarmMode, extra: Partial<SwarmDeriveOptions> = {}) =>
  deriveSwarmServices(s, options(mode, extra));
const of = (s: SwarmSnapshot, name: string, mode: SwarmMode, extra: Partial<SwarmDeriveOptions> = {}) =>
  derive(s, mode, extra).get(serviceNamed(s, name).ID)!;
const endpoints = (d: { services: { id: string; address: string; port: number }[] }) =>
  new Map(d.services.map((x) => [x.id, `${x.address}:${x.port}`]));

/** A deep copy to edit. */
const clone = (s: SwarmSnapshot): SwarmSnapshot => structuredClone(s);

describe('deriveSwarmServices: tasks mode', () => {
  it('registers each running task at its overlay address with the target port', () => {
    const web = of(snapshot, 'shop_web', 'tasks');
    const running = runningTasksOf(snapshot, 'shop_web');
    expect(running).toHaveLength(2);
    expect(endpoints(web)).toEqual(
      new Map(running.map((t) => [`swarm-c1:shop_web.${t.Slot}.${t.ID}:80`, `${overlayAddress(t)}:80`])),
    );
    for (const entry of web.services) {
      // The service's labels win over its containers'; the containers' other keys still count.
      expect(entry.name).toBe('web');
      expect(entry.tags).toEqual(['global', 'from-service']);
      expect(entry.meta).toEqual({ region: 'eu' });
      expect(entry.node).toBe('swarm-c1');
      expect(entry.health).toBe('passing');
      expect(entry.containerPort).toBe(80);
      expect(entry.container?.name).toBe(`shop_web.${entry.id.split('.')[1]}.${entry.container?.id}`);
    }
    // The overlay, never Swarm's ingress network, although both tasks are on it.
    for (const entry of web.services) expect(entry.address.startsWith('10.232.')).toBe(true);
  });

  it('names global tasks by node, and reads a port from a SERVICE_<port>_NAME label', () => {
    const hostport = of(snapshot, 'hostport', 'tasks');
    const running = runningTasksOf(snapshot, 'hostport');
    expect(new Set(running.map((t) => t.NodeID)).size).toBe(2);
    expect(endpoints(hostport)).toEqual(
      new Map(running.map((t) => [`swarm-c1:hostport.${t.NodeID}.${t.ID}:80`, `${overlayAddress(t)}:80`])),
    );
    const internal = of(snapshot, 'internal', 'tasks');
    expect(internal.services.map((x) => [x.name, x.port])).toEqual([['api', 8080]]);
  });

  it('serves no task that is not running: failed, still starting (health check), scaled to 0', () => {
    expect(tasksOf(snapshot, 'broken').map((t) => [t.Status.State, t.DesiredState])).toContainEqual([
      'failed',
      'shutdown',
    ]);
    expect(of(snapshot, 'broken', 'tasks').services).toEqual([]);
    expect(tasksOf(snapshot, 'sick').some((t) => t.Status.State === 'starting')).toBe(true);
    expect(of(snapshot, 'sick', 'tasks').services).toEqual([]);
    const zero = of(snapshot, 'zero', 'tasks');
    expect(zero.services).toEqual([]);
    expect(zero.skipped.map((x) => x.reason)).toEqual(['no-running-task']);
  });

  it('a rolling update replaces every entry: new tasks, new ids, the old tasks gone', () => {
    const before = endpoints(of(snapshot, 'shop_web', 'tasks'));
    const after = endpoints(of(updated, 'shop_web', 'tasks'));
    const running = runningTasksOf(updated, 'shop_web');
    expect(after).toEqual(
      new Map(running.map((t) => [`swarm-c1:shop_web.${t.Slot}.${t.ID}:80`, `${overlayAddress(t)}:80`])),
    );
    expect(after.size).toBe(2);
    for (const id of after.keys()) expect(before.has(id)).toBe(false);
    // The shut-down tasks are still listed by Swarm (task history), not served.
    expect(tasksOf(updated, 'shop_web').filter((t) => t.DesiredState === 'shutdown')).toHaveLength(2);
  });

  it('scaling follows the running tasks; a removed service yields nothing', () => {
    const scaled = clone(snapshot);
    const [keep] = runningTasksOf(scaled, 'shop_web');
    const dropped = runningTasksOf(scaled, 'shop_web').find((t) => t !== keep)!;
    (scaled as unknown as { tasks: unknown[] }).tasks = tasks(scaled).filter((t) => t !== dropped);
    expect([...endpoints(of(scaled, 'shop_web', 'tasks')).keys()]).toEqual([
      `swarm-c1:shop_web.${keep!.Slot}.${keep!.ID}:80`,
    ]);
    const removed = clone(snapshot);
    const webId = serviceNamed(removed, 'shop_web').ID as string;
    (removed as unknown as { services: unknown[] }).services = services(removed).filter(
      (x) => x.ID !== webId,
    );
    expect(derive(removed, 'tasks').has(webId)).toBe(false);
    expect(derive(removed, 'tasks').size).toBe(snapshot.services.length - 1);
  });
});

describe('deriveSwarmServices: labels and names', () => {
  const withLabels = (service: Record<string, string>, container: Record<string, string>, name?: string) => {
    const s = clone(snapshot);
    const web = serviceNamed(s, 'shop_web');
    web.Spec.Labels = service;
    web.Spec.TaskTemplate.ContainerSpec.Labels = container;
    if (name !== undefined) web.Spec.Name = name;
    return derive(s, 'tasks').get(web.ID as string)!;
  };
  const stack = { 'com.docker.stack.namespace': 'shop' };

  it("uses the containers' SERVICE_NAME when the service sets none", () => {
    const d = withLabels(stack, { SERVICE_NAME: 'from-container' });
    expect(d.services.map((x) => x.name)).toEqual(['from-container', 'from-container']);
  });

  it("falls back to the Swarm service name without its stack's prefix", () => {
    expect(withLabels(stack, {}).services[0]!.name).toBe('web');
    // Not a stack: the name as it is.
    expect(withLabels({}, {}).services[0]!.name).toBe('shop_web');
    // A namespace the name does not start with is not stripped.
    expect(withLabels({ 'com.docker.stack.namespace': 'other' }, {}).services[0]!.name).toBe('shop_web');
  });

  it('SERVICE_ID replaces the service name in ids; SERVICE_IGNORE and --explicit skip', () => {
    const d = withLabels({ SERVICE_ID: 'shop' }, {});
    for (const x of d.services) expect(x.id).toMatch(/^swarm-c1:shop\.[12]\.[a-z0-9]+:80$/);
    const ignored = withLabels({}, { SERVICE_IGNORE: 'true' });
    expect(ignored.services).toEqual([]);
    expect(ignored.skipped.map((x) => x.reason)).toEqual(['ignored']);
    const explicit = derive(snapshot, 'tasks', { explicit: true });
    expect(explicit.get(serviceNamed(snapshot, 'hostport').ID)!.skipped.map((x) => x.reason)).toEqual([
      'explicit-unnamed',
    ]);
    expect(explicit.get(serviceNamed(snapshot, 'shop_web').ID)!.services).toHaveLength(2);
  });

  it('a port-specific name keeps its name; several ports get <name>-<port>; udp gets :udp', () => {
    const s = clone(snapshot);
    const web = serviceNamed(s, 'shop_web');
    web.Endpoint.Ports.push({ Protocol: 'udp', TargetPort: 53, PublishedPort: 53, PublishMode: 'ingress' });
    web.Spec.Labels = { ...web.Spec.Labels, SERVICE_53_NAME: 'dns' };
    const d = derive(s, 'tasks').get(web.ID as string)!;
    const names = new Set(d.services.map((x) => `${x.name}/${x.protocol}`));
    expect(names).toEqual(new Set(['dns/udp', 'web-80/tcp']));
    const udp = d.services.filter((x) => x.protocol === 'udp');
    for (const x of udp) {
      expect(x.id.endsWith(':53:udp')).toBe(true);
      expect(x.tags).toContain('udp');
    }
  });

  it('SERVICE_NETWORK naming a network the service is not on warns and keeps the default choice', () => {
    const d = withLabels({ SERVICE_NETWORK: 'elsewhere' }, {});
    expect(d.services).toHaveLength(2);
    expect(d.warnings.map((w) => w.key)).toEqual(['SERVICE_NETWORK']);
    // --network naming a network it is not on: the default choice too.
    expect(of(snapshot, 'shop_web', 'tasks', { network: 'nope' }).services).toHaveLength(2);
  });
});

describe('deriveSwarmServices: vip mode', () => {
  it('one entry per service port at its virtual IP on the overlay', () => {
    const web = of(snapshot, 'shop_web', 'vip');
    const vip = (serviceNamed(snapshot, 'shop_web').Endpoint.VirtualIPs as Raw[]).find(
      (v) => !v.Addr.startsWith('10.234.'),
    )!;
    expect(endpoints(web)).toEqual(new Map([['swarm-c1:shop_web:80', `${vip.Addr.split('/')[0]}:80`]]));
    expect(web.services[0]!.container).toEqual({
      id: serviceNamed(snapshot, 'shop_web').ID,
      name: 'shop_web',
    });
    expect(endpoints(of(snapshot, 'internal', 'vip')).get('swarm-c1:internal:8080')).toMatch(/^10\.232\./);
  });

  it('needs no network list: the tasks name their networks (the socket proxy forwards no /networks)', () => {
    const bare = { ...snapshot, networks: undefined };
    expect(endpoints(of(bare, 'shop_web', 'vip'))).toEqual(endpoints(of(snapshot, 'shop_web', 'vip')));
    expect(endpoints(of(bare, 'shop_web', 'tasks'))).toEqual(endpoints(of(snapshot, 'shop_web', 'tasks')));
  });

  it('no VIP for DNS round robin; none while no task runs', () => {
    const rr = of(snapshot, 'rr', 'vip');
    expect(rr.services).toEqual([]);
    expect(rr.skipped.map((x) => x.reason)).toEqual(['no-vip']);
    expect(rr.skipped[0]!.detail).toContain('dnsrr');
    expect(of(snapshot, 'zero', 'vip').skipped.map((x) => x.reason)).toEqual(['no-running-task']);
    expect(of(snapshot, 'sick', 'vip').services).toEqual([]);
  });
});

describe('deriveSwarmServices: ingress mode', () => {
  it('one entry per ready node for a port of the routing mesh, at the node address', () => {
    const web = of(snapshot, 'shop_web', 'ingress');
    const nodes = snapshot.nodes as Raw[];
    expect(endpoints(web)).toEqual(
      new Map(nodes.map((n) => [`swarm-c1:shop_web.${n.ID}:8080`, `${n.Status.Addr}:8080`])),
    );
    for (const x of web.services) expect(x.containerPort).toBe(80);
    // A node that is down is not part of the mesh.
    const down = clone(snapshot);
    (down.nodes as Raw[])[1]!.Status.State = 'down';
    expect(of(down, 'shop_web', 'ingress').services).toHaveLength(1);
  });

  it('a port published in host mode: one entry per task, at its node', () => {
    const hostport = of(snapshot, 'hostport', 'ingress');
    const running = runningTasksOf(snapshot, 'hostport');
    expect(endpoints(hostport)).toEqual(
      new Map(
        running.map((t) => [
          `swarm-c1:hostport.${t.NodeID}.${t.ID}:9090`,
          `${nodeAddress(snapshot, t.NodeID)}:9090`,
        ]),
      ),
    );
  });

  it('skips ports that are not published, and mesh ports while no task runs', () => {
    expect(of(snapshot, 'internal', 'ingress').skipped.map((x) => x.reason)).toEqual(['not-published']);
    expect(of(snapshot, 'zero', 'ingress').skipped.map((x) => x.reason)).toEqual(['no-running-task']);
  });
});

describe('deriveSwarmServices: untrusted input', () => {
  it('never throws on garbage and names what it skipped', () => {
    const garbage: SwarmSnapshot = {
      services: [
        null,
        'x',
        42,
        { ID: 'a' },
        { ID: 'b', Spec: { Name: 'bad name!' } },
        { Spec: { Name: 'x' } },
      ],
      tasks: [null, { ServiceID: 'a', Status: 'running' }, 7],
      nodes: [null, { ID: 'n', Status: { State: 'ready', Addr: 'not-an-ip' } }],
      networks: ['y', { Id: 3 }],
    };
    for (const mode of ['tasks', 'vip', 'ingress'] as const) {
      const result = derive(garbage, mode);
      for (const d of result.values()) {
        expect(d.services).toEqual([]);
        expect(d.skipped.length).toBeGreaterThan(0);
      }
    }
  });
});

describe('deriveSwarmServices: nodes', () => {
  it('a task on a node that is down is not served, though Swarm still lists it running', () => {
    const down = clone(snapshot);
    const [first, second] = down.nodes as Raw[];
    second!.Status.State = 'down';
    const running = runningTasksOf(down, 'hostport');
    expect(running).toHaveLength(2);
    const served = of(down, 'hostport', 'tasks').services;
    expect(served.map((x) => x.container?.id)).toEqual(
      running.filter((t) => t.NodeID === first!.ID).map((t) => t.ID),
    );
  });
});
