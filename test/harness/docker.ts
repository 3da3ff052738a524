import Docker from 'dockerode';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { removeDir, tempDir } from '@registrar/test-servers/process';

/** The local test image: Debian's static busybox, imported (no registry is reachable). */
export const TEST_IMAGE = 'registrar-test:busybox';

export const docker = new Docker();

const APPLETS = [
  'sh',
  'sleep',
  'httpd',
  'wget',
  'cat',
  'echo',
  'ls',
  'nc',
  'true',
  'false',
  'touch',
  'rm',
  'kill',
  'test',
];

/**
 * The test image's root file system in `dir`: Debian's static busybox, its applets, `/tmp` and `/www`. Needs
 * `/bin/busybox` from Debian's busybox-static.
 */
export function writeTestRootfs(dir: string) {
  const busybox = '/bin/busybox';
  if (!existsSync(busybox))
    throw new Error('busybox-static is not installed (apt-get install busybox-static)');
  mkdirSync(`${dir}/bin`, { recursive: true });
  mkdirSync(`${dir}/tmp`);
  mkdirSync(`${dir}/www`);
  cpSync(busybox, `${dir}/bin/busybox`);
  for (const applet of APPLETS) symlinkSync('busybox', `${dir}/bin/${applet}`);
  writeFileSync(`${dir}/www/index.html`, 'registrar test\n');
}

/** Build the test image unless it exists. */
export async function ensureTestImage(): Promise<string> {
  try {
    await docker.getImage(TEST_IMAGE).inspect();
    return TEST_IMAGE;
  } catch {
    // build below
  }
  const dir = tempDir('image');
  try {
    writeTestRootfs(dir);
    execFileSync('sh', ['-c', `tar -C '${dir}' -c . | docker import - ${TEST_IMAGE}`], { stdio: 'ignore' });
  } finally {
    removeDir(dir);
  }
  return TEST_IMAGE;
}

/** Remove every container carrying `label` (test clean-up). */
export async function removeLabelled(label: string) {
  const list = await docker.listContainers({ all: true, filters: { label: [label] } });
  await Promise.all(
    list.map((c) =>
      docker
        .getContainer(c.Id)
        .remove({ force: true })
        .catch(() => undefined),
    ),
  );
}
