import { describe, expect, it } from 'vitest';
import type { FollowUpdate } from './follow.js';
import { followGate, followLifetimes, instanceLabels } from './follow-gate.js';

const a = { id: 'n1:a:80', address: '10.0.0.1', port: 1 };
const b = { id: 'n2:b:80', address: '10.0.0.2', port: 2 };

describe('followGate', () => {
  it('emits sorted sets, skips repeats, emits unreachable once and the first set after it', () => {
    const out: FollowUpdate[] = [];
    const gate = followGate((update) => out.push(update));
    gate.instances([]);
    gate.instances([b, a]);
    gate.instances([{ ...a, extra: true } as typeof a, b]); // same set, other order and fields
    const error = new Error('down');
    expect(gate.unreachable(error)).toBe(true);
    expect(gate.unreachable(new Error('still down'))).toBe(false);
    expect(gate.reachable).toBe(false);
    gate.instances([a, b]); // unchanged, but the registry is back: said again
    gate.instances([a]);
    expect(out).toEqual([
      { kind: 'instances', instances: [] },
      { kind: 'instances', instances: [a, b] },
      { kind: 'unreachable', error },
      { kind: 'instances', instances: [a, b] },
      { kind: 'instances', instances: [a] },
    ]);
    expect(gate.reachable).toBe(true);
  });

  it('carries tags and sorted metadata, only when there are some; a change of either is a new set', () => {
    const out: FollowUpdate[] = [];
    const gate = followGate((update) => out.push(update));
    gate.instances([{ ...a, tags: [], meta: {} }]);
    gate.instances([{ ...a, tags: ['x'], meta: { z: '1', a: '2' } }]);
    gate.instances([{ ...a, tags: ['x'], meta: { a: '2', z: '1' } }]); // same metadata, other order
    gate.instances([{ ...a, tags: ['x'], meta: { a: '3', z: '1' } }]);
    expect(out).toEqual([
      { kind: 'instances', instances: [a] },
      { kind: 'instances', instances: [{ ...a, tags: ['x'], meta: { a: '2', z: '1' } }] },
      { kind: 'instances', instances: [{ ...a, tags: ['x'], meta: { a: '3', z: '1' } }] },
    ]);
    const first = out[1]!.kind === 'instances' ? out[1]!.instances[0]! : undefined;
    expect(Object.keys(first?.meta ?? {})).toEqual(['a', 'z']);
  });
});

describe('instanceLabels', () => {
  it('keeps string tags and string metadata except the bookkeeping keys; `__proto__` stays a plain key', () => {
    const meta = JSON.parse('{"zone":"a","__proto__":"p","n":1,"registrar-node":"h1"}') as unknown;
    const labels = instanceLabels(['t', 7, null, 'u'], meta, (key) => key.startsWith('registrar-'));
    expect(labels.tags).toEqual(['t', 'u']);
    expect(Object.entries(labels.meta ?? {})).toEqual([
      ['zone', 'a'],
      ['__proto__', 'p'],
    ]);
    expect(Object.getPrototypeOf(labels.meta)).toBe(Object.prototype);
    expect(instanceLabels('t', ['x'])).toEqual({});
    expect(instanceLabels(undefined, null)).toEqual({});
  });
});

describe('followLifetimes', () => {
  it('close() completes every follow still running, once; a follow begun after it completes at once', () => {
    const lifetimes = followLifetimes();
    const log: string[] = [];
    const follow = (name: string) =>
      lifetimes.run(
        { complete: () => log.push(`${name} complete`) },
        () => log.push(`${name} stop`),
        () => log.push(`${name} begin`),
      );
    const teardownA = follow('a');
    follow('b');
    teardownA();
    expect(lifetimes.close()).toBe(true);
    expect(lifetimes.close()).toBe(false);
    expect(lifetimes.closed).toBe(true);
    follow('c');
    expect(log).toEqual(['a begin', 'b begin', 'a stop', 'b stop', 'b complete', 'c stop', 'c complete']);
  });
});
