import Docker from 'dockerode';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { docker as hostDocker, TEST_IMAGE } from './docker.js';
import { GiveUp, until } from './net.js';
import { tempDir } from './process.js';

/**
 * A Docker engine of a test's own: a `dockerd` in a network namespace (and UTS namespace, so its host name is
 * its own), with its own data and exec roots, socket and pid file. Restarting it touches no other test's
 * containers. Its containers live on a user-defined bridge network inside the namespace (`network`), which a
 * bridge registers with `--internal --network`. The recipe is ../shared/ENVIRONMENT.md's.
 */
export interface Engine {
  /** `unix://<dir>/docker.sock`, for `--docker-host`. */
  readonly host: string;
  readonly docker: Docker;
  /** Docker's `info.Name`: the namespace's host name. */
  readonly name: string;
  /** The bridge network its containers use. */
  readonly network: string;
  readonly running: boolean;
  /** SIGTERM to dockerd, by its pid, and wait until it has exited. */
  stop(): Promise<void>;
  /** Start it again on the same data; `liveRestore` keeps containers running while it is down. */
  start(options?: { liveRestore?: boolean }): Promise<void>;
  close(): Promise<void>;
}

let engines = 0;

export async function startEngine(options: { liveRestore?: boolean } = {}): Promise<Engine> {
  const tag = randomBytes(3).toString('hex');
  const ns = `registrar-${tag}`;
  const name = `engine-${tag}`;
  const dir = tempDir('engine');
  const socket = join(dir, 'docker.sock');
  const network = 'enginenet';
  // A /24 of the project's test range per engine of this process.
  const subnet = `10.233.${(process.pid * 7 + engines++) % 250}.0/24`;
  execFileSync('ip', ['netns', 'add', ns]);
  execFileSync('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
  const engineDocker = new Docker({ socketPath: socket });
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  const launch = async (liveRestore: boolean) => {
    const log = createWriteStream(join(dir, 'dockerd.log'), { flags: 'a' });
    const args = [
      `--data-root=${dir}/data`,
      `--exec-root=${dir}/exec`,
      `-H`,
      `unix://${socket}`,
      `--pidfile=${dir}/docker.pid`,
      '--storage-driver=overlay2',
      // No docker0 and no iptables rules: this engine must not touch the machine's own.
      '--bridge=none',
      '--iptables=false',
      ...(liveRestore ? ['--live-restore'] : []),
    ];
    // nsenter --net (not `ip netns exec`, which remounts /sys: dockerd then finds no devices cgroup).
    const started = spawn(
      'nsenter',
      [
        `--net=/run/netns/${ns}`,
        'unshare',
        '--uts',
        'sh',
        '-c',
        `hostname ${name} && exec dockerd "$@"`,
        'sh',
        ...args,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    started.stdout.pipe(log);
    started.stderr.pipe(log);
    child = started;
    exited = new Promise((resolve) => started.once('exit', () => resolve()));
    await until(
      `dockerd ${name}`,
      async () => {
        if (started.exitCode !== null || started.signalCode !== null) {
          throw new GiveUp(`dockerd ${name} exited; see ${join(dir, 'dockerd.log')}`);
        }
        await engineDocker.ping();
        return true;
      },
      60_000,
    );
  };

  const engine: Engine = {
    host: `unix://${socket}`,
    docker: engineDocker,
    name,
    network,
    get running() {
      return child !== undefined && child.exitCode === null && child.signalCode === null;
    },
    async stop() {
      if (!engine.running) return;
      child!.kill('SIGTERM');
      await exited;
    },
    async start(startOptions = {}) {
      await launch(startOptions.liveRestore ?? options.liveRestore ?? false);
    },
    async close() {
      try {
        if (!engine.running) await launch(false);
        const list = await engineDocker.listContainers({ all: true });
        await Promise.all(list.map((c) => engineDocker.getContainer(c.Id).remove({ force: true })));
      } finally {
        await engine.stop();
        execFileSync('ip', ['netns', 'del', ns]);
        // dockerd bind-mounts its data root onto itself and may leave that behind: unmount, deepest first.
        const mounts = readFileSync('/proc/self/mounts', 'utf8')
          .split('\n')
          .map((line) => line.split(' ')[1] ?? '')
          .filter((path) => path === dir || path.startsWith(`${dir}/`))
          .sort((a, b) => b.length - a.length);
        for (const path of mounts) execFileSync('umount', ['-l', path]);
        rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
      }
    },
  };

  try {
    await launch(options.liveRestore ?? false);
    // Its own image store: the busybox test image, copied from the machine's engine.
    const image = await hostDocker.getImage(TEST_IMAGE).get();
    const loaded = await engineDocker.loadImage(image);
    await new Promise<void>((resolve, reject) => {
      loaded.on('error', reject);
      loaded.on('end', () => resolve());
      loaded.resume();
    });
    await engineDocker.createNetwork({
      Name: network,
      Driver: 'bridge',
      IPAM: { Config: [{ Subnet: subnet }] },
    });
  } catch (error) {
    await engine.close().catch(() => undefined);
    throw error;
  }
  return engine;
}
