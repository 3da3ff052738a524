import type { BridgeStatus, LivenessLoss, Registry, RegistryEvent } from '@registrar/core';
import { EMPTY, Subject } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { Health, type StatusSource } from './health.js';

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

type States = Record<'registered' | 'pending' | 'retrying' | 'rejected' | 'withheld', number>;
const none: States = { registered: 0, pending: 0, retrying: 0, rejected: 0, withheld: 0 };

/** A bridge whose status says Docker streams, the inventory is in, and etcd holds services as `services` say. */
function bridgeWith(services: Partial<States> = {}, more: Partial<BridgeStatus> = {}): StatusSource {
  const status: BridgeStatus = {
    dockerConnected: true,
    inventoryComplete: true,
    containers: 1,
    services: 2,
    docker: { failing: 0, timeouts: 0 },
    unresolved: [],
    registries: [{ backend: 'etcd', target: ETCD, writing: true, services: { ...none, ...services } }],
    ...more,
  };
  return { status: () => status };
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
    health.attachBridge(bridgeWith({ registered: 2 }));
    expect(health.readiness().detail.reasons).toEqual({ [ETCD]: 'no answer yet (first pass in progress)' });
    health.reachable(etcd, true);
    expect(health.readiness()).toEqual({
      ok: true,
      detail: {
        docker: true,
        inventory: true,
        backends: { [ETCD]: true },
        services: { [ETCD]: { ...none, registered: 2 } },
        reasons: {},
      },
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

  it('is not ready while a service is rejected or retrying, while Docker calls fail or a container cannot be inspected', () => {
    const health = new Health([ETCD]);
    const etcd = registry();
    health.docker(undefined);
    health.attachRegistries([etcd]);
    health.reachable(etcd, true);
    health.attachBridge(
      bridgeWith(
        { registered: 1, rejected: 1 },
        {
          docker: {
            failing: 4,
            lastError: 'docker inspect of 0123abcd did not answer within 10000 ms',
            since: Date.UTC(2026, 0, 1),
            timeouts: 4,
          },
          unresolved: [{ id: '0123abcd4567ef', error: 'HTTP 500', attempts: 3 }],
        },
      ),
    );
    const { ok, detail } = health.readiness();
    expect(ok).toBe(false);
    expect(detail.reasons).toEqual({
      docker:
        '4 Docker calls failed in a row since 2026-01-01T00:00:00.000Z: docker inspect of 0123abcd did not answer within 10000 ms',
      inventory: '1 containers cannot be inspected (e.g. 0123abcd4567: HTTP 500)',
      services: `1 rejected in ${ETCD} (registrar explain <container> gives each registry's message)`,
    });
  });

  it('follows the registry’s heartbeats: a failed one makes it unreachable until they recover', () => {
    const health = new Health([ETCD]);
    const etcd = registry();
    health.attachRegistries([etcd]);
    health.reachable(etcd, true);
    health.registryEvent(etcd, { type: 'heartbeat-failed', error: new Error('UNAVAILABLE') });
    expect(health.readiness().detail.reasons[ETCD]).toMatch(
      /^unreachable since \S+: heartbeat failing: UNAVAILABLE$/,
    );
    expect(health.registryUp()).toEqual([{ backend: 'etcd', target: ETCD, up: false }]);
    health.registryEvent(etcd, { type: 'recovered' });
    expect(health.registryUp()).toEqual([{ backend: 'etcd', target: ETCD, up: true }]);
  });
});
