import { Subject } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { RegistryConnectionError, RegistryRejectedError } from './errors.js';
import { silentLogger } from './logger.js';
import { Reconciler } from './reconciler.js';
import type { LivenessLoss, Registry, RegistryEntry } from './registry.js';
import type { Service } from './service.js';

/** A registry held in a Map: enough to observe what the reconciler writes, and to make writes fail. */
class MapRegistry implements Registry {
  readonly backend = 'memory';
  readonly target = 'memory://';
  readonly nodeId = 'n1';
  readonly lost$ = new Subject<LivenessLoss>();
  readonly stored = new Map<string, RegistryEntry>();
  writes = 0;
  failNext = 0;
  reject = new Set<string>();
  epoch = 1;
  constructor(readonly mirrorsHealth = false) {}
  fingerprint(s: Service) {
    return `${this.epoch}|${s.address}:${s.port}|${s.health}`;
  }
  async register(s: Service) {
    this.writes++;
    if (this.failNext > 0 && this.failNext--) throw new RegistryConnectionError('down', 'memory');
    if (this.reject.has(s.id)) throw new RegistryRejectedError('no', 'memory');
    this.stored.set(s.id, { id: s.id, name: s.name, fingerprint: this.fingerprint(s) });
    return Promise.resolve();
  }
  async deregister(id: string) {
    this.writes++;
    this.stored.delete(id);
    return Promise.resolve();
  }
  list() {
    return Promise.resolve([...this.stored.values()]);
  }
  close() {
    return Promise.resolve();
  }
}

const service = (id: string, health: Service['health'] = 'passing'): Service => ({
  id,
  name: 'web',
  address: '10.0.0.1',
  port: 80,
  protocol: 'tcp',
  containerPort: 80,
  tags: [],
  meta: {},
  node: 'n1',
  container: { id, name: id },
  health,
  healthOutput: '',
  checks: {},
});

function setup(registry: MapRegistry, options: { cleanup?: boolean; inventory?: boolean } = {}) {
  let desired = new Map<string, Service>();
  let inventory = options.inventory ?? true;
  const reconciler = new Reconciler({
    registry,
    desired: () => desired,
    inventoryComplete: () => inventory,
    cleanup: options.cleanup ?? false,
    logger: silentLogger,
    backoff: { initialMs: 5, maxMs: 20, jitter: 0 },
  });
  return {
    reconciler,
    set(...services: Service[]) {
      desired = new Map(services.map((s) => [s.id, s]));
      reconciler.poke();
    },
    finishInventory() {
      inventory = true;
    },
  };
}

const settle = async (registry: MapRegistry, predicate: () => boolean) => {
  for (let i = 0; i < 400 && !predicate(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(predicate()).toBe(true);
  return registry;
};

describe('Reconciler', () => {
  it('writes each change once and nothing on a resync when the registry matches', async () => {
    const registry = new MapRegistry();
    const { reconciler, set } = setup(registry);
    set(...Array.from({ length: 100 }, (_, i) => service(`n1:c${i}:80`)));
    await settle(registry, () => registry.stored.size === 100);
    await reconciler.stop();
    expect(registry.writes).toBe(100);

    const again = setup(registry);
    again.set(...Array.from({ length: 100 }, (_, i) => service(`n1:c${i}:80`)));
    again.reconciler.resync();
    await again.reconciler.stop();
    expect(registry.writes).toBe(100);
  });

  it('retries failed writes with backoff until they succeed', async () => {
    const registry = new MapRegistry();
    registry.failNext = 3;
    const { set } = setup(registry);
    set(service('n1:a:80'));
    await settle(registry, () => registry.stored.has('n1:a:80'));
    expect(registry.writes).toBe(4);
  });

  it('does not retry a registration the registry rejected until the service changes', async () => {
    const registry = new MapRegistry();
    registry.reject.add('n1:bad:80');
    const { reconciler, set } = setup(registry);
    set(service('n1:bad:80'), service('n1:ok:80'));
    await settle(registry, () => registry.stored.has('n1:ok:80'));
    reconciler.resync();
    await reconciler.stop();
    expect(registry.writes).toBe(2);
  });

  it('re-registers everything after the adapter lost its lease', async () => {
    const registry = new MapRegistry();
    const { reconciler, set } = setup(registry);
    set(service('n1:a:80'), service('n1:b:80'));
    await settle(registry, () => registry.stored.size === 2);
    registry.stored.clear();
    registry.epoch++;
    reconciler.lost('lease expired');
    await settle(registry, () => registry.stored.size === 2);
  });

  it('only holds passing services in a registry that does not mirror health', async () => {
    const registry = new MapRegistry(false);
    const { set } = setup(registry);
    set(service('n1:a:80', 'critical'), service('n1:b:80', 'passing'));
    await settle(registry, () => registry.stored.size === 1);
    expect([...registry.stored.keys()]).toEqual(['n1:b:80']);

    const consul = new MapRegistry(true);
    setup(consul).set(service('n1:a:80', 'critical'));
    await settle(consul, () => consul.stored.size === 1);
  });

  it('leaves entries of an earlier run alone unless --cleanup, and then only after the inventory', async () => {
    const registry = new MapRegistry();
    registry.stored.set('n1:old:80', { id: 'n1:old:80', name: 'web', fingerprint: 'x' });
    const keep = setup(registry);
    keep.set();
    await keep.reconciler.stop();
    expect(registry.stored.has('n1:old:80')).toBe(true);

    const clean = setup(registry, { cleanup: true, inventory: false });
    clean.set();
    await clean.reconciler.settled();
    expect(registry.stored.has('n1:old:80')).toBe(true);
    clean.finishInventory();
    clean.reconciler.poke();
    await settle(registry, () => !registry.stored.has('n1:old:80'));
  });

  it('removes what it registered itself when the service goes away', async () => {
    const registry = new MapRegistry();
    const { set } = setup(registry, { inventory: false });
    set(service('n1:a:80'));
    await settle(registry, () => registry.stored.size === 1);
    set();
    await settle(registry, () => registry.stored.size === 0);
  });
});
