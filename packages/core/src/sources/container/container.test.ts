// The Bridge through its public API only (createBridge, status, desired, explain, explainAll, resync, stop),
// driven by the synthetic engine into the in-memory registry: what the registry holds is what is asserted.
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Bridge } from '../../bridge.js';
import { createBridge, type BridgeOptions } from './index.js';
import { SIGTERM, signalNumber } from '../../signals.js';
import { MemoryRegistry, SyntheticDocker } from '../../testing/index.js';

const SIGHUP = signalNumber('SIGHUP')!;
const running: Bridge[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((bridge) => bridge.stop()));
});

function start(
  docker: SyntheticDocker,
  options: Partial<BridgeOptions> & { registry?: MemoryRegistry } = {},
) {
  const registry = options.registry ?? new MemoryRegistry({ nodeId: 'n1' });
  const bridge = createBridge({
    docker,
    registries: [registry],
    nodeId: 'n1',
    hostIp: '127.0.0.1',
    internal: false,
    tags: [],
    explicit: false,
    stallCheckMs: 0,
    backoff: { initialMs: 10, maxMs: 40, jitter: 0 },
    ...options,
  });
  running.push(bridge);
  return { bridge, registry };
}

/** Wait for what the registry holds; generous, the machine is shared. */
const eventually = (assertion: () => void) => vi.waitFor(assertion, { timeout: 10_000, interval: 10 });

describe('Bridge', () => {
  it('registers the containers already running when it starts, after a complete inventory', async () => {
    const docker = new SyntheticDocker();
    docker.add({ name: 'web-1', service: 'web' });
    docker.add({ name: 'api-1', service: 'api', ports: { '8080/tcp': 30001, '9090/tcp': 30002 } });
    const { bridge, registry } = start(docker);
    await eventually(() => expect(registry.ids()).toEqual(['n1:api-1:8080', 'n1:api-1:9090', 'n1:web-1:80']));
    expect(bridge.status()).toMatchObject({
      dockerConnected: true,
      inventoryComplete: true,
      containers: 2,
      services: 3,
      docker: { failing: 0, timeouts: 0 },
      unresolved: [],
      registries: [
        {
          backend: 'memory',
          writing: true,
          services: { registered: 3, pending: 0, retrying: 0, rejected: 0, withheld: 0 },
        },
      ],
    });
    expect([...bridge.desired().keys()].sort()).toEqual(registry.ids());
    const api = registry.services.get('n1:api-1:9090');
    expect(api).toMatchObject({
      // Several ports, one SERVICE_NAME: registrator's convention names each after its port.
      name: 'api-9090',
      address: '127.0.0.1',
      port: 30002,
      node: 'n1',
      health: 'passing',
    });
    expect(bridge.explainAll().map((c) => [c.name, c.verdict])).toEqual(
      expect.arrayContaining([
        ['web-1', 'registered'],
        ['api-1', 'registered'],
      ]),
    );
  });

  it("Podman's bare health_status: the bridge looks again, as Podman records the result after announcing it", async () => {
    const docker = new SyntheticDocker();
    const id = docker.add({ name: 'web-1', service: 'web' });
    docker.change(id, (info) => {
      info.State.Health = { Status: 'starting', FailingStreak: 0, Log: [] };
    });
    const { registry } = start(docker, {
      registry: new MemoryRegistry({ nodeId: 'n1', mirrorsHealth: true }),
    });
    await eventually(() => expect(registry.services.get('n1:web-1:80')?.health).toBe('warning'));
    // The event first, with no status in it; the recorded state changes only after the bridge's first look.
    const inspects = docker.inspects;
    docker.emit(id, 'health_status');
    await eventually(() => expect(docker.inspects).toBeGreaterThan(inspects));
    docker.change(id, (info) => {
      info.State.Health = { Status: 'healthy', FailingStreak: 0, Log: [] };
    });
    await eventually(() => expect(registry.services.get('n1:web-1:80')?.health).toBe('passing'));
  });

  it('follows events: start registers, die withdraws, a restart registers again, destroy withdraws', async () => {
    const docker = new SyntheticDocker();
    const { bridge, registry } = start(docker);
    await eventually(() => expect(bridge.status().inventoryComplete).toBe(true));

    const id = docker.start({ name: 'web-1', service: 'web' });
    await eventually(() => expect(registry.ids()).toEqual(['n1:web-1:80']));
    docker.exit(id, 0);
    await eventually(() => expect(registry.ids()).toEqual([]));
    expect(bridge.status().containers).toBe(0);
    docker.restart(id);
    await eventually(() => expect(registry.ids()).toEqual(['n1:web-1:80']));
    docker.remove(id);
    await eventually(() => expect(registry.ids()).toEqual([]));
    expect(bridge.explain('web-1')).toEqual({ kind: 'unknown' });
    expect(registry.calls.filter((c) => c.method !== 'list').map((c) => `${c.method} ${c.id}`)).toEqual([
      'register n1:web-1:80',
      'deregister n1:web-1:80',
      'register n1:web-1:80',
      'deregister n1:web-1:80',
    ]);
  });

  it('drains on SIGTERM: withdraws the services while the container still runs; other signals change nothing', async () => {
    const docker = new SyntheticDocker();
    const id = docker.add({ name: 'web-1', service: 'web', stopTimeout: 30 });
    const { bridge, registry } = start(docker, {
      registry: new MemoryRegistry({ nodeId: 'n1', mirrorsHealth: true }),
    });
    await eventually(() => expect(registry.services.get('n1:web-1:80')?.health).toBe('passing'));

    docker.kill(id, SIGHUP);
    docker.kill(id, SIGTERM);
    // A registry that mirrors health shows it critical, with why; etcd and ZooKeeper would drop it.
    await eventually(() => expect(registry.services.get('n1:web-1:80')?.health).toBe('critical'));
    expect(registry.services.get('n1:web-1:80')?.healthOutput).toBe(
      'draining: Docker sent SIGTERM to stop the container',
    );
    expect(bridge.desired().get('n1:web-1:80')?.health).toBe('critical');
    const lookup = bridge.explain('web-1');
    expect(lookup.kind === 'found' && lookup.report.container.draining).toBe('Docker sent SIGTERM');

    docker.exit(id, 143);
    await eventually(() => expect(registry.ids()).toEqual([]));
  });

  it('drains on SIGTERM in a registry of passing services only, and serves a container that outlives its stop timeout again', async () => {
    const docker = new SyntheticDocker();
    // StopTimeout 0: the drain window is the 1 s grace alone.
    const id = docker.add({ name: 'web-1', service: 'web', stopTimeout: 0 });
    const { registry } = start(docker);
    await eventually(() => expect(registry.ids()).toEqual(['n1:web-1:80']));
    docker.kill(id, SIGTERM);
    await eventually(() => expect(registry.ids()).toEqual([]));
    await eventually(() => expect(registry.ids()).toEqual(['n1:web-1:80']));
  });

  it('with drain off, SIGTERM changes nothing until the container exits', async () => {
    const docker = new SyntheticDocker();
    const id = docker.add({ name: 'web-1', service: 'web' });
    const { bridge, registry } = start(docker, { drain: false });
    await eventually(() => expect(registry.ids()).toEqual(['n1:web-1:80']));
    docker.kill(id, SIGTERM);
    const probe = docker.start({ name: 'probe', service: 'probe' });
    // The probe's registration shows the kill before it was handled too.
    await eventually(() => expect(registry.ids()).toContain('n1:probe:80'));
    expect(registry.ids()).toContain('n1:web-1:80');
    expect(bridge.desired().get('n1:web-1:80')?.health).toBe('passing');
    docker.exit(id, 0);
    docker.exit(probe, 0);
    await eventually(() => expect(registry.ids()).toEqual([]));
  });

  it('retries an inspect the engine failed, and registers the container once it answers', async () => {
    const docker = new SyntheticDocker();
    const { bridge, registry } = start(docker);
    await eventually(() => expect(bridge.status().inventoryComplete).toBe(true));
    docker.failInspects(3);
    docker.start({ name: 'web-1', service: 'web' });
    await eventually(() => expect(registry.ids()).toEqual(['n1:web-1:80']));
    expect(docker.inspects).toBeGreaterThanOrEqual(4);
  });

  it('two containers claiming one SERVICE_ID: the first keeps it, the second takes it over when the first leaves', async () => {
    const docker = new SyntheticDocker();
    const { bridge, registry } = start(docker);
    const first = docker.start({
      name: 'a',
      labels: { SERVICE_NAME: 'web', SERVICE_ID: 'shared' },
      ports: { '80/tcp': 30001 },
    });
    await eventually(() => expect(registry.ids()).toEqual(['n1:shared:80']));
    docker.start({
      name: 'b',
      labels: { SERVICE_NAME: 'web', SERVICE_ID: 'shared' },
      ports: { '80/tcp': 30002 },
    });
    await eventually(() => expect(bridge.status().containers).toBe(2));
    expect(bridge.status().services).toBe(1);
    expect(registry.services.get('n1:shared:80')?.container?.name).toBe('a');
    const b = bridge.explain('b');
    expect(b.kind === 'found' && JSON.stringify(b.report)).toContain(
      'service id n1:shared:80 is already taken by container a',
    );

    docker.exit(first, 0);
    await eventually(() => expect(registry.services.get('n1:shared:80')?.container?.name).toBe('b'));
    expect(registry.services.get('n1:shared:80')?.port).toBe(30002);
  });

  it('an inventory that misses a tracked container does not wipe it: the container is looked at, not dropped', async () => {
    const docker = new SyntheticDocker();
    const id = docker.add({ name: 'web-1', service: 'web' });
    const { bridge, registry } = start(docker);
    await eventually(() => expect(registry.ids()).toEqual(['n1:web-1:80']));
    docker.hideFromList(id);
    // Changed behind the bridge's back: the new tag shows that the resync looked at the container itself.
    docker.setTags(id, 'seen');
    bridge.resync();
    await eventually(() => expect(registry.services.get('n1:web-1:80')?.tags).toEqual(['seen']));
    expect(bridge.status().containers).toBe(1);
    expect(registry.calls.filter((c) => c.method === 'deregister')).toEqual([]);

    // Once Docker itself says it stopped, it goes.
    docker.exit(id, 0);
    await eventually(() => expect(registry.ids()).toEqual([]));
  });

  it('--deregister on-success keeps the services of a container that failed, and drops one that exited 0', async () => {
    const docker = new SyntheticDocker();
    const failed = docker.add({ name: 'failed', service: 'web' });
    const done = docker.add({ name: 'done', service: 'web' });
    const { bridge, registry } = start(docker, { deregister: 'on-success' });
    await eventually(() => expect(registry.ids()).toEqual(['n1:done:80', 'n1:failed:80']));
    docker.exit(failed, 3);
    docker.exit(done, 0);
    await eventually(() => expect(registry.ids()).toEqual(['n1:failed:80']));
    const lookup = bridge.explain('failed');
    expect(lookup.kind === 'found' && lookup.report.reasons).toContainEqual({
      code: 'not-running',
      text: 'container exited (exit code 3); its services are kept because of --deregister on-success',
    });

    // Removing the container ends it.
    docker.remove(failed);
    await eventually(() => expect(registry.ids()).toEqual([]));
  });

  it('re-registers everything after the registry lost its liveness, and retries failed writes', async () => {
    const docker = new SyntheticDocker();
    docker.add({ name: 'a', service: 'web' });
    docker.add({ name: 'b', service: 'web' });
    const registry = new MemoryRegistry({ nodeId: 'n1' });
    registry.failWrites(2);
    start(docker, { registry });
    await eventually(() => expect(registry.ids()).toEqual(['n1:a:80', 'n1:b:80']));
    expect(registry.calls.filter((c) => c.error !== undefined)).toHaveLength(2);

    registry.loseLiveness('lease expired');
    expect(registry.ids()).toEqual([]);
    await eventually(() => expect(registry.ids()).toEqual(['n1:a:80', 'n1:b:80']));
  });

  it('retries a failed write as soon as the registry reports it recovered, not after its backoff', async () => {
    const docker = new SyntheticDocker();
    docker.add({ name: 'a', service: 'web' });
    const registry = new MemoryRegistry({ nodeId: 'n1' });
    registry.down = true;
    // A backoff far longer than the test: only the recovery can bring the retry.
    const { bridge } = start(docker, {
      registry,
      backoff: { initialMs: 600_000, maxMs: 600_000, jitter: 0 },
    });
    await eventually(() => expect(bridge.status().registries[0]?.services.retrying).toBe(1));
    registry.down = false;
    registry.recovered();
    await eventually(() => expect(registry.ids()).toEqual(['n1:a:80']));
  });

  it('removes entries of an earlier run that no container claims once the inventory is complete, without --cleanup', async () => {
    const docker = new SyntheticDocker();
    docker.add({ name: 'a', service: 'web' });
    const registry = new MemoryRegistry({ nodeId: 'n1' });
    registry.entries.set('n1:gone:80', { id: 'n1:gone:80', name: 'web', fingerprint: 'earlier run' });
    start(docker, { registry });
    await eventually(() => expect(registry.ids()).toEqual(['n1:a:80']));
  });

  it('stop: closes every registry, removing its entries only when asked to', async () => {
    const docker = new SyntheticDocker();
    docker.add({ name: 'a', service: 'web' });
    const { bridge, registry } = start(docker);
    await eventually(() => expect(registry.ids()).toEqual(['n1:a:80']));
    await bridge.stop();
    expect(registry.closed).toBe(true);
    expect(registry.calls.at(-1)).toEqual({ method: 'close', deregister: false });
    expect(registry.ids()).toEqual(['n1:a:80']);

    const again = start(docker, { registry });
    await eventually(() => expect(again.bridge.status().inventoryComplete).toBe(true));
    await again.bridge.stop({ deregister: true });
    expect(registry.calls.at(-1)).toEqual({ method: 'close', deregister: true });
    expect(registry.ids()).toEqual([]);
    // Stopped: later events reach nobody.
    docker.start({ name: 'late', service: 'web' });
    expect(docker.openStreams).toBe(0);
  });

  it('explain: by name, full id or id prefix; an unknown or ambiguous reference says so', async () => {
    const docker = new SyntheticDocker();
    const id = docker.add({ name: 'web-1', service: 'web' });
    docker.add({ name: 'web-2', service: 'web' });
    const { bridge, registry } = start(docker);
    await eventually(() => expect(registry.ids()).toHaveLength(2));
    for (const ref of ['web-1', id, id.slice(0, 12)]) {
      const lookup = bridge.explain(ref);
      expect(lookup.kind === 'found' && lookup.report.container).toMatchObject({ id, name: 'web-1' });
    }
    expect(bridge.explain('nothing-like-it')).toEqual({ kind: 'unknown' });
    // Both synthetic ids begin with zeros.
    expect(bridge.explain('0000').kind).toBe('ambiguous');
  });

  it('bounds every inspect: hung ones are abandoned and retried in a lane of their own, a new container is registered meanwhile', async () => {
    const docker = new SyntheticDocker();
    const hung = Array.from({ length: 20 }, (_, i) => docker.add({ name: `hung-${i}`, service: 'web' }));
    for (const id of hung) docker.hangInspects.add(id);
    const { bridge, registry } = start(docker, { dockerTimeoutMs: 100 });
    docker.start({ name: 'new', service: 'web' });
    await eventually(() => expect(registry.ids()).toEqual(['n1:new:80']));
    // After three failed attempts each, the hung containers no longer hold back the inventory.
    await eventually(() => expect(bridge.status().inventoryComplete).toBe(true));
    const status = bridge.status();
    expect(status.unresolved.map((u) => u.id).sort()).toEqual([...hung].sort());
    expect(status.unresolved[0]!.error).toMatch(/did not answer within 100 ms/);
    expect(status.docker.timeouts).toBeGreaterThanOrEqual(60);
    // Never more than the retry lane's four at once.
    expect(docker.heldRequests).toBeLessThanOrEqual(4);
  });

  it('a container that cannot be inspected keeps its entries; once inspected it is served, and removed when it goes', async () => {
    const docker = new SyntheticDocker();
    const broken = docker.add({ name: 'broken', service: 'web' });
    docker.brokenInspects.add(broken);
    const registry = new MemoryRegistry({ nodeId: 'n1' });
    registry.entries.set('n1:broken:80', { id: 'n1:broken:80', name: 'web', fingerprint: 'earlier run' });
    registry.entries.set('n1:gone:80', { id: 'n1:gone:80', name: 'web', fingerprint: 'earlier run' });
    const { bridge } = start(docker, { registry });
    // The inventory completes without it: the entry of a container that no longer runs goes, its own stays.
    await eventually(() => expect(registry.ids()).toEqual(['n1:broken:80']));
    expect(bridge.status()).toMatchObject({ inventoryComplete: true, unresolved: [{ id: broken }] });
    docker.brokenInspects.delete(broken);
    await eventually(() => expect(registry.services.get('n1:broken:80')?.container?.id).toBe(broken));
    expect(bridge.status().unresolved).toEqual([]);
    docker.exit(broken, 0);
    await eventually(() => expect(registry.ids()).toEqual([]));
  });

  it('an empty first container list is confirmed by a second one before anything adopted is removed', async () => {
    const docker = new SyntheticDocker();
    const a = docker.add({ name: 'a', service: 'web' });
    const registry = new MemoryRegistry({ nodeId: 'n1' });
    const adopted = { id: 'n1:a:80', name: 'web', fingerprint: 'earlier run' };
    registry.entries.set(adopted.id, adopted);
    // The first list misses it (an engine or proxy answering wrong), the next does not.
    docker.hideFromList(a);
    const list = docker.listContainers.bind(docker);
    docker.listContainers = (options) => list(options).finally(() => docker.hideFromList(a, false));
    const { bridge } = start(docker, { registry });
    await eventually(() => expect(bridge.status().inventoryComplete).toBe(true));
    await eventually(() => expect(registry.services.get('n1:a:80')?.container?.id).toBe(a));
    expect(registry.calls.filter((c) => c.method === 'deregister')).toEqual([]);
  });
});

describe('Bridge on a fake clock', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('labels only: a start-up crowd is answered by lists, unless the engine’s lists say too little (listAnswers: false)', async () => {
    for (const listAnswers of [true, false]) {
      const docker = new SyntheticDocker();
      for (let i = 0; i < 200; i++) docker.add({ name: `crowd-${i}`, service: 'crowd' });
      const { registry, bridge } = start(docker, { labelsOnly: true, listAnswers });
      await eventually(() => expect(registry.ids()).toHaveLength(200));
      if (listAnswers) expect(docker.inspects).toBeLessThanOrEqual(16);
      else expect(docker.inspects).toBe(200);
      await bridge.stop();
    }
  });

  it('labels only: a container answered from a list keeps the stop signal its inspect said', async () => {
    const docker = new SyntheticDocker();
    const { registry } = start(docker, { labelsOnly: true });
    const quit = signalNumber('SIGQUIT')!;
    const id = docker.start({ name: 'q', service: 'q', stopSignal: 'SIGQUIT' });
    await eventually(() => expect(registry.ids()).toEqual(['n1:q:80']));
    // From now on only a list can answer for it: an event of its own amid a crowd of starts.
    docker.hangInspects.add(id);
    docker.setTags(id, 'listed');
    for (let i = 0; i < 100; i++) {
      docker.start({ name: `crowd-${i}`, service: 'crowd' });
      if (i === 40) docker.emit(id, 'start');
    }
    await eventually(() => expect(registry.services.get('n1:q:80')?.tags).toEqual(['listed']));
    expect(docker.heldRequests).toBe(0);
    // `docker stop` of a SIGQUIT container: withdrawn at the signal, though the list did not say it.
    docker.kill(id, quit);
    await eventually(() => expect(registry.ids()).not.toContain('n1:q:80'));
    await eventually(() => expect(registry.ids()).toHaveLength(100));
  });

  it('StopTimeout -1 (Docker waits indefinitely): a stopping container stays withdrawn until it exits', async () => {
    const docker = new SyntheticDocker();
    const id = docker.add({ name: 'web-1', service: 'web', stopTimeout: -1 });
    const { registry } = start(docker);
    await eventually(() => expect(registry.ids()).toEqual(['n1:web-1:80']));
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    docker.kill(id, SIGTERM);
    await vi.advanceTimersByTimeAsync(50);
    expect(registry.ids()).toEqual([]);
    // An hour on (a window of 0 ms served it again at once; 10 s would after 11 s): still withdrawn.
    await vi.advanceTimersByTimeAsync(3_600_000);
    expect(registry.ids()).toEqual([]);
    vi.useRealTimers();
    docker.exit(id, 0);
    await eventually(() => expect(registry.ids()).toEqual([]));
    expect(registry.calls.filter((c) => c.method === 'register')).toHaveLength(1);
  });
});
