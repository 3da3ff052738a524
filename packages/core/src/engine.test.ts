import { describe, expect, it } from 'vitest';
import { engineIdentity } from './engine.js';

/** The fields of `/info` this reads, as Podman 4.3's compatible API answered them (rootful). */
const podmanInfo = (id: string) => ({
  ID: id,
  Name: 'vm',
  ServerVersion: '4.3.1',
  DockerRootDir: '/var/lib/containers/storage',
  BuildahVersion: '1.28.2',
  Rootless: false,
  SecurityOptions: ['name=seccomp,profile=default'],
});

describe('engineIdentity', () => {
  it('Docker: its own ID, as every entry records it', () => {
    expect(
      engineIdentity({
        ID: 'ABCD:EFGH',
        Name: 'host1',
        ServerVersion: '20.10.24',
        SecurityOptions: ['name=seccomp,profile=default'],
      }),
    ).toEqual({ kind: 'docker', id: 'ABCD:EFGH', rootless: false, version: 'Docker 20.10.24' });
    expect(engineIdentity({ SecurityOptions: ['name=rootless'] }).rootless).toBe(true);
    expect(engineIdentity({}).id).toBeUndefined();
  });

  it('Podman: a stable ID, though its /info answers a random one on every call', () => {
    const a = engineIdentity(podmanInfo('a9b512af-4e0d-4fc3-94c4-a95523d5a8b8'));
    const b = engineIdentity(podmanInfo('016c6eba-eb76-444a-a384-934e4317fa94'));
    expect(a).toEqual(b);
    expect(a).toMatchObject({ kind: 'podman', rootless: false, version: 'Podman 4.3.1' });
    expect(a.id).toMatch(/^podman-[0-9a-f]{32}$/);
  });

  it('Podman: another store on the same host (a rootless user) is another engine', () => {
    const rootful = engineIdentity(podmanInfo('x'));
    const rootless = engineIdentity({
      ...podmanInfo('y'),
      Rootless: true,
      DockerRootDir: '/home/app/.local/share/containers/storage',
    });
    expect(rootless.rootless).toBe(true);
    expect(rootless.id).not.toBe(rootful.id);
    expect(engineIdentity({ ...podmanInfo('z'), Name: 'other' }).id).not.toBe(rootful.id);
  });

  it('anything else is an engine without an ID, never an exception', () => {
    for (const info of [null, 42, 'x', [], { BuildahVersion: 1 }])
      expect(engineIdentity(info)).toMatchObject({ rootless: false });
    expect(engineIdentity({ BuildahVersion: '1' })).toEqual({
      kind: 'podman',
      rootless: false,
      version: 'Podman (unknown version)',
    });
  });
});
