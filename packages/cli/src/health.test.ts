import type { BridgeStatus, ExplainLookup, LivenessLoss, Registry, RegistryEvent } from '@registrar/core';
import { EMPTY, Subject } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { Health, registrationCounts, type StatusSource } from './health.js';

const ETCD = 'etcd://127.0.0.1:2379/services';

function registry(target = ETCD): Registry {
  return {
    backend: 'etcd',
    target,
    nodeId: 'n1',
    mirrorsHealth: false,
    lost$: new Subject<LivenessLoss>(),
    events$: EMPTY as unknown as Subject<RegistryEvent>,
    fingerprint: () => '',
    register: () => Promise.resolve(),
    deregister: () => Promise.resolve(),
    list: () => Promise.resolve([]),
    close: () => Promise.resolve(),
  };
}

const running: BridgeStatus = { dockerConnected: true, inventoryComplete: true, containers: 1, services: 2 };

/** A bridge with one container whose two services stand as `states` say in etcd. */
function bridgeWith(states: { id: string; state: string; error?: string }[], status = running): StatusSource {
  const report = {
    registries: [{ backend: 'etcd', target: ETCD, mirrorsHealth: false }],
    ports: [
      {
        port: 80,
        services: states.map(({ id, state, error }) => ({
          id,
          registrations: [{ backend: 'etcd', target: ETCD, state, ...(error && { error }) }],
        })),
      },
    ],
  };
  return {
    status: () => status,
    explainAll: () => [{ id: 'c1', name: 'web', verdict: 'partial', summary: '' }],
    explain: () => ({ kind: 'found', report }) as unknown as ExplainLookup,
  };
}

describe('Health.readiness', () => {
  it('says why from the first second: Docker, the inventory and each registry named by its URI', () => {
    const health = new Health([ETCD]);
    const first = health.readiness();
    expect(first.ok).toBe(false);
    expect(first.detail.reasons).toEqual({
      docker: 'asking Docker for its info (GET /info)',
      inventory: 'not started: waiting for Docker',
      [ETCD]: expect.stringMatching(/^not connected yet: waiting for Docker/),
    });
    health.docker({ cause: 'ENOENT', sentence: 'no Docker socket at /x.sock (ENOENT): mount it' });
    expect(health.readiness().detail.reasons.docker).toBe('no Docker socket at /x.sock (ENOENT): mount it');
  });

  it('is ready once Docker streams, the inventory is in and every registry answered', () => {
    const health = new Health([ETCD]);
    const etcd = registry();
    health.docker(undefined);
    health.attachRegistries([etcd]);
    health.attachBridge(bridgeWith([{ id: 'n1:web:80', state: 'registered' }]));
    expect(health.readiness().detail.reasons).toEqual({ [ETCD]: 'no answer yet (first pass in progress)' });
    health.reachable(etcd, true);
    expect(health.readiness()).toEqual({
      ok: true,
      detail: { docker: true, inventory: true, backends: { [ETCD]: true }, reasons: {} },
    });
    health.reachable(etcd, false, {
      passes: 3,
      since: Date.UTC(2026, 0, 1),
      error: 'ECONNREFUSED',
      stage: 'write',
    });
    expect(health.readiness().detail.reasons[ETCD]).toBe(
      'unreachable since 2026-01-01T00:00:00.000Z: write failing (3 passes): ECONNREFUSED',
    );
  });

  it('is not ready while a service is rejected or retrying, and names one with its error', () => {
    const health = new Health([ETCD]);
    const etcd = registry();
    health.docker(undefined);
    health.attachRegistries([etcd]);
    health.reachable(etcd, true);
    health.attachBridge(
      bridgeWith([
        { id: 'n1:web:80', state: 'registered' },
        { id: 'n1:web:81', state: 'rejected', error: 'permission denied' },
      ]),
    );
    const { ok, detail } = health.readiness();
    expect(ok).toBe(false);
    expect(detail.reasons).toEqual({ services: `1 rejected in ${ETCD} (e.g. n1:web:81: permission denied)` });
  });
});

describe('registrationCounts', () => {
  it('counts services by state per registry from the explain reports', () => {
    const counts = registrationCounts(
      bridgeWith([
        { id: 'a', state: 'registered' },
        { id: 'b', state: 'retrying', error: 'UNAVAILABLE' },
        { id: 'c', state: 'withheld' },
      ]),
    );
    expect(counts).toEqual([
      {
        backend: 'etcd',
        target: ETCD,
        states: { registered: 1, pending: 0, retrying: 1, rejected: 0, withheld: 1 },
        example: { state: 'retrying', id: 'b', error: 'UNAVAILABLE' },
      },
    ]);
  });

  it('knows nothing where the bridge explains nothing although it wants services (Swarm mode)', () => {
    const swarm: StatusSource = {
      status: () => running,
      explainAll: () => [],
      explain: () => ({ kind: 'unknown' }),
    };
    expect(registrationCounts(swarm)).toBeUndefined();
  });
});
