import { describe, expect, it } from 'vitest';
import { DesiredServices } from './desired.js';
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

describe('DesiredServices', () => {
  it('reports only the ids that changed, by identity', () => {
    const desired = new DesiredServices();
    const a = service('n1:a:80', 'a');
    const b = service('n1:b:80', 'a');
    expect([...desired.update('a', [], [a, b])]).toEqual([a.id, b.id]);
    expect([...desired.update('a', [a, b], [a, b])]).toEqual([]);
    const moved = service('n1:b:80', 'a', 81);
    expect([...desired.update('a', [a, b], [a, moved])]).toEqual([b.id]);
    expect(desired.services.get(b.id)).toBe(moved);
    expect([...desired.update('a', [a, moved], [])]).toEqual([a.id, b.id]);
    expect(desired.services.size).toBe(0);
  });

  it('the first claim of an id holds it, warns once, and the next takes over when it goes', () => {
    const warnings: string[] = [];
    const desired = new DesiredServices((holder, other) =>
      warnings.push(`${other.container?.name} vs ${holder.container?.name}`),
    );
    const first = service('n1:same:80', 'first');
    const second = service('n1:same:80', 'second');
    desired.update('first', [], [first]);
    expect([...desired.update('second', [], [second])]).toEqual([]);
    expect(desired.services.get(first.id)).toBe(first);
    desired.update('second', [second], [second]);
    expect(warnings).toEqual(['second vs first']);
    expect([...desired.update('first', [first], [])]).toEqual([first.id]);
    expect(desired.services.get(first.id)).toBe(second);
    expect([...desired.update('second', [second], [])]).toEqual([first.id]);
    expect(desired.services.size).toBe(0);
  });
});
