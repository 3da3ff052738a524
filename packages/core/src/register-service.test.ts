import { describe, expect, it, vi } from 'vitest';
import { createConsoleLogger } from './console-logger.js';
import { ConfigError, RegistryRejectedError } from './errors.js';
import { silentLogger } from './logger.js';
import { registerService, type RegistrationStatus } from './register-service.js';
import type { ServiceProblem } from './registry.js';
import type { Service } from './service.js';
import { MemoryRegistry } from './testing/memory-registry.js';

const record = { name: 'api', address: '10.0.0.5', port: 9000 };
const quiet = { logger: silentLogger };
const fast = { timeout: 5000, interval: 10 };

describe('registerService', () => {
  it('resolves once written, with the neutral record mapped onto the registry', async () => {
    const registry = new MemoryRegistry({ nodeId: 'app-1' });
    const reg = await registerService(
      registry,
      { ...record, tags: ['v1'], meta: { zone: 'a' }, check: { http: '/health', intervalMs: 5000 } },
      quiet,
    );
    expect(reg.id).toBe('app-1:api:9000');
    expect(reg.status).toEqual({ state: 'registered' });
    const stored = registry.services.get('app-1:api:9000');
    expect(stored).toEqual({
      id: 'app-1:api:9000',
      name: 'api',
      address: '10.0.0.5',
      port: 9000,
      protocol: 'tcp',
      containerPort: 9000,
      tags: ['v1'],
      meta: { zone: 'a' },
      node: 'app-1',
      health: 'passing',
      healthOutput: '',
      checks: { http: '/health', interval: '5s' },
    } satisfies Service);
    expect(stored).not.toHaveProperty('container');
    await reg.close();
  });

  it('registers again after the registry lost its liveness, and says so on status$', async () => {
    const registry = new MemoryRegistry({ nodeId: 'app-1' });
    const lines: string[] = [];
    const reg = await registerService(registry, record, {
      logger: createConsoleLogger({ write: (l) => lines.push(l) }),
    });
    const seen: RegistrationStatus['state'][] = [];
    reg.status$.subscribe((s) => seen.push(s.state));
    registry.loseLiveness('lease revoked');
    expect(registry.ids()).toEqual([]);
    await vi.waitFor(() => expect(registry.ids()).toEqual(['app-1:api:9000']), fast);
    expect(seen).toEqual(['registered', 'lost', 'registered']);
    expect(lines.filter((l) => l.includes(' WARN '))).toHaveLength(1);
    expect(lines.some((l) => / INFO service registered again .*serviceId=app-1:api:9000/.test(l))).toBe(true);
    await reg.close();
  });

  it('keeps trying while writes fail (retrying), and resolves when one lands', async () => {
    const registry = new MemoryRegistry({ nodeId: 'app-1' });
    registry.down = true;
    const states: string[] = [];
    const pending = registerService(registry, record, quiet);
    await vi.waitFor(() => expect(registry.calls.filter((c) => c.error).length).toBeGreaterThan(1), fast);
    registry.down = false;
    const reg = await pending;
    reg.status$.subscribe((s) => states.push(s.state));
    expect(states).toEqual(['registered']);
    expect(registry.ids()).toEqual(['app-1:api:9000']);
    await reg.close();
  });

  it('reports retrying after the first failed pass of a registered service', async () => {
    const registry = new MemoryRegistry({ nodeId: 'app-1' });
    const reg = await registerService(registry, record, quiet);
    registry.down = true;
    registry.loseLiveness('session expired');
    await vi.waitFor(() => expect(reg.status.state).toBe('retrying'), fast);
    expect(reg.status).toMatchObject({ error: expect.stringContaining('unreachable'), attempts: 1 });
    registry.down = false;
    await vi.waitFor(() => expect(reg.status.state).toBe('registered'), fast);
    await reg.close();
  });

  it('close(), abort and dispose each deregister; close is idempotent', async () => {
    const registry = new MemoryRegistry({ nodeId: 'app-1' });
    const closed = await registerService(registry, { ...record, port: 1 }, quiet);
    await closed.close();
    await closed.close();
    expect(closed.status).toEqual({ state: 'closed' });

    const controller = new AbortController();
    await registerService(registry, { ...record, port: 2 }, { ...quiet, signal: controller.signal });
    const disposed = await registerService(registry, { ...record, port: 3 }, quiet);
    expect(registry.ids()).toEqual(['app-1:api:2', 'app-1:api:3']);
    controller.abort();
    await vi.waitFor(() => expect(registry.ids()).toEqual(['app-1:api:3']), fast);
    await disposed[Symbol.asyncDispose]();
    expect(registry.ids()).toEqual([]);
    // The id is free again.
    await (await registerService(registry, { ...record, port: 3 }, quiet)).close();
  });

  it('rejects with the signal reason when aborted before the write, leaving nothing behind', async () => {
    const registry = new MemoryRegistry({ nodeId: 'app-1' });
    registry.down = true;
    const controller = new AbortController();
    const pending = registerService(registry, record, { ...quiet, signal: controller.signal });
    await vi.waitFor(() => expect(registry.calls.length).toBeGreaterThan(0), fast);
    controller.abort(new Error('gave up'));
    await expect(pending).rejects.toThrow('gave up');
    registry.down = false;
    await expect(registerService(registry, record, { signal: AbortSignal.abort() })).rejects.toThrow();
    expect(registry.ids()).toEqual([]);
  });

  it('rejects when the registry refuses the write', async () => {
    const registry = new MemoryRegistry({ nodeId: 'app-1' });
    registry.rejected.add('app-1:api:9000');
    await expect(registerService(registry, record, quiet)).rejects.toThrow(RegistryRejectedError);
    expect(registry.ids()).toEqual([]);
  });

  it.each([
    [{ address: 'localhost' }, 'address'],
    [{ address: '10.0.0.256' }, 'address'],
    [{ port: 0 }, 'port'],
    [{ port: 65536 }, 'port'],
    [{ port: 80.5 }, 'port'],
    [{ name: 'a/b' }, 'name'],
    [{ name: '' }, 'name'],
    [{ id: 'other:api' }, 'id'],
    [{ id: 'app-1:a/b' }, 'id'],
    [{ tags: ['ok', 'a,b'] }, 'tags[1]'],
    [{ meta: { 'registrar-node': 'x' } }, 'meta.registrar-node'],
    [{ protocol: 'sctp' }, 'protocol'],
    [{ check: { http: 'health' } }, 'check.http'],
    [{ check: { http: '/h', tcp: true } }, 'check'],
    [{ check: { tcp: true, intervalMs: -1 } }, 'check.intervalMs'],
  ])('refuses %j with a ConfigError naming %s, writing nothing', async (change, field) => {
    const registry = new MemoryRegistry({ nodeId: 'app-1' });
    const error = await registerService(registry, { ...record, ...change } as typeof record, quiet).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).field).toBe(field);
    expect((error as Error).message).toMatch(
      new RegExp(`^invalid service ${field.replace(/[[\].]/g, '\\$&')}: `),
    );
    expect(registry.calls).toEqual([]);
  });

  it('refuses what the registry says its layout cannot hold, naming the field', async () => {
    const registry = Object.assign(new MemoryRegistry({ nodeId: 'app-1' }), {
      check: (service: Service): ServiceProblem | undefined =>
        service.name.includes('.') ? { field: 'name', message: 'no dots here' } : undefined,
    });
    await expect(registerService(registry, { ...record, name: 'a.b' }, quiet)).rejects.toMatchObject({
      name: 'ConfigError',
      field: 'name',
      message: 'invalid service name: no dots here (memory)',
    });
    expect(registry.calls).toEqual([]);
  });

  it('registrations sharing a registry leave each other alone, also entries they did not write', async () => {
    const registry = new MemoryRegistry({ nodeId: 'app-1' });
    // An entry of this node id written by someone else (another process of the app, an earlier run).
    registry.entries.set('app-1:other:1', { id: 'app-1:other:1', name: 'other', fingerprint: 'x' });
    const a = await registerService(registry, { ...record, port: 1 }, quiet);
    const b = await registerService(registry, { ...record, port: 2 }, quiet);
    registry.loseLiveness('lease revoked');
    await vi.waitFor(() => expect(registry.ids()).toEqual(['app-1:api:1', 'app-1:api:2']), fast);
    registry.entries.set('app-1:other:1', { id: 'app-1:other:1', name: 'other', fingerprint: 'x' });
    await a.close();
    expect(registry.ids()).toEqual(['app-1:api:2', 'app-1:other:1']);
    await b.close();
    expect(registry.ids()).toEqual(['app-1:other:1']);
  });

  it('refuses a second registration of the same id through one registry', async () => {
    const registry = new MemoryRegistry({ nodeId: 'app-1' });
    const reg = await registerService(registry, record, quiet);
    await expect(registerService(registry, record, quiet)).rejects.toMatchObject({ field: 'id' });
    const udp = await registerService(registry, { ...record, protocol: 'udp' }, quiet);
    expect(udp.id).toBe('app-1:api:9000:udp');
    await Promise.all([reg.close(), udp.close()]);
  });
});
