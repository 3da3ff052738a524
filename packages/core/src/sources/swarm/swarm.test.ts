/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-argument -- tests edit raw engine JSON */
import { readFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { BehaviorSubject, EMPTY, Subject } from 'rxjs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Leadership, LivenessLoss, Registry, RegistryEntry } from '../../registry.js';
import type { Service } from '../../service.js';
import type { Bridge } from '../../bridge.js';
import { createSwarmBridge } from './index.js';
import { deriveSwarmServices, isTaskServed, type SwarmSnapshot } from './derive.js';
import { swarmEventLook, type SwarmDockerApi } from './events.js';

type Raw = Record<string, any>;
const fixture = JSON.parse(
  readFileSync(new URL('../../fixtures/swarm-snapshot.json', import.meta.url), 'utf8'),
) as SwarmSnapshot;

/** A registry in a Map, to see what the bridge leaves stored. */
class MapRegistry implements Registry {
  readonly backend = 'memory';
  readonly target = 'memory://';
  readonly nodeId = 'swarm-c1';
  readonly mirrorsHealth = false;
  readonly lost$ = new Subject<LivenessLoss>();
  readonly events$ = EMPTY;
  readonly stored = new Map<string, Service>();
  writes = 0;
  fingerprint(s: Service) {
    return `${s.address}:${s.port}`;
  }
  register(s: Service) {
    this.writes++;
    this.stored.set(s.id, s);
    return Promise.resolve();
  }
  deregister(id: string) {
    this.writes++;
    this.stored.delete(id);
    return Promise.resolve();
  }
  list(): Promise<RegistryEntry[]> {
    return Promise.resolve(
      [...this.stored.values()].map((s) => ({ id: s.id, name: s.name, fingerprint: this.fingerprint(s) })),
    );
  }
  close() {
    return Promise.resolve();
  }
}

/** A manager's API over a snapshot the test edits; counts the task lists per service. */
class FakeManager implements SwarmDockerApi {
  snapshot: SwarmSnapshot = structuredClone(fixture);
  readonly events = new PassThrough();
  readonly taskLists = new Map<string, number>();
  /** Each list takes this long, so that looks arrive while one is in flight. */
  latencyMs = 20;
  /** Lists of the whole cluster take this long instead (set to make an inventory outlast a service list). */
  inventoryLatencyMs: number | undefined;
  /** Lists of the whole cluster answered so far. */
  slowAnswers = 0;
  /** What the engine saw when asked, answered after the latency. */
  private async later<T>(value: T, slow = false): Promise<T> {
    const answer = structuredClone(value);
    const ms = slow ? (this.inventoryLatencyMs ?? this.latencyMs) : this.latencyMs;
    await new Promise((resolve) => setTimeout(resolve, ms));
    if (slow) this.slowAnswers++;
    return answer;
  }
  getEvents() {
    return Promise.resolve(this.events);
  }
  listServices(options?: { filters?: Record<string, string[]> }) {
    const ids = options?.filters?.id;
    const all = this.snapshot.services as Raw[];
    if (ids === undefined) return this.later(all, true);
    return this.later(all.filter((s) => ids.some((id) => s.ID.startsWith(id))));
  }
  listTasks(options?: { filters?: Record<string, string[]> }) {
    const service = options?.filters?.service?.[0] ?? '*';
    this.taskLists.set(service, (this.taskLists.get(service) ?? 0) + 1);
    const desired = options?.filters?.['desired-state'];
    return this.later(
      (this.snapshot.tasks as Raw[]).filter(
        (t) =>
          (service === '*' || t.ServiceID === service) &&
          (desired === undefined || desired.includes(t.DesiredState)),
      ),
      service === '*',
    );
  }
  listNodes() {
    return this.later([...this.snapshot.nodes], true);
  }
  emit(event: object) {
    this.events.write(`${JSON.stringify(event)}\n`);
  }
  serviceId(name: string): string {
    return (this.snapshot.services as Raw[]).find((s) => s.Spec.Name === name)!.ID as string;
  }
}

const OPTIONS = { nodeId: 'swarm-c1', mode: 'tasks', tags: [], explicit: false } as const;
/** What the registry must hold for `snapshot`: every derived entry's id and endpoint. */
const expected = (snapshot: SwarmSnapshot) =>
  new Map(
    [...deriveSwarmServices(snapshot, OPTIONS).values()]
      .flatMap((d) => d.services)
      .map((s) => [s.id, `${s.address}:${s.port}`]),
  );
const held = (registry: MapRegistry) =>
  new Map([...registry.stored.values()].map((s) => [s.id, `${s.address}:${s.port}`]));

let bridge: Bridge | undefined;
afterEach(async () => {
  await bridge?.stop();
  bridge = undefined;
});

function start(manager: FakeManager, registry: MapRegistry) {
  bridge = createSwarmBridge({
    ...OPTIONS,
    docker: manager,
    registries: [registry],
    pollMs: 0,
    backoff: { initialMs: 10, maxMs: 50, jitter: 0 },
  });
  return bridge;
}

describe('SwarmBridge', () => {
  it('registers exactly the running tasks, and follows scale-down and removal from service events', async () => {
    const manager = new FakeManager();
    const registry = new MapRegistry();
    start(manager, registry);
    const all = expected(manager.snapshot);
    expect(all.size).toBeGreaterThan(4);
    await vi.waitFor(() => expect(held(registry)).toEqual(all));

    // shop_web scaled to 1: Swarm shuts one task down.
    const webId = manager.serviceId('shop_web');
    const webTask = (manager.snapshot.tasks as Raw[]).find((t) => t.ServiceID === webId && isTaskServed(t))!;
    webTask.DesiredState = 'shutdown';
    manager.emit({ Type: 'service', Action: 'update', Actor: { ID: webId } });
    await vi.waitFor(() => expect(held(registry)).toEqual(expected(manager.snapshot)));
    expect(held(registry).size).toBe(all.size - 1);

    // internal removed: its service and tasks are gone.
    const internalId = manager.serviceId('internal');
    const snapshot = manager.snapshot as unknown as { services: Raw[]; tasks: Raw[] };
    snapshot.services = snapshot.services.filter((s) => s.ID !== internalId);
    snapshot.tasks = snapshot.tasks.filter((t) => t.ServiceID !== internalId);
    manager.emit({ Type: 'service', Action: 'remove', Actor: { ID: internalId } });
    await vi.waitFor(() => expect(held(registry)).toEqual(expected(manager.snapshot)));
    expect([...held(registry).keys()].some((id) => id.includes(':internal.'))).toBe(false);
    expect(bridge!.status()).toMatchObject({ dockerConnected: true, inventoryComplete: true });
  });

  it('a burst of task container events re-lists that service once or twice, not once per event', async () => {
    const manager = new FakeManager();
    const registry = new MapRegistry();
    start(manager, registry);
    await vi.waitFor(() => expect(held(registry)).toEqual(expected(manager.snapshot)));
    const webId = manager.serviceId('shop_web');
    const writes = registry.writes;
    for (let i = 0; i < 100; i++) {
      manager.emit({
        Type: 'container',
        Action: i % 2 === 0 ? 'start' : 'die',
        Actor: { ID: `c${i}`, Attributes: { 'com.docker.swarm.service.id': webId } },
      });
    }
    await vi.waitFor(() => expect(manager.taskLists.get(webId)).toBeGreaterThanOrEqual(1));
    await new Promise((resolve) => setTimeout(resolve, 5 * manager.latencyMs));
    expect(manager.taskLists.get(webId)).toBeLessThanOrEqual(2);
    // Nothing changed: nothing written.
    expect(registry.writes).toBe(writes);
  });

  it('looks again at a service whose new tasks are still starting, until they run', async () => {
    const manager = new FakeManager();
    const registry = new MapRegistry();
    start(manager, registry);
    await vi.waitFor(() => expect(held(registry)).toEqual(expected(manager.snapshot)));
    // Scaled up: a new task is created `starting`, and no event says when it runs.
    const webId = manager.serviceId('shop_web');
    const template = (manager.snapshot.tasks as Raw[]).find((t) => t.ServiceID === webId && isTaskServed(t))!;
    const added = structuredClone(template);
    added.ID = 'newtask0000000000000000001';
    added.Slot = 3;
    added.Status.State = 'starting';
    (manager.snapshot.tasks as Raw[]).push(added);
    manager.emit({ Type: 'service', Action: 'update', Actor: { ID: webId } });
    await vi.waitFor(() => expect(manager.taskLists.get(webId)).toBeGreaterThanOrEqual(2));
    expect([...held(registry).keys()].some((id) => id.includes(added.ID))).toBe(false);
    added.Status.State = 'running';
    // Follow-ups back off from 500 ms: the second comes a second after the first.
    await vi.waitFor(
      () => expect([...held(registry).keys()].some((id) => id.includes(added.ID as string))).toBe(true),
      { timeout: 5_000 },
    );
  });
});

describe('SwarmBridge: after an event', () => {
  it('looks once more shortly after a service event: Swarm acts on a new spec just after announcing it', async () => {
    const manager = new FakeManager();
    const registry = new MapRegistry();
    start(manager, registry);
    await vi.waitFor(() => expect(held(registry)).toEqual(expected(manager.snapshot)));
    const webId = manager.serviceId('shop_web');
    const task = (manager.snapshot.tasks as Raw[]).find((t) => t.ServiceID === webId && isTaskServed(t))!;
    // Scaled down: the event first, the task's new desired state a moment later, and no event for that.
    manager.emit({ Type: 'service', Action: 'update', Actor: { ID: webId } });
    await vi.waitFor(() => expect(manager.taskLists.get(webId)).toBe(1));
    task.DesiredState = 'shutdown';
    await vi.waitFor(
      () => expect([...held(registry).keys()].some((id) => id.includes(task.ID as string))).toBe(false),
      { timeout: 3_000 },
    );
    expect(held(registry)).toEqual(expected(manager.snapshot));
  });
});

describe('SwarmBridge: ordering', () => {
  it('an inventory that began before a service list never brings back what that list removed', async () => {
    const manager = new FakeManager();
    const registry = new MapRegistry();
    const swarm = start(manager, registry);
    await vi.waitFor(() => expect(held(registry)).toEqual(expected(manager.snapshot)));
    const webId = manager.serviceId('shop_web');
    const task = (manager.snapshot.tasks as Raw[]).find((t) => t.ServiceID === webId && isTaskServed(t))!;
    const taskEntry = () => [...held(registry).keys()].some((id) => id.includes(task.ID as string));
    expect(taskEntry()).toBe(true);
    // A slow inventory starts while the task still runs; the task stops; its service is listed (fast).
    manager.inventoryLatencyMs = 300;
    swarm.resync();
    await new Promise((resolve) => setTimeout(resolve, 10));
    task.DesiredState = 'shutdown';
    manager.emit({ Type: 'service', Action: 'update', Actor: { ID: webId } });
    await vi.waitFor(() => expect(taskEntry()).toBe(false));
    // The inventory answers with what it saw before, the task running: it must not count.
    const answered = manager.slowAnswers;
    await vi.waitFor(() => expect(manager.slowAnswers).toBe(answered + 3), { timeout: 2_000 });
    // Let the answers reach the bridge (promise callbacks), then look at what it wants.
    await new Promise((resolve) => setImmediate(resolve));
    expect([...swarm.desired().keys()].some((id) => id.includes(task.ID as string))).toBe(false);
    expect(taskEntry()).toBe(false);
  });
});

describe('swarmEventLook', () => {
  const events = JSON.parse(
    readFileSync(new URL('../../fixtures/swarm-events.json', import.meta.url), 'utf8'),
  ) as Raw[];

  it('maps the events a real manager sent: services by id, nodes, and its own task containers by service', () => {
    const looks = events.map((e) => swarmEventLook(e));
    const services = new Set((fixture.services as Raw[]).map((s) => s.ID as string));
    events.forEach((event, i) => {
      const look = looks[i];
      if (event.Type === 'service') expect(look).toEqual({ kind: 'service', id: event.Actor.ID });
      else if (event.Type === 'node') expect(look).toEqual({ kind: 'nodes' });
      else if (event.Type === 'container') {
        const serviceId = event.Actor.Attributes['com.docker.swarm.service.id'] as string | undefined;
        expect(look).toEqual(serviceId === undefined ? undefined : { kind: 'service', id: serviceId });
      }
    });
    // Every container event the capture saw was of a task, of a service of the snapshot.
    const containerLooks = looks.filter((l, i) => events[i]!.Type === 'container' && l !== undefined);
    expect(containerLooks.length).toBeGreaterThan(0);
    for (const look of containerLooks) expect(services.has((look as { id: string }).id)).toBe(true);
  });
});

/** A MapRegistry whose election the test decides. */
class ElectingRegistry extends MapRegistry {
  readonly leading = new BehaviorSubject(false);
  closed = 0;
  elect(): Leadership {
    return {
      leading$: this.leading.asObservable(),
      close: () => {
        this.closed++;
        return Promise.resolve();
      },
    };
  }
}

describe('SwarmBridge with an election', () => {
  it('writes nothing until elected, then converges; stops writing when another manager is elected', async () => {
    const manager = new FakeManager();
    const registry = new ElectingRegistry();
    bridge = createSwarmBridge({
      ...OPTIONS,
      docker: manager,
      registries: [registry],
      pollMs: 0,
      elect: { candidate: 'm1' },
    });
    await vi.waitFor(() => expect(bridge!.status().inventoryComplete).toBe(true));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(registry.writes).toBe(0);
    expect(bridge.leading()).toEqual([{ target: 'memory://', leading: false }]);

    registry.leading.next(true);
    await vi.waitFor(() => expect(held(registry)).toEqual(expected(manager.snapshot)));
    expect(bridge.leading()).toEqual([{ target: 'memory://', leading: true }]);

    // Another manager writes now: a removed service stays as it is here.
    registry.leading.next(false);
    const writes = registry.writes;
    const internalId = manager.serviceId('internal');
    const snapshot = manager.snapshot as unknown as { services: Raw[]; tasks: Raw[] };
    snapshot.services = snapshot.services.filter((s) => s.ID !== internalId);
    snapshot.tasks = snapshot.tasks.filter((t) => t.ServiceID !== internalId);
    manager.emit({ Type: 'service', Action: 'remove', Actor: { ID: internalId } });
    // This manager sees the removal (its desired set shrinks) but leaves the registry to the writer.
    await vi.waitFor(() => expect(bridge!.desired().size).toBe(expected(manager.snapshot).size));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(registry.writes).toBe(writes);
    expect(held(registry).size).toBeGreaterThan(expected(manager.snapshot).size);

    // Elected again: what changed meanwhile is converged, and on stop it resigns without deregistering.
    registry.leading.next(true);
    await vi.waitFor(() => expect(held(registry)).toEqual(expected(manager.snapshot)));
    const stored = held(registry).size;
    await bridge.stop({ deregister: true });
    bridge = undefined;
    expect(registry.closed).toBe(1);
    expect(held(registry).size).toBe(stored);
  });
});
