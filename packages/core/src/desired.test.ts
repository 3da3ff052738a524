import { describe, expect, it } from 'vitest';
import { desiredSet, updateDesired } from './desired.js';
import type { Service } from './service.js';

const service = (id: string, container: string, port = 80): Service => ({
  id,
  name: 'web',
  address: '10.0.0.1',
  port,
  protocol: 'tcp',
  containerPort: 80,
  tags: [],
  meta: {},
  node: 'n1',
  container: { id: container, name: container },
  health: 'passing',
  healthOutput: '',
  checks: {},
});

describe('the desired set', () => {
  it('reports only the ids that changed, by identity', () => {
    const desired = desiredSet();
    const a = service('n1:a:80', 'a');
    const b = service('n1:b:80', 'a');
    expect([...updateDesired(desired, 'a', [a, b])]).toEqual([a.id, b.id]);
    expect([...updateDesired(desired, 'a', [a, b])]).toEqual([]);
    const moved = service('n1:b:80', 'a', 81);
    expect([...updateDesired(desired, 'a', [a, moved])]).toEqual([b.id]);
    expect(desired.services.get(b.id)).toBe(moved);
    expect([...updateDesired(desired, 'a', [])]).toEqual([a.id, b.id]);
    expect(desired.services.size).toBe(0);
  });

  it('the first claim of an id holds it, warns once, and the next takes over when it goes', () => {
    const warnings: string[] = [];
    const desired = desiredSet();
    const onDuplicate = (holder: Service, other: Service) =>
      warnings.push(`${other.container?.name} vs ${holder.container?.name}`);
    const first = service('n1:same:80', 'first');
    const second = service('n1:same:80', 'second');
    updateDesired(desired, 'first', [first], onDuplicate);
    expect([...updateDesired(desired, 'second', [second], onDuplicate)]).toEqual([]);
    expect(desired.services.get(first.id)).toBe(first);
    updateDesired(desired, 'second', [second], onDuplicate);
    expect(warnings).toEqual(['second vs first']);
    expect([...updateDesired(desired, 'first', [], onDuplicate)]).toEqual([first.id]);
    expect(desired.services.get(first.id)).toBe(second);
    expect([...updateDesired(desired, 'second', [], onDuplicate)]).toEqual([first.id]);
    expect(desired.services.size).toBe(0);
  });
});
