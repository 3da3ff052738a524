import { describe, expect, it } from 'vitest';
import { NodeIdConflictError, RegistryConnectionError } from './errors.js';
import type { BackoffOptions } from './backoff.js';
import { silentLogger, type Logger } from './logger.js';
import { Reconciler } from './reconciler.js';
import type { RegistryWrite, RegistryWriteResult } from './registry.js';
import type { Service } from './service.js';
import { capturingLogger, MemoryRegistry, service } from './testing/index.js';

function setup(
  registry: MemoryRegistry,
  options: {
    inventory?: boolean;
    keep?: (id: string) => boolean;
    logger?: Logger;
    refusalBackoff?: BackoffOptions;
  } = {},
) {
  let desired = new Map<string, Service>();
  let inventory = options.inventory ?? true;
  const reconciler = new Reconciler({
    registry,
    desired: () => desired,
    inventoryComplete: () => inventory,
    ...(options.keep && { keep: options.keep }),
    logger: options.logger ?? silentLogger,
    backoff: { initialMs: 5, maxMs: 20, jitter: 0 },
    refusalBackoff: options.refusalBackoff ?? { initialMs: 60_000, maxMs: 60_000, jitter: 0 },
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

const settle = async (registry: MemoryRegistry, predicate: () => boolean) => {
  for (let i = 0; i < 400 && !predicate(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(predicate()).toBe(true);
  return registry;
};

describe('Reconciler', () => {
  it('writes each change once and nothing on a resync when the registry matches', async () => {
    const registry = new MemoryRegistry();
    const { reconciler, set } = setup(registry);
    set(...Array.from({ length: 100 }, (_, i) => service({ id: `n1:c${i}:80` })));
    await settle(registry, () => registry.entries.size === 100);
    await reconciler.stop();
    expect(registry.writes).toBe(100);

    const again = setup(registry);
    again.set(...Array.from({ length: 100 }, (_, i) => service({ id: `n1:c${i}:80` })));
    again.reconciler.resync();
    await again.reconciler.stop();
    expect(registry.writes).toBe(100);
  });

  it('retries failed writes with backoff until they succeed', async () => {
    const registry = new MemoryRegistry();
    registry.failWrites(3);
    const { set } = setup(registry);
    set(service({ id: 'n1:a:80' }));
    await settle(registry, () => registry.entries.has('n1:a:80'));
    expect(registry.writes).toBe(4);
  });

  it('offers a refused registration again on every resync, and not in between until its backoff', async () => {
    const registry = new MemoryRegistry();
    registry.rejected.add('n1:bad:80');
    const { reconciler, set } = setup(registry);
    set(service({ id: 'n1:bad:80' }), service({ id: 'n1:ok:80' }));
    await settle(registry, () => registry.entries.has('n1:ok:80'));
    await reconciler.settled();
    expect(registry.writes).toBe(2);
    // A pass for another reason does not offer it again before its time (60 s here).
    reconciler.changed(['n1:bad:80']);
    await reconciler.settled();
    expect(registry.writes).toBe(2);
    reconciler.resync();
    await reconciler.settled();
    expect(registry.writes).toBe(3);
    expect(reconciler.stateOf('n1:bad:80', service({ id: 'n1:bad:80' })).state).toBe('rejected');
    // The permission is fixed: the next resync registers it, no restart needed.
    registry.rejected.clear();
    reconciler.resync();
    await settle(registry, () => registry.entries.has('n1:bad:80'));
    await reconciler.stop();
  });

  it('offers refused registrations again with a slow backoff, logging the refusal once per streak', async () => {
    const registry = new MemoryRegistry();
    registry.rejected.add('n1:a:80').add('n1:b:80');
    const { logger, lines } = capturingLogger();
    const { reconciler, set } = setup(registry, {
      logger,
      refusalBackoff: { initialMs: 30, maxMs: 30, jitter: 0 },
    });
    set(service({ id: 'n1:a:80' }), service({ id: 'n1:b:80' }));
    await settle(registry, () => registry.writes >= 6);
    expect(registry.entries.size).toBe(0);
    registry.rejected.clear();
    await settle(registry, () => registry.entries.size === 2);
    await reconciler.stop();
    const refusals = lines.filter((l) => l.msg.startsWith('registration refused by the registry'));
    expect(refusals.map((l) => l.level)).toEqual(['error']);
    expect(refusals[0]!.msg).toContain('permission denied');
    expect(
      lines.filter((l) => l.msg === 'registration accepted by the registry after refusals'),
    ).toHaveLength(2);
  });

  it('re-registers everything after the adapter lost its lease', async () => {
    const registry = new MemoryRegistry();
    const { reconciler, set } = setup(registry);
    set(service({ id: 'n1:a:80' }), service({ id: 'n1:b:80' }));
    await settle(registry, () => registry.entries.size === 2);
    registry.loseLiveness('lease expired');
    reconciler.lost('lease expired');
    await settle(registry, () => registry.entries.size === 2);
  });

  it('only holds passing services in a registry that does not mirror health', async () => {
    const registry = new MemoryRegistry({ mirrorsHealth: false });
    const { set } = setup(registry);
    set(service({ id: 'n1:a:80', health: 'critical' }), service({ id: 'n1:b:80', health: 'passing' }));
    await settle(registry, () => registry.entries.size === 1);
    expect([...registry.entries.keys()]).toEqual(['n1:b:80']);

    const consul = new MemoryRegistry({ mirrorsHealth: true });
    setup(consul).set(service({ id: 'n1:a:80', health: 'critical' }));
    await settle(consul, () => consul.entries.size === 1);
  });

  it('removes entries of an earlier run that nothing wants, only once the inventory is complete', async () => {
    const registry = new MemoryRegistry();
    registry.entries.set('n1:old:80', { id: 'n1:old:80', name: 'web', fingerprint: 'x' });
    registry.entries.set('n1:kept:80', { id: 'n1:kept:80', name: 'web', fingerprint: 'x' });
    const run = setup(registry, { inventory: false, keep: (id) => id === 'n1:kept:80' });
    run.set();
    await run.reconciler.settled();
    expect(registry.entries.has('n1:old:80')).toBe(true);
    run.finishInventory();
    run.reconciler.poke();
    await settle(registry, () => !registry.entries.has('n1:old:80'));
    await run.reconciler.settled();
    // `keep` holds back an entry whose container could not be looked at.
    expect(registry.entries.has('n1:kept:80')).toBe(true);
    await run.reconciler.stop();
  });

  it('an adopted entry seen wanted, then unwanted, is removed even before the inventory is complete', async () => {
    const registry = new MemoryRegistry();
    const a = service({ id: 'n1:a:80' });
    registry.entries.set(a.id, { id: a.id, name: a.name, fingerprint: registry.fingerprint(a) });
    const run = setup(registry, { inventory: false });
    run.set(a);
    await run.reconciler.settled();
    const writes = registry.writes;
    expect(writes).toBe(0);
    run.set();
    await settle(registry, () => !registry.entries.has(a.id));
    await run.reconciler.stop();
  });

  it('removes what it registered itself when the service goes away', async () => {
    const registry = new MemoryRegistry();
    const { set } = setup(registry, { inventory: false });
    set(service({ id: 'n1:a:80' }));
    await settle(registry, () => registry.entries.size === 1);
    set();
    await settle(registry, () => registry.entries.size === 0);
  });
});

describe('Reconciler.stateOf (what registrar explain reports)', () => {
  const records = (r: Reconciler) =>
    (r as unknown as { state: { writes: Map<string, unknown> } }).state.writes.size;

  it('registered: the service as written, or adopted unchanged from an earlier run', async () => {
    const registry = new MemoryRegistry();
    const { reconciler, set } = setup(registry);
    const a = service({ id: 'n1:a:80' });
    set(a);
    await settle(registry, () => registry.entries.has(a.id));
    await reconciler.settled();
    const state = reconciler.stateOf(a.id, a);
    expect(state).toMatchObject({ state: 'registered', record: a });
    expect(state.writtenAt).toBeGreaterThan(0);
    await reconciler.stop();

    const restarted = setup(registry);
    restarted.set(a);
    await restarted.reconciler.settled();
    expect(restarted.reconciler.stateOf(a.id, a)).toEqual({ state: 'registered', record: a });
    // A changed definition is not what is stored.
    const moved = { ...a, port: 81 };
    expect(restarted.reconciler.stateOf(a.id, moved).state).not.toBe('registered');
  });

  it('retrying: the last error and the failed passes in a row, until the registry answers again', async () => {
    const registry = new MemoryRegistry();
    registry.down = true;
    const { reconciler, set } = setup(registry);
    const a = service({ id: 'n1:a:80' });
    set(a);
    await settle(registry, () => (reconciler.stateOf(a.id, a).attempts ?? 0) >= 2);
    const state = reconciler.stateOf(a.id, a);
    expect(state).toMatchObject({ state: 'retrying', error: 'memory registry unreachable: ECONNREFUSED' });
    expect(reconciler.failingState).toMatchObject({ stage: 'list', error: state.error });
    registry.down = false;
    await settle(registry, () => reconciler.stateOf(a.id, a).state === 'registered');
    expect(reconciler.failingState).toBeUndefined();
  });

  it('rejected: the registry refused this definition, with its error, until it changes', async () => {
    const registry = new MemoryRegistry();
    registry.rejected.add('n1:bad:80');
    const { reconciler, set } = setup(registry);
    const bad = service({ id: 'n1:bad:80' });
    set(bad);
    await settle(registry, () => reconciler.stateOf(bad.id, bad).state === 'rejected');
    expect(reconciler.stateOf(bad.id, bad).error).toBe('refused n1:bad:80: permission denied');
    expect(reconciler.failingState).toBeUndefined();
    expect(reconciler.stateOf(bad.id, { ...bad, port: 81 }).state).toBe('pending');
  });

  it('stored / absent for a service the registry should not hold', async () => {
    const registry = new MemoryRegistry({ mirrorsHealth: false });
    const { reconciler, set } = setup(registry);
    const a = service({ id: 'n1:a:80' });
    set(a);
    await settle(registry, () => registry.entries.has(a.id));
    registry.down = true;
    set(service({ id: a.id, health: 'critical' }));
    await settle(registry, () => reconciler.failingState !== undefined);
    expect(reconciler.stateOf(a.id, undefined)).toMatchObject({ state: 'stored', record: a });
    registry.down = false;
    await settle(registry, () => !registry.entries.has(a.id));
    await reconciler.settled();
    expect(reconciler.stateOf(a.id, undefined)).toEqual({ state: 'absent' });
  });

  it('keeps outcomes only for ids wanted or stored: a container gone leaves nothing behind', async () => {
    const registry = new MemoryRegistry();
    registry.rejected.add('n1:c3:80');
    const { reconciler, set } = setup(registry);
    set(...Array.from({ length: 5 }, (_, i) => service({ id: `n1:c${i}:80` })));
    await settle(registry, () => registry.entries.size === 4);
    await reconciler.settled();
    expect(records(reconciler)).toBe(5);
    set();
    await settle(registry, () => registry.entries.size === 0);
    await reconciler.settled();
    expect(records(reconciler)).toBe(0);
  });
});

describe('Reconciler work per change', () => {
  /** Counts the fingerprints each pass computes; `calls` has the lists. */
  class CountingRegistry extends MemoryRegistry {
    fingerprints = 0;
    get lists() {
      return this.calls.filter((c) => c.method === 'list').length;
    }
    override fingerprint(s: Service) {
      this.fingerprints++;
      return super.fingerprint(s);
    }
  }

  function live(registry: CountingRegistry) {
    const desired = new Map<string, Service>();
    const reconciler = new Reconciler({
      registry,
      desired: () => desired,
      inventoryComplete: () => true,
      logger: silentLogger,
      backoff: { initialMs: 5, maxMs: 20, jitter: 0 },
    });
    return { reconciler, desired };
  }

  it('a change of one id among 1,000 fingerprints that id alone and lists nothing', async () => {
    const registry = new CountingRegistry();
    const { reconciler, desired } = live(registry);
    for (let i = 0; i < 1000; i++) desired.set(`n1:c${i}:80`, service({ id: `n1:c${i}:80` }));
    reconciler.poke();
    await settle(registry, () => registry.entries.size === 1000);
    await reconciler.settled();
    const [lists, fingerprints, writes] = [registry.lists, registry.fingerprints, registry.writes];

    desired.set('n1:new:80', service({ id: 'n1:new:80' }));
    desired.delete('n1:c7:80');
    reconciler.changed(['n1:new:80', 'n1:c7:80']);
    await settle(registry, () => registry.entries.has('n1:new:80') && !registry.entries.has('n1:c7:80'));
    await reconciler.settled();
    expect(registry.lists).toBe(lists);
    expect(registry.writes - writes).toBe(2);
    // The plan and the record of the write: a bounded handful, not one per desired service.
    expect(registry.fingerprints - fingerprints).toBeLessThanOrEqual(4);
    await reconciler.stop();
  });

  it('a failed write is retried for its id without listing the registry again', async () => {
    const registry = new CountingRegistry();
    const { reconciler, desired } = live(registry);
    for (let i = 0; i < 10; i++) desired.set(`n1:c${i}:80`, service({ id: `n1:c${i}:80` }));
    reconciler.poke();
    await settle(registry, () => registry.entries.size === 10);
    await reconciler.settled();
    const [lists, writes] = [registry.lists, registry.writes];

    registry.failWrites(2);
    desired.set('n1:new:80', service({ id: 'n1:new:80' }));
    reconciler.changed(['n1:new:80']);
    await settle(registry, () => registry.entries.has('n1:new:80'));
    await reconciler.settled();
    expect(registry.lists).toBe(lists);
    expect(registry.writes - writes).toBe(3);
    expect(reconciler.failingState).toBeUndefined();
    await reconciler.stop();
  });

  it('a write that failed but landed is removed when its service goes away before the retry', async () => {
    const registry = new CountingRegistry();
    const { reconciler, desired } = live(registry);
    reconciler.poke();
    await reconciler.settled();
    // The registry stores it, but the answer is lost: the reconciler cannot know which.
    const register = registry.register.bind(registry);
    registry.register = async (s: Service) => {
      await register(s);
      registry.register = register;
      throw new RegistryConnectionError('timed out', 'memory');
    };
    desired.set('n1:a:80', service({ id: 'n1:a:80' }));
    reconciler.changed(['n1:a:80']);
    await settle(registry, () => reconciler.failingState !== undefined || registry.writes > 1);
    desired.delete('n1:a:80');
    reconciler.changed(['n1:a:80']);
    await settle(registry, () => !registry.entries.has('n1:a:80'));
    await reconciler.settled();
    expect(reconciler.stateOf('n1:a:80', undefined)).toEqual({ state: 'absent' });
    await reconciler.stop();
  });
});

describe('Reconciler: another engine under this node id', () => {
  const conflicting = (registry: MemoryRegistry) => {
    const fatal: NodeIdConflictError[] = [];
    const desired = new Map<string, Service>();
    const reconciler = new Reconciler({
      registry,
      desired: () => desired,
      inventoryComplete: () => true,
      logger: silentLogger,
      backoff: { initialMs: 5, maxMs: 20, jitter: 0 },
      observer: { onFatal: (_registry, error) => void fatal.push(error) },
    });
    return { reconciler, desired, fatal };
  };

  it('stops on the first list, before writing anything, when an entry records another engine', async () => {
    const registry = new MemoryRegistry();
    registry.engineId = 'ENGINE-B';
    const theirs = { id: 'n1:web:80', name: 'web', fingerprint: 'theirs', engine: 'ENGINE-A' };
    registry.entries.set(theirs.id, theirs);
    const { reconciler, desired, fatal } = conflicting(registry);
    desired.set('n1:web:80', service({ id: 'n1:web:80' }));
    desired.set('n1:api:80', service({ id: 'n1:api:80' }));
    reconciler.poke();
    await settle(registry, () => fatal.length === 1);
    await reconciler.settled();
    // Stopped for good: later changes and resyncs write nothing either.
    reconciler.changed(['n1:api:80']);
    reconciler.resync();
    await reconciler.settled();
    expect(registry.writes).toBe(0);
    expect([...registry.entries.values()]).toEqual([theirs]);
    expect(fatal).toHaveLength(1);
    expect(fatal[0]).toBeInstanceOf(NodeIdConflictError);
    expect(fatal[0]!.message).toBe(
      'registry memory://n1 holds entries of node id "n1" written by another Docker engine (ID ENGINE-A); two hosts share this node id (cloned machines share host names): set --node-id to a name unique to this host',
    );
    await reconciler.stop();
  });

  it('adopts entries of its own engine and entries that record none (written by older versions)', async () => {
    const registry = new MemoryRegistry();
    registry.engineId = 'ENGINE-B';
    const ours = service({ id: 'n1:web:80' });
    const old = service({ id: 'n1:old:80' });
    registry.entries.set(ours.id, {
      id: ours.id,
      name: 'web',
      fingerprint: registry.fingerprint(ours),
      engine: 'ENGINE-B',
    });
    registry.entries.set(old.id, { id: old.id, name: 'web', fingerprint: registry.fingerprint(old) });
    const { reconciler, desired, fatal } = conflicting(registry);
    desired.set(ours.id, ours);
    desired.set(old.id, old);
    reconciler.poke();
    await reconciler.settled();
    expect(fatal).toEqual([]);
    expect(registry.writes).toBe(0);
    expect(reconciler.stateOf(old.id, old).state).toBe('registered');
    await reconciler.stop();
  });

  it('checks nothing when the registry records no engine', async () => {
    const registry = new MemoryRegistry();
    registry.entries.set('n1:web:80', { id: 'n1:web:80', name: 'web', fingerprint: 'x', engine: 'ENGINE-A' });
    const { reconciler, desired, fatal } = conflicting(registry);
    desired.set('n1:web:80', service({ id: 'n1:web:80' }));
    reconciler.poke();
    await settle(registry, () => registry.entries.get('n1:web:80')?.fingerprint !== 'x');
    expect(fatal).toEqual([]);
    await reconciler.stop();
  });

  it('stops when a write meets another engine’s entry, and writes nothing after it', async () => {
    const registry = new MemoryRegistry();
    registry.engineId = 'ENGINE-B';
    const { reconciler, desired, fatal } = conflicting(registry);
    const register = registry.register.bind(registry);
    registry.register = async (s: Service) => {
      if (s.id === 'n1:taken:80') {
        registry.calls.push({ method: 'register', id: s.id, error: 'conflict' });
        throw new NodeIdConflictError(registry.target, 'n1', 'ENGINE-A', 'memory', s.id);
      }
      return register(s);
    };
    desired.set('n1:taken:80', service({ id: 'n1:taken:80' }));
    reconciler.poke();
    await settle(registry, () => fatal.length === 1);
    const writes = registry.writes;
    desired.set('n1:later:80', service({ id: 'n1:later:80' }));
    reconciler.changed(['n1:later:80']);
    reconciler.resync();
    await reconciler.settled();
    expect(registry.writes).toBe(writes);
    expect(registry.entries.size).toBe(0);
    expect(fatal[0]?.engine).toBe('ENGINE-A');
    await reconciler.stop();
  });

  it('stops when the list itself reports a conflict', async () => {
    const registry = new MemoryRegistry();
    registry.engineId = 'ENGINE-B';
    registry.list = () =>
      Promise.reject(new NodeIdConflictError(registry.target, 'n1', 'ENGINE-A', 'memory'));
    const { reconciler, desired, fatal } = conflicting(registry);
    desired.set('n1:web:80', service({ id: 'n1:web:80' }));
    reconciler.poke();
    await settle(registry, () => fatal.length === 1);
    await reconciler.settled();
    expect(registry.writes).toBe(0);
    expect(reconciler.failingState).toBeUndefined();
    await reconciler.stop();
  });
});

describe('Reconciler standing by for another writer (Swarm mode election)', () => {
  it('lists and writes nothing while standing by; once leading it adopts what matches and removes what nothing wants', async () => {
    const registry = new MemoryRegistry();
    // What the previous writer left: one entry still wanted as it is, one of a task that is gone.
    const kept = service({ id: 'n1:kept:80' });
    const gone = service({ id: 'n1:gone:80' });
    for (const s of [kept, gone]) await registry.register(s);
    registry.calls.length = 0;

    const { reconciler, set } = setup(registry);
    reconciler.standBy();
    set(kept, service({ id: 'n1:new:80' }));
    reconciler.changed(['n1:new:80']);
    await reconciler.settled();
    expect(registry.calls).toEqual([]);
    expect(reconciler.writing).toBe(false);

    reconciler.lead();
    await settle(registry, () => registry.entries.has('n1:new:80') && !registry.entries.has(gone.id));
    await reconciler.settled();
    // `kept` was adopted: listed, never written again.
    expect(registry.calls.map((c) => c.method).sort()).toEqual(['deregister', 'list', 'register']);
    expect(reconciler.writing).toBe(true);

    // Standing by again: the next change waits for the next election.
    reconciler.standBy();
    set(kept);
    reconciler.changed(['n1:new:80']);
    await reconciler.settled();
    expect(registry.entries.has('n1:new:80')).toBe(true);
  });
});

/** A registry with batches: each batch is recorded, then its writes go one by one with their own outcomes. */
class BatchingRegistry extends MemoryRegistry {
  readonly batches: number[] = [];
  async applyBatch(writes: readonly RegistryWrite[]): Promise<RegistryWriteResult[]> {
    this.batches.push(writes.length);
    return Promise.all(
      writes.map((write) =>
        (write.type === 'register' ? this.register(write.service) : this.deregister(write.id)).then(
          () => ({ ok: true as const }),
          (error: Error) => ({ ok: false as const, error }),
        ),
      ),
    );
  }
}

describe('Reconciler with a registry that batches', () => {
  it('sends a pass of many writes as one batch and a lone write as a call of its own', async () => {
    const registry = new BatchingRegistry();
    const { reconciler, set } = setup(registry);
    const many = Array.from({ length: 50 }, (_, i) => service({ id: `n1:c${i}:80` }));
    set(...many);
    await settle(registry, () => registry.entries.size === 50);
    expect(registry.batches).toEqual([50]);
    set(...many, service({ id: 'n1:one:80' }));
    await settle(registry, () => registry.entries.size === 51);
    expect(registry.batches).toEqual([50]);
    await reconciler.stop();
    expect(registry.writes).toBe(51);
  });

  it('books each write of a batch on its own: a refused one waits for its backoff, a failed one is retried', async () => {
    const registry = new BatchingRegistry();
    const log = capturingLogger();
    const { reconciler, set } = setup(registry, { logger: log.logger });
    registry.rejected.add('n1:c1:80');
    registry.failWrites(1);
    set(...Array.from({ length: 4 }, (_, i) => service({ id: `n1:c${i}:80` })));
    // The first write of the batch failed (retryable): the next pass writes it again; the refused one is not
    // offered again before its backoff (60 s here), the two that went through are not written twice.
    await settle(registry, () => registry.entries.size === 3);
    await reconciler.settled();
    expect(registry.batches[0]).toBe(4);
    expect(registry.ids()).toEqual(['n1:c0:80', 'n1:c2:80', 'n1:c3:80']);
    const registers = registry.calls.filter((c) => c.method === 'register').map((c) => c.id);
    expect(registers.filter((id) => id === 'n1:c1:80')).toHaveLength(1);
    expect(registers.filter((id) => id === 'n1:c0:80')).toHaveLength(2);
    expect(registers.filter((id) => id === 'n1:c2:80')).toHaveLength(1);
    expect(reconciler.stateOf('n1:c1:80', service({ id: 'n1:c1:80' })).state).toBe('rejected');
    await reconciler.stop();
  });
});
