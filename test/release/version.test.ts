/**
 * The release process, run for real on a copy of the workspace's manifests: a changeset for one library, then
 * `pnpm version-packages` (changesets' own CLI). Every `@registrar/*` package moves to the one new version, the
 * changelogs say why, the Dockerfile's image label default follows the CLI, and private packages stay put.
 */
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeDir, tempDir } from '@registrar/test-servers/process';

const root = fileURLToPath(new URL('../../', import.meta.url));
const LIBRARIES = readdirSync(join(root, 'packages'));
let work: string | undefined;

const read = (path: string) => readFileSync(join(work!, path), 'utf8');
const manifest = (path: string) => JSON.parse(read(path)) as { version?: string; dependencies?: object };

function run(command: string, args: string[]): string {
  const result = spawnSync(command, args, { cwd: work, encoding: 'utf8', timeout: 120_000 });
  if (result.status !== 0) {
    throw new Error(
      `${command} ${args.join(' ')}: exit ${result.status ?? result.signal}\n${result.stdout}\n${result.stderr}`,
    );
  }
  return result.stdout;
}

beforeAll(() => {
  work = tempDir('release');
  for (const file of ['package.json', 'pnpm-workspace.yaml', 'Dockerfile', 'scripts']) {
    cpSync(join(root, file), join(work, file), { recursive: true });
  }
  // The configuration only: changesets waiting for the next release would change what this one bumps.
  mkdirSync(join(work, '.changeset'));
  cpSync(join(root, '.changeset', 'config.json'), join(work, '.changeset', 'config.json'));
  for (const dir of [...LIBRARIES.map((name) => `packages/${name}`), 'test', 'test/servers', 'bench']) {
    mkdirSync(join(work, dir), { recursive: true });
    for (const file of ['package.json', 'CHANGELOG.md']) {
      if (existsSync(join(root, dir, file))) cpSync(join(root, dir, file), join(work, dir, file));
    }
  }
  // The workspace's installed tools (changesets' CLI among them), as a fresh clone has them after install.
  symlinkSync(join(root, 'node_modules'), join(work, 'node_modules'));
  writeFileSync(
    join(work, '.changeset', 'one-transaction.md'),
    "---\n'@registrar/etcd': patch\n---\n\nKeys are written in one transaction.\n",
  );
  // changesets reads the commit that added each changeset for the changelog.
  run('git', ['init', '-q']);
  run('git', ['add', '-A']);
  run('git', ['-c', 'user.name=test', '-c', 'user.email=test@localhost', 'commit', '-qm', 'a change']);
  run('pnpm', ['run', '--silent', 'version-packages']);
}, 180_000);

afterAll(() => {
  if (work) removeDir(work);
});

describe('pnpm version-packages', () => {
  const before = (
    JSON.parse(readFileSync(join(root, 'packages/cli/package.json'), 'utf8')) as { version: string }
  ).version;
  const [major, minor, patch] = before.split('.').map(Number);
  const next = `${major}.${minor}.${patch! + 1}`;

  it('moves every @registrar package to the one next version, and no private one', () => {
    for (const name of LIBRARIES) expect(manifest(`packages/${name}/package.json`).version).toBe(next);
    expect(manifest('test/package.json').version).toBe(
      (JSON.parse(readFileSync(join(root, 'test/package.json'), 'utf8')) as { version: string }).version,
    );
    expect(manifest('packages/cli/package.json').dependencies).toMatchObject({
      '@registrar/etcd': 'workspace:*',
    });
  });

  it('writes the change into the changelog of the package it names, and consumes the changeset', () => {
    const changelog = read('packages/etcd/CHANGELOG.md');
    expect(changelog).toMatch(new RegExp(`^# @registrar/etcd\\n\\n## ${next.replace(/\./g, '\\.')}\\n`));
    expect(changelog).toContain('Keys are written in one transaction.');
    expect(changelog).toContain(`## ${before}`);
    expect(read('packages/cli/CHANGELOG.md')).toContain(`## ${next}`);
    expect(existsSync(join(work!, '.changeset', 'one-transaction.md'))).toBe(false);
  });

  it("makes the Dockerfile's image version label default the CLI's new version", () => {
    expect(/^ARG VERSION=(\S+)$/m.exec(read('Dockerfile'))?.[1]).toBe(next);
  });
});
