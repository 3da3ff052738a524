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
});
