// deploy/systemd/registrar.service: the unit docs/deployment.md shows, and one systemd itself accepts.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const UNIT = `${ROOT}/deploy/systemd/registrar.service`;

describe('deploy/systemd/registrar.service', () => {
  it('is the unit docs/deployment.md shows', () => {
    const readme = readFileSync(`${ROOT}/docs/deployment.md`, 'utf8');
    const block = /```ini\n# \/etc\/systemd\/system\/registrar\.service\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(block).toBe(readFileSync(UNIT, 'utf8'));
  });

  it('passes systemd-analyze verify without a warning', () => {
    // systemd-analyze is in Debian's systemd package (scripts/bootstrap ci installs it).
    const result = spawnSync('systemd-analyze', ['verify', UNIT], { encoding: 'utf8' });
    expect(result.error).toBeUndefined();
    expect({ status: result.status, stdout: result.stdout, stderr: result.stderr }).toEqual({
      status: 0,
      stdout: '',
      stderr: '',
    });
  });

  it('gives the graceful shutdown (bounded to 10 s) room before systemd sends SIGKILL', () => {
    const unit = readFileSync(UNIT, 'utf8');
    expect(unit).toMatch(/^KillSignal=SIGTERM$/m);
    expect(Number(/^TimeoutStopSec=(\d+)$/m.exec(unit)?.[1])).toBeGreaterThan(10);
  });

  it('runs node as the image does: the same node flags, malloc settings and a compile cache of its own', () => {
    const unit = readFileSync(UNIT, 'utf8');
    const dockerfile = readFileSync(`${ROOT}/Dockerfile`, 'utf8');
    const stage = dockerfile.slice(dockerfile.search(/^FROM \S+ AS registrar$/m));
    const entrypoint = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(stage)![1]) as string[];
    const imageFlags = entrypoint.slice(
      entrypoint.indexOf('node') + 1,
      entrypoint.indexOf('/app/bin/registrar.js'),
    );
    const exec = /^ExecStart=(\S+) (.*?)\/opt\/registrar\/bin\/registrar\.js/m.exec(unit)!;
    expect(exec[1]).toMatch(/\/node$/);
    expect(exec[2].split(' ').filter(Boolean)).toEqual(imageFlags);
    const settings = (text: string) =>
      Object.fromEntries(
        [...text.matchAll(/\b(MALLOC_\w+|NODE_COMPILE_CACHE)=(\S+)/g)].map((m) => [m[1], m[2]]),
      );
    const image = settings(stage.replace(/\\\n/g, ' '));
    const service = settings(
      unit
        .split('\n')
        .filter((l) => l.startsWith('Environment='))
        .join(' '),
    );
    const malloc = (all: Record<string, string>) =>
      Object.fromEntries(Object.entries(all).filter(([k]) => k.startsWith('MALLOC_')));
    expect(malloc(service)).toEqual(malloc(image));
    expect(Object.keys(malloc(image)).length).toBeGreaterThan(0);
    // The cache is private to the service (a shared, writable one would let another user plant compiled code).
    expect(service.NODE_COMPILE_CACHE).toBe('/var/cache/registrar');
    expect(unit).toMatch(/^CacheDirectory=registrar$/m);
    expect(image.NODE_COMPILE_CACHE).toMatch(/^\/tmp\//);
  });
});
