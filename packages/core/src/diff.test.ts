import { describe, expect, it } from 'vitest';
import { planReconcile } from './diff.js';
import type { RegistryEntry } from './registry.js';
import type { Service } from './service.js';
import { service } from './testing/index.js';

const fp = (s: Service) => `${s.address}:${s.port}`;
const entry = (s: Service, fingerprint = fp(s)): RegistryEntry => ({ id: s.id, name: s.name, fingerprint });
const map = <T extends { id: string }>(...xs: T[]) => new Map(xs.map((x) => [x.id, x]));

describe('planReconcile', () => {
  it('plans nothing when the registry already matches (a resync writes nothing)', () => {
    const services = Array.from({ length: 1000 }, (_, i) => service({ id: `n1:c${i}:80`, port: 1000 + i }));
    const plan = planReconcile(map(...services), map(...services.map((s) => entry(s))), fp, () => true);
    expect(plan).toEqual({ register: [], deregister: [], kept: [] });
  });

  it('registers what is missing and what is stored differently, and only that', () => {
    const a = service({ id: 'n1:a:80', port: 1 });
    const b = service({ id: 'n1:b:80', port: 2 });
    const c = service({ id: 'n1:c:80', port: 3 });
    const plan = planReconcile(map(a, b, c), map(entry(a), entry(b, 'stale')), fp, () => true);
    expect(plan.register.map((s) => s.id)).toEqual(['n1:b:80', 'n1:c:80']);
    expect(plan.deregister).toEqual([]);
  });

  it('removes undesired entries only where allowed, keeping the rest', () => {
    const a = service({ id: 'n1:a:80' });
    const b = service({ id: 'n1:b:80' });
    const plan = planReconcile(new Map(), map(entry(a), entry(b)), fp, (e) => e.id === 'n1:a:80');
    expect(plan.deregister.map((e) => e.id)).toEqual(['n1:a:80']);
    expect(plan.kept.map((e) => e.id)).toEqual(['n1:b:80']);
  });
});
