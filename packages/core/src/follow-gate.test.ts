import { describe, expect, it } from 'vitest';
import type { FollowUpdate } from './follow.js';
import { followGate, followLifetimes } from './follow-gate.js';

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
