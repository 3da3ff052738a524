import type { Logger, Registry, RegistryOp, Service } from '@registrar/core';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { service } from '@registrar/core/testing';
import { ChangeLog, deregisterReason, type ChangeContext } from './changes.js';

const ETCD = 'etcd://127.0.0.1:2379/services';
const registry = { backend: 'etcd', target: ETCD } as Registry;

/** A logger that keeps its INFO lines. */
function recorder() {
  const lines: { msg: string; fields: object }[] = [];
  const info = (fields: object, msg?: string) => lines.push({ msg: msg ?? '', fields });
  const noop = () => undefined;
  const logger = { info, warn: noop, error: noop, debug: noop, trace: noop } as unknown as Logger;
  return { logger, lines };
}

function context(
  desired = new Map<string, Service>(),
  overrides: Partial<ChangeContext> = {},
): ChangeContext {
  return {
    desired: () => desired,
    inventoryComplete: () => true,
    cleanup: false,
    swarm: false,
    ...overrides,
  };
}

const register = (s: Service): RegistryOp => ({ type: 'register', service: s });
const deregister = (id: string): RegistryOp => ({
  type: 'deregister',
  entry: { id, name: 'web', fingerprint: '' },
});

describe('ChangeLog', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('logs one INFO line per registration and removal, with the address, the registry and the reason', () => {
    const { logger, lines } = recorder();
    const web = service({ id: 'n1:web:80', address: '10.0.0.5', port: 32768 });
    const log = new ChangeLog(logger, context());
    log.op(registry, register(web));
    vi.advanceTimersByTime(2_000);
    log.op(registry, deregister(web.id));
    expect(lines.map((l) => l.msg)).toEqual([
      `registered n1:web:80 10.0.0.5:32768 in ${ETCD}`,
      `deregistered n1:web:80 from ${ETCD} (container died)`,
    ]);
    expect(lines[0]?.fields).toEqual({
      change: {
        kind: 'registered',
        target: ETCD,
        serviceId: 'n1:web:80',
        container: 'web-1',
        address: '10.0.0.5:32768',
      },
    });
    expect(lines[1]?.fields).toEqual({
      change: { kind: 'deregistered', target: ETCD, serviceId: 'n1:web:80', reason: 'container died' },
    });
  });

  it('summarises a pass that writes many changes (a cold start): one line with the count and the time it took', () => {
    const { logger, lines } = recorder();
    const log = new ChangeLog(logger, context(), { bulk: 5 });
    log.pass(registry, 1_000);
    for (let i = 0; i < 1_000; i++) {
      log.op(registry, register(service({ id: `n1:c${i}:80`, port: 30000 + i })));
      if (i % 100 === 0) vi.advanceTimersByTime(90);
    }
    expect(lines.map((l) => l.msg)).toEqual([`registered 1,000 services in ${ETCD} in 0.9 s`]);
    expect(lines[0]?.fields).toEqual({
      change: { target: ETCD, registered: 1_000, updated: 0, deregistered: 0, seconds: 0.9 },
    });
    // A pass of a few changes is logged one by one again.
    log.pass(registry, 1);
    log.op(registry, deregister('n1:c0:80'));
    expect(lines[1]?.msg).toBe(`deregistered n1:c0:80 from ${ETCD} (container died)`);
  });

  it('summarises a bulk pass whose writes partly failed at its next pass, or when its writes stop', () => {
    const { logger, lines } = recorder();
    const log = new ChangeLog(logger, context(), { bulk: 2, quietMs: 1_000 });
    log.pass(registry, 10);
    for (let i = 0; i < 8; i++) log.op(registry, register(service({ id: `n1:c${i}:80` })));
    log.op(registry, deregister('n1:old:80'));
    expect(lines).toEqual([]);
    vi.advanceTimersByTime(1_000);
    expect(lines.map((l) => l.msg)).toEqual([`registered 8 and deregistered 1 services in ${ETCD} in 0 s`]);
  });

  it('caps the lines of a storm of small passes per window, and summarises the rest when the window ends', () => {
    const { logger, lines } = recorder();
    const log = new ChangeLog(logger, context(), { linesPerWindow: 2, windowMs: 10_000 });
    for (let i = 0; i < 150; i++) {
      log.pass(registry, 1);
      log.op(registry, register(service({ id: `n1:c${i}:80` })));
      vi.advanceTimersByTime(50);
    }
    vi.advanceTimersByTime(10_000);
    expect(lines.map((l) => l.msg)).toEqual([
      `registered n1:c0:80 10.0.0.5:8080 in ${ETCD}`,
      `registered n1:c1:80 10.0.0.5:8080 in ${ETCD}`,
      `registered 148 services in ${ETCD} in 7.4 s`,
    ]);
  });
});

describe('deregisterReason', () => {
  const web = service({ id: 'n1:web:80' });
  it('tells drained, paused and unhealthy services (still wanted) from gone ones', () => {
    const wanted = (s: Service) => context(new Map([[s.id, s]]));
    const draining = { ...web, health: 'critical' as const, healthOutput: 'draining: Docker sent SIGTERM' };
    expect(deregisterReason(web.id, wanted(draining), true)).toBe('drained');
    expect(
      deregisterReason(
        web.id,
        wanted({ ...web, health: 'critical', healthOutput: 'container paused' }),
        true,
      ),
    ).toBe('paused');
    expect(
      deregisterReason(web.id, wanted({ ...web, health: 'critical', healthOutput: 'probe failed' }), true),
    ).toBe('unhealthy');
    expect(deregisterReason(web.id, wanted({ ...web, health: 'warning', healthOutput: '' }), true)).toBe(
      'health starting',
    );
  });

  it('says container died for one this run saw, gone at inventory (or cleanup) for one it never saw', () => {
    expect(deregisterReason(web.id, context(), true)).toBe('container died');
    expect(deregisterReason(web.id, context(new Map(), { swarm: true }), true)).toBe('task gone');
    expect(deregisterReason(web.id, context(), false)).toBe('gone at inventory');
    expect(deregisterReason(web.id, context(new Map(), { cleanup: true }), false)).toBe('cleanup');
  });

  it('counts the inventory as seen: an adopted service whose container dies later died', () => {
    const { logger, lines } = recorder();
    const desired = new Map([[web.id, web]]);
    const log = new ChangeLog(logger, context(desired));
    log.pass();
    desired.delete(web.id);
    log.op(registry, deregister(web.id));
    expect(lines[0]?.msg).toBe(`deregistered n1:web:80 from ${ETCD} (container died)`);
  });

  it('keeps what it saw per registry: a service drained out of one registry still died in the other', () => {
    const { logger, lines } = recorder();
    const consul = { backend: 'consul', target: 'http://127.0.0.1:8500' } as Registry;
    const draining = { ...web, health: 'critical' as const, healthOutput: 'draining: Docker sent SIGTERM' };
    const desired = new Map<string, Service>();
    const log = new ChangeLog(logger, context(desired));
    log.op(registry, register(web));
    log.op(consul, register(web));
    desired.set(web.id, draining);
    log.op(registry, deregister(web.id));
    desired.delete(web.id);
    log.op(consul, deregister(web.id));
    expect(lines.slice(2).map((l) => l.msg)).toEqual([
      `deregistered n1:web:80 from ${ETCD} (drained)`,
      'deregistered n1:web:80 from http://127.0.0.1:8500 (container died)',
    ]);
  });
});
