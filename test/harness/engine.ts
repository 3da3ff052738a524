import Docker from 'dockerode';
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { tempDir } from '@registrar/test-servers/process';
import {
  dockerSocket,
  killLeftovers,
  launchDockerd,
  loadTestImage,
  mountsUnder,
  type DockerdProcess,
} from './dockerd.js';

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
  /** Its IPv6 subnet (a ULA /64) when started with `ipv6`: the network is dual-stack. */
  readonly ipv6Subnet?: string;
  /** The network namespace it runs in (`/run/netns/<netns>`): what reaches its containers runs there. */
  readonly netns: string;
  /** Run a command inside the engine's network namespace; resolves with its stdout. */
  inNamespace(command: string, args: readonly string[], timeoutMs?: number): Promise<string>;
  readonly running: boolean;
  /** SIGTERM to dockerd, by its pid, and wait until it has exited. */
  stop(): Promise<void>;
  /** Start it again on the same data; `liveRestore` keeps containers running while it is down. */
  start(options?: { liveRestore?: boolean }): Promise<void>;
  close(): Promise<void>;
}

let engines = 0;

export interface EngineOptions {
  readonly liveRestore?: boolean;
  /** Make its network dual-stack, with an IPv6 ULA /64 of the project's own beside the IPv4 /24. */
  readonly ipv6?: boolean;
}

export async function startEngine(options: EngineOptions = {}): Promise<Engine> {
  const tag = randomBytes(3).toString('hex');
  const ns = `registrar-${tag}`;
  const name = `engine-${tag}`;
  const dir = tempDir('engine');
  const network = 'enginenet';
  // A /24 of the project's test range per engine of this process, and the same number in a ULA /64.
  const slot = (process.pid * 7 + engines++) % 250;
  const subnet = `10.233.${slot}.0/24`;
  const ipv6Subnet = options.ipv6 ? `fd00:233:0:${slot.toString(16)}::/64` : undefined;
  execFileSync('ip', ['netns', 'add', ns]);
  execFileSync('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
  const engineDocker = new Docker({ socketPath: dockerSocket(dir) });
  let dockerd: DockerdProcess | undefined;

  const launch = async (liveRestore: boolean) => {
    dockerd = await launchDockerd({
      ns,
      hostname: name,
      dir,
      docker: engineDocker,
      args: liveRestore ? ['--live-restore'] : [],
    });
  };

  const engine: Engine = {
    host: `unix://${dockerSocket(dir)}`,
    docker: engineDocker,
    name,
    network,
    ...(ipv6Subnet !== undefined && { ipv6Subnet }),
    netns: ns,
    inNamespace: (command, args, timeoutMs = 20_000) =>
      new Promise((resolve, reject) => {
        // nsenter --net (not `ip netns exec`): the same namespace the engine's containers are reached in.
        execFile(
          'nsenter',
          [`--net=/run/netns/${ns}`, command, ...args],
          { timeout: timeoutMs },
          (error, stdout, stderr) =>
            error
              ? reject(new Error(`${command} in ${ns}: ${stderr.trim() || error.message}`))
              : resolve(stdout),
        );
      }),
    get running() {
      return dockerd?.running ?? false;
    },
    async stop() {
      await dockerd?.kill('SIGTERM');
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
        await killLeftovers(dir);
        execFileSync('ip', ['netns', 'del', ns]);
        for (const path of mountsUnder(dir)) execFileSync('umount', ['-l', path]);
        rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
      }
    },
  };

  try {
    await launch(options.liveRestore ?? false);
    await loadTestImage(engineDocker);
    await engineDocker.createNetwork({
      Name: network,
      Driver: 'bridge',
      ...(ipv6Subnet !== undefined && { EnableIPv6: true }),
      IPAM: { Config: [{ Subnet: subnet }, ...(ipv6Subnet !== undefined ? [{ Subnet: ipv6Subnet }] : [])] },
    });
  } catch (error) {
    await engine.close().catch(() => undefined);
    throw error;
  }
  return engine;
}
