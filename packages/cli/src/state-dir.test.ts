import { ConfigError } from '@registrar/core';
import { chmodSync, chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { prepareStateDir } from './run.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
const fresh = () => {
  const dir = mkdtempSync(join(tmpdir(), 'state-dir-'));
  dirs.push(dir);
  return dir;
};

describe('--state-dir', () => {
  it('is created 0700 when missing', () => {
    const dir = join(fresh(), 'sub');
    expect(prepareStateDir(dir)).toBe(dir);
  });

  it('refuses a directory others can write to, saying how to fix it', () => {
    const dir = fresh();
    chmodSync(dir, 0o777);
    expect(() => prepareStateDir(dir)).toThrow(ConfigError);
    expect(() => prepareStateDir(dir)).toThrow(/others can write to it \(mode 777\).*chmod 700/);
  });

  it('refuses a directory another user owns', () => {
    // Only root can give a directory away; the CI machine runs as root.
    expect(process.getuid?.(), 'this test gives a directory to another user: run as root').toBe(0);
    const dir = fresh();
    chownSync(dir, 4242, 4242);
    expect(() => prepareStateDir(dir)).toThrow(/owned by uid 4242, not by this process/);
  });
});
