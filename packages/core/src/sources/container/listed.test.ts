import { describe, expect, it } from 'vitest';
import { listedAsInspect } from './listed.js';

/** A list entry as Docker 20.10 answers `GET /containers/json` for a container publishing 80/tcp twice. */
const entry = (overrides: Record<string, unknown> = {}) => ({
  Id: 'a'.repeat(64),
  Names: ['/web-1'],
  Image: 'registry:5000/team/web:1.2',
  ImageID: `sha256:${'b'.repeat(64)}`,
  Command: 'httpd -f',
  Created: 1764031146,
  Ports: [
    { IP: '0.0.0.0', PrivatePort: 80, PublicPort: 8080, Type: 'tcp' },
    { IP: '::', PrivatePort: 80, PublicPort: 8080, Type: 'tcp' },
    { PrivatePort: 9000, Type: 'tcp' },
    { IP: '127.0.0.1', PrivatePort: 53, PublicPort: 5353, Type: 'udp' },
  ],
  Labels: { SERVICE_NAME: 'web' },
  State: 'running',
  Status: 'Up 3 minutes (healthy)',
  HostConfig: { NetworkMode: 'default' },
  NetworkSettings: { Networks: { bridge: { IPAddress: '172.17.0.2', GlobalIPv6Address: '' } } },
  Mounts: [],
  ...overrides,
});

describe('listedAsInspect', () => {
  it('reads ports, labels, networks, state and health into the inspect fields derivation reads', () => {
    expect(listedAsInspect(entry())).toEqual({
      Id: 'a'.repeat(64),
      Name: '/web-1',
      Image: `sha256:${'b'.repeat(64)}`,
      Config: {
        Image: 'registry:5000/team/web:1.2',
        Labels: { SERVICE_NAME: 'web' },
        ExposedPorts: { '80/tcp': {}, '9000/tcp': {}, '53/udp': {} },
      },
      State: { Status: 'running', Running: true, Paused: false, Health: { Status: 'healthy', Log: [] } },
      HostConfig: { NetworkMode: 'default' },
      NetworkSettings: {
        Ports: {
          '80/tcp': [
            { HostIp: '0.0.0.0', HostPort: '8080' },
            { HostIp: '::', HostPort: '8080' },
          ],
          '9000/tcp': null,
          '53/udp': [{ HostIp: '127.0.0.1', HostPort: '5353' }],
        },
        Networks: { bridge: { IPAddress: '172.17.0.2', GlobalIPv6Address: '' } },
      },
    });
  });

  it('health from the status: starting, unhealthy, and none without a check', () => {
    const health = (Status: string) => listedAsInspect(entry({ Status }))?.State.Health?.Status;
    expect(health('Up 2 seconds (health: starting)')).toBe('starting');
    expect(health('Up 5 minutes (unhealthy)')).toBe('unhealthy');
    expect(health('Up 5 minutes')).toBeUndefined();
    expect(listedAsInspect(entry({ State: 'paused', Status: 'Up 5 minutes (Paused)' }))?.State).toEqual({
      Status: 'paused',
      Running: true,
      Paused: true,
    });
  });

  it('undefined where only an inspect can say: host network, an image id, a pod infra, not running', () => {
    expect(listedAsInspect(entry({ HostConfig: { NetworkMode: 'host' } }))).toBeUndefined();
    expect(listedAsInspect(entry({ Image: `sha256:${'b'.repeat(64)}` }))).toBeUndefined();
    expect(listedAsInspect(entry({ Image: 'bbbbbbbbbbbb' }))).toBeUndefined();
    expect(listedAsInspect(entry({ Image: 'localhost/podman-pause:4.3.1-0' }))).toBeUndefined();
    expect(listedAsInspect(entry({ Names: ['/0123456789ab-infra'] }))).toBeUndefined();
    for (const State of ['exited', 'created', 'restarting', 'dead', undefined]) {
      expect(listedAsInspect(entry({ State }))).toBeUndefined();
    }
  });

  it('total on untrusted input', () => {
    for (const value of [null, 42, 'x', [], {}, { Id: 5 }, entry({ Ports: 'x', Names: null, Labels: [] })]) {
      expect(() => listedAsInspect(value)).not.toThrow();
    }
    expect(
      listedAsInspect(entry({ Ports: [{ PrivatePort: '80', Type: 'tcp' }, null] }))?.Config.ExposedPorts,
    ).toEqual({});
  });
});
