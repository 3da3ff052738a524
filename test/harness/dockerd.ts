import type Docker from 'dockerode';
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { GiveUp, until } from '@registrar/core/testing';
import { docker as hostDocker, TEST_IMAGE } from './docker.js';

/**
 * A `dockerd` of a test's own, in a network namespace (and UTS namespace, so its host name is its own), with
 * its data and exec roots, socket, pid file and log in `dir`. The recipe is ../shared/ENVIRONMENT.md's;
 * harness/engine.ts (one engine) and harness/hosts.ts (several, on a test bridge) build on it.
 */
export interface DockerdProcess {
  readonly child: ChildProcess;
  /** Resolves once the process has exited. */
  readonly exited: Promise<void>;
  readonly running: boolean;
  /** Send `signal` (by its pid) and wait until it has exited. */
  kill(signal: NodeJS.Signals): Promise<void>;
}

export interface DockerdOptions {
  /** The network namespace's name (under /run/netns). */
  readonly ns: string;
  readonly hostname: string;
  readonly dir: string;
  /** A client on `<dir>/docker.sock`: the launch waits until it answers. */
  readonly docker: Docker;
  readonly args?: readonly string[];
}

export const dockerSocket = (dir: string) => join(dir, 'docker.sock');

export async function launchDockerd(options: DockerdOptions): Promise<DockerdProcess> {
  const { ns, hostname, dir, docker } = options;
  const logFile = join(dir, 'dockerd.log');
  const log = createWriteStream(logFile, { flags: 'a' });
  const args = [
    `--data-root=${dir}/data`,
    `--exec-root=${dir}/exec`,
    `-H`,
    `unix://${dockerSocket(dir)}`,
    `--pidfile=${dir}/docker.pid`,
    '--storage-driver=overlay2',
    // No docker0 and no iptables rules: this engine must not touch the machine's own.
    '--bridge=none',
    '--iptables=false',
    ...(options.args ?? []),
  ];
  // nsenter --net (not `ip netns exec`, which remounts /sys: dockerd then finds no devices cgroup).
  const child = spawn(
    'nsenter',
    [
      `--net=/run/netns/${ns}`,
      'unshare',
      '--uts',
      'sh',
      '-c',
      `hostname ${hostname} && exec dockerd "$@"`,
      'sh',
      ...args,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const isRunning = () => child.exitCode === null && child.signalCode === null;
  await until(
    `dockerd ${hostname}`,
    async () => {
      if (!isRunning()) throw new GiveUp(`dockerd ${hostname} exited; see ${logFile}`);
      await docker.ping();
      return true;
    },
    60_000,
  );
  return {
    child,
    exited,
    get running() {
      return isRunning();
    },
    async kill(signal) {
      if (!isRunning()) return;
      const containerd = containerdPid(dir);
      child.kill(signal);
      await exited;
      // containerd dies with its dockerd (parent-death signal) but not at once; a dockerd started again
      // before it has gone connects to the dying one and gives up ("timeout waiting for containerd").
      if (containerd !== undefined)
        await until(`containerd of dockerd ${hostname} gone`, () => !isAlive(containerd), 20_000);
    },
  };
}

/** The pid of the containerd a dockerd in `dir` started, if it is running. */
function containerdPid(dir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(dir, 'exec', 'containerd', 'containerd.pid'), 'utf8').trim());
    // Only ours: its command line names our exec root.
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(`${dir}/exec/`) ? pid : undefined;
  } catch {
    return undefined;
  }
}

function isAlive(pid: number) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Each engine has an image store of its own: copy the busybox test image from the machine's engine. */
export async function loadTestImage(docker: Docker) {
  const image = await hostDocker.getImage(TEST_IMAGE).get();
  const loaded = await docker.loadImage(image);
  await new Promise<void>((resolve, reject) => {
    loaded.on('error', reject);
    loaded.on('end', () => resolve());
    loaded.resume();
  });
}

/** dockerd bind-mounts its data root onto itself and may leave that behind: unmount, deepest first. */
export function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[1] ?? '')
    .filter((path) => path === dir || path.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

interface ProcInfo {
  readonly pid: number;
  readonly ppid: number;
  readonly cmdline: string;
}

function processes(): ProcInfo[] {
  const found: ProcInfo[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
      const ppid = Number(/^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${entry}/status`, 'utf8'))?.[1]);
      found.push({ pid: Number(entry), ppid, cmdline });
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** The cgroup directories of `pid` that are the container's own (their last part is its id). */
function containerCgroups(pid: number, id: string): string[] {
  const unified = existsSync('/sys/fs/cgroup/unified') ? '/sys/fs/cgroup/unified' : '/sys/fs/cgroup';
  try {
    return readFileSync(`/proc/${pid}/cgroup`, 'utf8')
      .split('\n')
      .map((line) => /^\d+:([^:]*):(.*)$/.exec(line))
      .filter((m): m is RegExpExecArray => m !== null && m[2]!.endsWith(`/${id}`))
      .map(([, controllers, path]) =>
        controllers === ''
          ? `${unified}${path}`
          : `/sys/fs/cgroup/${controllers!.replace('name=', '')}${path}`,
      );
  } catch {
    return [];
  }
}

/**
 * What a dockerd in `dir` left running when it could not be started again to reap it: processes whose
 * command line names `dir` (dockerd, containerd, the shims) and the containers the shims hold. SIGKILL by
 * pid, containers first (their init's death ends the rest of the container), then the containers' cgroups.
 * Returns how many processes it killed; 0 after a clean stop.
 */
export async function killLeftovers(dir: string): Promise<number> {
  const all = processes();
  // Only the engine's own programs: a client naming the socket (a bridge under test) is not ours to kill.
  const ours = all.filter(
    (p) => p.cmdline.includes(`${dir}/`) && /^(\S*\/)?(dockerd|containerd)/.test(p.cmdline),
  );
  const shims = new Map(
    ours
      .filter((p) => p.cmdline.includes('containerd-shim'))
      .map((p) => [p.pid, / -id ([0-9a-f]+)/.exec(p.cmdline)?.[1] ?? ''] as const),
  );
  const containers = all.filter((p) => shims.has(p.ppid));
  const cgroups = containers.flatMap((p) => containerCgroups(p.pid, shims.get(p.ppid)!));
  const victims = [...containers, ...ours];
  for (const p of victims) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await until(`leftovers of ${dir} gone`, () => victims.every((p) => !isAlive(p.pid)), 20_000);
  for (const path of cgroups) {
    try {
      rmdirSync(path);
    } catch {
      // removed already, or shared: not ours to force
    }
  }
  return victims.length;
}
