import { readFileSync } from 'node:fs';
import type { ContainerInspectInfo } from 'dockerode';
import { describe, expect, it } from 'vitest';
import { containerStateOf, deriveServices, type DeriveOptions } from './derive.js';
import { healthOf, podInfraName, sharedNetworkOwner } from './engine-inspect.js';

/** Inspect documents recorded from Podman 4.3's Docker-compatible API (rootful, CNI). */
function podman(name: string): ContainerInspectInfo {
  return JSON.parse(
    readFileSync(new URL(`./fixtures/podman-${name}.json`, import.meta.url), 'utf8'),
  ) as ContainerInspectInfo;
}

const options = (overrides: Partial<DeriveOptions> = {}): DeriveOptions => ({
  nodeId: 'host1',
  internal: false,
  tags: [],
  explicit: false,
  ...overrides,
});

describe('healthOf', () => {
  it('Podman\'s {"Status": ""} without a configured check is no health check at all', () => {
    expect(healthOf(podman('plain'))).toBeUndefined();
    expect(healthOf({ State: { Health: { Status: '' } } })).toBeUndefined();
    expect(healthOf({ State: { Health: null } })).toBeUndefined();
    expect(healthOf({ State: {} })).toBeUndefined();
    expect(healthOf(null)).toBeUndefined();
  });

  it('an empty status with a configured check has not reported yet', () => {
    const c = { State: { Health: { Status: '' } }, Config: { Healthcheck: { Test: ['CMD-SHELL', 'true'] } } };
    expect(healthOf(c)).toEqual({ status: 'starting', log: [] });
    const disabled = { ...c, Config: { Healthcheck: { Test: ['NONE'] } } };
    expect(healthOf(disabled)).toBeUndefined();
  });

  it('reads Docker and Podman 4.3 alike, and a top-level HealthStatus where State.Health says nothing', () => {
    expect(healthOf(podman('starting'))).toEqual({ status: 'starting', log: [] });
    const log = [{ Output: 'ok' }];
    expect(healthOf({ State: { Health: { Status: 'healthy', Log: log } } })).toEqual({
      status: 'healthy',
      log,
    });
    expect(healthOf({ HealthStatus: 'unhealthy', State: {} })).toEqual({ status: 'unhealthy', log: [] });
    expect(healthOf({ HealthStatus: 'healthy', State: { Health: { Status: '' } } })?.status).toBe('healthy');
  });
});

describe('pods and shared networks', () => {
  it('a pod member names the infra container whose network it uses', () => {
    expect(sharedNetworkOwner(podman('pod-web'))).toBe(
      '16f97f8d5f7085d8ed60d4d254347bdbb67443e376b36f880046330ad8145e6d',
    );
    expect(sharedNetworkOwner(podman('pod-infra'))).toBeUndefined();
    expect(sharedNetworkOwner({ HostConfig: { NetworkMode: 'container:' } })).toBeUndefined();
    expect(sharedNetworkOwner({ HostConfig: { NetworkMode: 'container:a b' } })).toBeUndefined();
  });

  it("the infra container stands for its pod, named after it (Podman's host name for the pod)", () => {
    expect(podInfraName(podman('pod-infra'))).toBe('podman-pod');
    expect(podInfraName(podman('pod-web'))).toBeUndefined();
    expect(podInfraName(podman('plain'))).toBeUndefined();
  });
});

describe('deriveServices on Podman 4.3 inspects', () => {
  it('a plain container without a health check is served (was withheld: unknown health status "")', () => {
    const { services, skipped } = deriveServices(podman('plain'), options());
    expect(services.map((s) => [s.id, s.name, s.address, s.port, s.health])).toEqual([
      ['host1:podman-plain:80', 'web', '127.0.0.1', 32799, 'passing'],
    ]);
    expect(skipped).toEqual([]);
    expect(containerStateOf(podman('plain')).health).toBe('none');
  });

  it('a container whose health check has not passed is not passing', () => {
    const [service] = deriveServices(podman('starting'), options()).services;
    expect(service?.health).toBe('warning');
    expect(containerStateOf(podman('starting')).health).toBe('starting');
  });

  it('HostIp "" is the wildcard: advertised at --ip, skipped without it', () => {
    const withIp = deriveServices(podman('anyip'), options({ hostIp: '192.0.2.10' }));
    expect(withIp.services.map((s) => `${s.address}:${s.port}`)).toEqual(['192.0.2.10:40049']);
    const without = deriveServices(podman('anyip'), options());
    expect(without.services).toEqual([]);
    expect(without.skipped?.map((s) => s.reason)).toEqual(['wildcard-without-ip']);
  });

  it('--network none has Networks {}: --internal has no address to advertise', () => {
    const { services, skipped } = deriveServices(podman('nonet'), options({ internal: true }));
    expect(services).toEqual([]);
    expect(skipped?.map((s) => s.reason)).toEqual(['no-exposed-port']);
  });

  it("a pod is registered once, through its infra container, with the pod's labels and name", () => {
    const infra = deriveServices(podman('pod-infra'), options());
    expect(infra.services.map((s) => [s.id, s.name, `${s.address}:${s.port}`])).toEqual([
      ['host1:f2a3a2355230-infra:80', 'shop-80', '127.0.0.1:43787'],
      ['host1:f2a3a2355230-infra:8080', 'shop-8080', '127.0.0.1:34239'],
    ]);
    const member = deriveServices(podman('pod-web'), options());
    expect(member.services).toEqual([]);
    expect(member.skipped?.map((s) => [s.port, s.reason])).toEqual([
      [80, 'shared-network'],
      [8080, 'shared-network'],
    ]);
    expect(member.skipped?.[0]?.detail).toContain('container 16f97f8d5f70');
    // With --internal too: the member's own view of the pod's network is not its own to register.
    expect(deriveServices(podman('pod-web'), options({ internal: true })).services).toEqual([]);
  });

  it('an unlabelled infra container is named after its pod, not the pause image', () => {
    const infra = podman('pod-infra');
    (infra.Config.Labels as Record<string, string>) = {};
    expect(deriveServices(infra, options()).services.map((s) => s.name)).toEqual([
      'podman-pod-80',
      'podman-pod-8080',
    ]);
  });
});
