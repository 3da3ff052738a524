import Docker from 'dockerode';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, createWriteStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GiveUp, until } from '@registrar/core/testing';
import { removeDir, tempDir } from '@registrar/test-servers/process';
import { writeTestRootfs } from './docker.js';

/**
 * Podman for a test file: its own `podman system service --time=0` on a socket in a temp dir (stopped by its
 * pid), the `podman` CLI on the same store, and the busybox test image imported into that store. Rootful it
 * uses the machine's store (/var/lib/containers), as a Podman host does; rootless it runs as a test user with
 * subordinate ids, with a home (and so a store) of its own per file.
 *
 * This machine refuses Podman's default rlimits ("error setting rlimit type 7: operation not permitted"), so
 * the service and the CLI read a containers.conf of the harness's own (CONTAINERS_CONF) with smaller
 * `default_ulimits`; /etc is left alone.
 */
export interface Podman {
  /** `unix://<dir>/podman.sock`, for `--docker-host`. */
  readonly host: string;
  /** A Docker API client on the service's socket. */
  readonly docker: Docker;
  readonly rootless: boolean;
  /** Put on every container and pod this harness creates (`podman run --label`), for clean-up. */
  readonly label: string;
  /** Run the podman CLI on the same store; resolves with its stdout, rejects with its stderr. */
  cli(args: readonly string[], timeoutMs?: number): Promise<string>;
  readonly serviceRunning: boolean;
  /** Kill the API service (SIGKILL, by its pid) and wait for it; containers keep running. */
  killService(): Promise<void>;
  /** Start the API service again on the same socket. */
  startService(): Promise<void>;
  /** Remove this harness's containers and pods, stop the service (and, rootless, the user's pause process). */
  close(): Promise<void>;
}

/** The busybox test image, imported into each store. */
export const PODMAN_TEST_IMAGE = 'localhost/registrar-test:busybox';

/** What a test container runs by default: busybox's httpd on port 80. */
const HTTPD = ['httpd', '-f', '-p', '80', '-h', '/www'];

/**
 * `podman run -d --name <name>` of the test image with the harness label and `args` (ports, env, pod), running
 * `cmd` (default httpd on port 80); resolves with the container's id.
 */
export async function runTestContainer(
  podman: Podman,
  name: string,
  args: readonly string[],
  cmd: readonly string[] = HTTPD,
): Promise<string> {
  const out = await podman.cli([
    'run',
    '-d',
    '--name',
    name,
    '--label',
    podman.label,
    ...args,
    PODMAN_TEST_IMAGE,
    ...cmd,
  ]);
  return out.trim();
}

/** The test user rootless Podman runs as. */
export const ROOTLESS_USER = 'registrar-rootless';

/** Containers run with the machine's own limits, which this sandbox allows (Podman's defaults it refuses). */
const CONTAINERS_CONF = `[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]
`;

interface RunAs {
  readonly uid: number;
  readonly gid: number;
  readonly env: NodeJS.ProcessEnv;
}

const CLI_TIMEOUT_MS = 60_000;

function execPodman(runAs: RunAs, args: readonly string[], timeoutMs = CLI_TIMEOUT_MS): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'podman',
      [...args],
      { env: runAs.env, uid: runAs.uid, gid: runAs.gid, timeout: timeoutMs, maxBuffer: 16 << 20 },
      (error, stdout, stderr) => {
        if (error) {
          const why = stderr.trim() || error.message;
          reject(new Error(`podman ${args.join(' ')}: ${why}`));
        } else resolve(stdout);
      },
    );
  });
}

/** Is `podman` installed? (scripts/bootstrap ci installs it.) */
export function podmanInstalled(): boolean {
  try {
    execFileSync('podman', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The test user with subordinate ids, created (as root) when missing. Returns its uid and gid. */
export function ensureRootlessUser(): { uid: number; gid: number } {
  const lookup = () => {
    const uid = Number(execFileSync('id', ['-u', ROOTLESS_USER], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', ROOTLESS_USER], { encoding: 'utf8' }).trim());
    return { uid, gid };
  };
  try {
    return lookup();
  } catch {
    // Debian's useradd gives a new user 65536 subordinate ids of its own (SUB_UID_COUNT in login.defs).
    execFileSync('useradd', ['--system', '--create-home', '--shell', '/usr/sbin/nologin', ROOTLESS_USER], {
      stdio: 'pipe',
    });
  }
  const ids = lookup();
  const has = (file: string) =>
    readFileSync(file, 'utf8')
      .split('\n')
      .some((line) => line.startsWith(`${ROOTLESS_USER}:`) || line.startsWith(`${ids.uid}:`));
  if (!has('/etc/subuid') || !has('/etc/subgid')) {
    // A range of the project's own, above what useradd hands out (login.defs: SUB_UID_MAX 600100000).
    const base = 1_000_000_000 + (ids.uid % 1000) * 65536;
    execFileSync('usermod', [
      '--add-subuids',
      `${base}-${base + 65535}`,
      '--add-subgids',
      `${base}-${base + 65535}`,
      ROOTLESS_USER,
    ]);
  }
  return ids;
}

export async function startPodman(options: { rootless?: boolean } = {}): Promise<Podman> {
  const rootless = options.rootless ?? false;
  const tag = randomBytes(3).toString('hex');
  const dir = tempDir('podman');
  const socket = join(dir, 'podman.sock');
  const conf = join(dir, 'containers.conf');
  writeFileSync(conf, CONTAINERS_CONF);
  let runAs: RunAs = {
    uid: 0,
    gid: 0,
    env: { ...process.env, CONTAINERS_CONF: conf },
  };
  let runtimeDir: string | undefined;
  if (rootless) {
    const { uid, gid } = ensureRootlessUser();
    // A home (so a store) and a runtime dir of its own per file: nothing left from another run.
    const home = join(dir, 'home');
    runtimeDir = join(dir, 'run');
    for (const d of [home, runtimeDir]) {
      mkdirSync(d, { mode: 0o700 });
      chownSync(d, uid, gid);
    }
    // The service creates its socket here, as the user; the directory is the user's to write.
    chownSync(dir, uid, gid);
    chmodSync(dir, 0o755);
    chmodSync(conf, 0o644);
    runAs = {
      uid,
      gid,
      env: {
        PATH: process.env.PATH,
        HOME: home,
        USER: ROOTLESS_USER,
        XDG_RUNTIME_DIR: runtimeDir,
        CONTAINERS_CONF: conf,
      },
    };
  }
  const cli = (args: readonly string[], timeoutMs?: number) => execPodman(runAs, args, timeoutMs);
  const docker = new Docker({ socketPath: socket });
  let service: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const logFile = join(dir, 'service.log');
  const isRunning = () => service !== undefined && service.exitCode === null && service.signalCode === null;

  const startService = async () => {
    const log = createWriteStream(logFile, { flags: 'a' });
    const child = spawn('podman', ['system', 'service', '--time=0', `unix://${socket}`], {
      env: runAs.env,
      uid: runAs.uid,
      gid: runAs.gid,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.pipe(log);
    child.stderr.pipe(log);
    service = child;
    exited = new Promise((resolve) => child.once('exit', () => resolve()));
    await until(
      `podman service on ${socket}`,
      async () => {
        if (!isRunning()) throw new GiveUp(`podman system service exited; see ${logFile}`);
        await docker.ping();
        return true;
      },
      30_000,
    );
  };

  const label = `registrar.test.podman=${tag}`;
  const removeOwn = async () => {
    const pods = (await cli(['pod', 'ps', '-q', '--filter', `label=${label}`])).split('\n').filter(Boolean);
    if (pods.length > 0) await cli(['pod', 'rm', '-f', '-t', '0', ...pods]);
    const ids = (await cli(['ps', '-aq', '--filter', `label=${label}`])).split('\n').filter(Boolean);
    if (ids.length > 0) await cli(['rm', '-f', '-t', '0', ...ids]);
  };

  const podman: Podman = {
    host: `unix://${socket}`,
    docker,
    rootless,
    label,
    cli,
    get serviceRunning() {
      return isRunning();
    },
    async killService() {
      if (!isRunning()) return;
      service?.kill('SIGKILL');
      await exited;
    },
    startService,
    async close() {
      try {
        await removeOwn();
      } finally {
        await podman.killService();
        if (runtimeDir !== undefined) {
          // Rootless Podman keeps the user namespace alive in a pause process of its own: ours, by its pid file.
          try {
            const pid = Number(readFileSync(join(runtimeDir, 'libpod', 'tmp', 'pause.pid'), 'utf8').trim());
            if (pid > 1) process.kill(pid, 'SIGKILL');
          } catch {
            // never started, or gone
          }
        }
        removeDir(dir);
      }
    },
  };

  try {
    await ensureImage(cli, dir);
    await startService();
  } catch (error) {
    await podman.close().catch(() => undefined);
    throw error;
  }
  return podman;
}

/** Import the busybox test image into the store unless it is there. */
async function ensureImage(cli: (args: readonly string[]) => Promise<string>, dir: string) {
  try {
    await cli(['image', 'exists', PODMAN_TEST_IMAGE]);
    return;
  } catch {
    // import below
  }
  const rootfs = join(dir, 'rootfs.tar');
  const tree = tempDir('podman-image');
  try {
    writeTestRootfs(tree);
    execFileSync('tar', ['-C', tree, '-cf', rootfs, '.']);
    chmodSync(rootfs, 0o644);
  } finally {
    removeDir(tree);
  }
  await cli(['import', rootfs, PODMAN_TEST_IMAGE]);
}
