// The reconciler's bookkeeping, called directly: no timers, no registry, no passes.
import { describe, expect, it } from 'vitest';
import {
  forgetStored,
  initialReconcileState,
  livenessLost,
  planOps,
  recordApplied,
  recordRefusal,
  takeWork,
  type ReconcileView,
} from './reconcile-state.js';
import type { RegistryEntry } from './registry.js';
import type { Service } from './service.js';
import { service } from './testing/index.js';

const view = (...services: Service[]): ReconcileView => ({
  desired: new Map(services.map((s) => [s.id, s])),
  mirrorsHealth: false,
  fingerprint: (s) => `${s.id}@${s.port}`,
});
const entry = (id: string, fingerprint = 'old'): RegistryEntry => ({ id, name: 'web', fingerprint });
const context = { inventoryComplete: true, keep: () => false, now: 1_000 };

describe('reconcile state', () => {
  it('a full diff looks at everything once; later passes only at what changed', () => {
    const state = initialReconcileState();
    const v = view(service({ id: 'n1:a:80' }));
    const actual = new Map([['n1:old:80', entry('n1:old:80')]]);
    expect([...takeWork(state, actual, v)].sort()).toEqual(['n1:a:80', 'n1:old:80']);
    expect([...takeWork(state, actual, v)]).toEqual([]);
    state.dirty.add('n1:a:80');
    expect([...takeWork(state, actual, v)]).toEqual(['n1:a:80']);
  });

  it('plans a registration for what is wanted and a removal for what is not, after the inventory', () => {
    const state = initialReconcileState();
    const a = service({ id: 'n1:a:80' });
    const v = view(a);
    const actual = new Map([['n1:old:80', entry('n1:old:80')]]);
    const ids = takeWork(state, actual, v);
    expect(
      planOps(state, ids, actual, v, context)
        .map((op) => op.type)
        .sort(),
    ).toEqual(['deregister', 'register']);
    // Before the inventory is complete, only what this process saw wanted may go.
    expect(
      planOps(state, ids, actual, v, { ...context, inventoryComplete: false }).map((op) => op.type),
    ).toEqual(['register']);
  });

  it('a refused registration is planned again only when due, or after a resync, or once changed', () => {
    const state = initialReconcileState();
    const a = service({ id: 'n1:a:80' });
    const v = view(a);
    const actual = new Map<string, RegistryEntry>();
    expect(recordRefusal(state, a, v.fingerprint(a), new Error('denied'), 5_000)).toBe(true);
    expect(recordRefusal(state, a, v.fingerprint(a), new Error('denied'), 9_000)).toBe(false);
    const ids = new Set([a.id]);
    expect(planOps(state, ids, actual, v, context)).toEqual([]);
    expect(planOps(state, ids, actual, v, { ...context, now: 9_000 })).toHaveLength(1);
    const changed = service({ id: a.id, port: 8081 });
    expect(planOps(state, ids, actual, view(changed), context)).toHaveLength(1);
    forgetStored(state);
    expect(planOps(state, ids, actual, v, context)).toHaveLength(1);
  });

  it('a lost liveness forgets what was stored, so everything is written again', () => {
    const state = initialReconcileState();
    const a = service({ id: 'n1:a:80' });
    const v = view(a);
    state.actual = new Map();
    recordApplied(state, { type: 'register', service: a }, v.fingerprint(a), undefined, 1);
    const ids = takeWork(state, state.actual, v);
    expect(planOps(state, ids, state.actual, v, context)).toEqual([]);
    livenessLost(state);
    expect(planOps(state, takeWork(state, state.actual, v), state.actual, v, context)).toHaveLength(1);
  });
});
