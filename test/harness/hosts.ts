import Docker from 'dockerode';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  existsSync,
  linkSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { until } from '@registrar/core/testing';
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
 * Several Docker hosts on this machine: each a network namespace with a veth on a test bridge of this run's
 * own and a `dockerd` of its own (harness/dockerd.ts), optionally joined into a Swarm with an attachable
 * overlay network. The recipe is ../shared/ENVIRONMENT.md's ("Several Docker hosts on one machine").
 *
 * Every address is in the project's test ranges, in a /24 this run claims (`slot`, see `claimSlot`):
 * the bridge and hosts on 10.231.<slot>.0/24, the overlay on 10.232.<slot>.0/24, Swarm's own networks
 * (ingress) from 10.234.<slot>.0/24 and each engine's local ones (docker_gwbridge) from 10.235.<slot>.0/24.
 */
export interface TestHost {
  /** 1-based. */
  readonly index: number;
  /** Its host name, which is also Docker's `info.Name` (the bridge's default node id). */
  readonly name: string;
  /** Its network namespace (under /run/netns). */
  readonly ns: string;
  /** Its address on the test bridge. */
  readonly address: string;
  /** `unix://<dir>/docker.sock`, for `--docker-host`. */
  readonly host: string;
  readonly docker: Docker;
  readonly running: boolean;
  /** Signal its dockerd by pid and wait until it has exited; SIGKILL is a host that died. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Start its dockerd again on the same data (it rejoins the Swarm, if any). */
  start(): Promise<void>;
}

export interface TestHosts {
  readonly hosts: readonly TestHost[];
  /** The test bridge's name. */
  readonly bridge: string;
  /** This run's slot: the third octet of each of its subnets. */
  readonly slot: number;
  /** With `swarm`: the attachable overlay network's name and subnet. */
  readonly overlay?: { readonly name: string; readonly subnet: string };
  /** Stop every dockerd, then remove namespaces, bridge, FORWARD rule, mounts and directories. */
  close(): Promise<void>;
}

export interface HostsOptions {
  /** Init a Swarm on host 1 and join the others; default false. */
  readonly swarm?: boolean;
  /** How many hosts are Swarm managers (host 1 and the next ones); the rest join as workers. Default 1. */
  readonly managers?: number;
  /**
   * Each host's host name (Docker's `info.Name`), in order; default `h<index>-n<slot>`. Names may repeat:
   * cloned machines share host names (each dockerd still has its own engine ID).
   */
  readonly names?: readonly string[];
}

const OVERLAY = 'testoverlay';
const STOP_TIMEOUT_MS = 30_000;
/** How often Swarm nodes heartbeat; a node is marked down after about three missed ones. */
export const SWARM_HEARTBEAT_MS = 1_000;

export async function startHosts(count: number, options: HostsOptions = {}): Promise<TestHosts> {
  const managers = options.managers ?? 1;
  if (!Number.isInteger(count) || count < 1 || count > 9)
    throw new Error(`startHosts: ${count} hosts; give a whole number from 1 to 9`);
  if (!Number.isInteger(managers) || managers < 1 || managers > count)
    throw new Error(
      `startHosts: managers ${managers}; give a whole number from 1 to the host count (${count})`,
    );
  const { names } = options;
  if (
    names !== undefined &&
    (names.length !== count || !names.every((n) => /^[a-z0-9][a-z0-9-]{0,62}$/.test(n)))
  )
    throw new Error(
      `startHosts: names ${JSON.stringify(names)}; give ${count} host names of lower-case letters, digits and "-"`,
    );

  const dir = tempDir('hosts');
  let slot: number;
  try {
    slot = await claimSlot(dir);
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  const bridge = `rgn${slot}br`;
  const forwardRule = ['FORWARD', '-i', bridge, '-o', bridge, '-j', 'ACCEPT'];
  // Undo steps, run last-first by close(); each is added as soon as the thing it undoes exists.
  const undo: (() => void | Promise<void>)[] = [() => releaseSlot(slot)];
  const hosts: (TestHost & { dockerd?: DockerdProcess })[] = [];

  const close = async () => {
    const errors: unknown[] = [];
    for (const step of undo.splice(0).reverse()) {
      try {
        await step();
      } catch (error) {
        errors.push(error);
      }
    }
    if (errors.length > 0)
      throw new AggregateError(errors, `startHosts: ${errors.length} clean-up steps failed`);
  };

  try {
    undo.push(() => {
      for (const path of mountsUnder(dir)) execFileSync('umount', ['-l', path]);
      rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    });
    ip('link', 'add', bridge, 'type', 'bridge');
    undo.push(() => ip('link', 'del', bridge));
    ip('addr', 'add', `10.231.${slot}.1/24`, 'dev', bridge);
    ip('link', 'set', bridge, 'up');
    // The machine's dockerd sets FORWARD to DROP, and bridged frames pass through it: without this rule the
    // hosts cannot reach each other (Swarm joins time out).
    execFileSync('iptables', ['-w', '-I', ...forwardRule]);
    undo.push(() => void execFileSync('iptables', ['-w', '-D', ...forwardRule]));

    for (let index = 1; index <= count; index++) {
      const ns = `rgn${slot}h${index}`;
      const veth = `rgn${slot}v${index}`;
      const address = `10.231.${slot}.${10 + index}`;
      const name = names?.[index - 1] ?? `h${index}-n${slot}`;
      const hostDir = join(dir, `h${index}`);
      ip('netns', 'add', ns);
      undo.push(async () => {
        const left = await killLeftovers(hostDir);
        if (left > 0) console.error(`startHosts: killed ${left} leftover processes of ${name}`);
        // Anything else still running in the namespace is ours too.
        for (const pid of netnsPids(ns)) killPid(pid);
        ip('netns', 'del', ns);
      });
      ip('link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
      ip('link', 'set', veth, 'master', bridge, 'up');
      ip('-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0');
      ip('-n', ns, 'link', 'set', 'eth0', 'up');
      ip('-n', ns, 'link', 'set', 'lo', 'up');
      mkdirSync(hostDir);
      const docker = new Docker({ socketPath: dockerSocket(hostDir) });
      const launch = async () => {
        testHost.dockerd = await launchDockerd({
          ns,
          hostname: name,
          dir: hostDir,
          docker,
          args: [
            `--default-address-pool=base=10.235.${slot}.0/24,size=28`,
            `--config-file=${ownEngineId(hostDir)}`,
          ],
        });
      };
      const testHost: TestHost & { dockerd?: DockerdProcess } = {
        index,
        name,
        ns,
        address,
        host: `unix://${dockerSocket(hostDir)}`,
        docker,
        get running() {
          return testHost.dockerd?.running ?? false;
        },
        async kill(signal = 'SIGTERM') {
          await testHost.dockerd?.kill(signal);
        },
        start: launch,
      };
      hosts.push(testHost);
    }

    undo.push(() => stopHosts(hosts.filter((h) => h.dockerd !== undefined)));
    await Promise.all(
      hosts.map(async (h) => {
        await h.start();
        await loadTestImage(h.docker);
      }),
    );

    const overlay = options.swarm === true ? await formSwarm(hosts, managers, slot) : undefined;
    return { hosts, bridge, slot, ...(overlay && { overlay }), close };
  } catch (error) {
    await close().catch((cleanupError: unknown) =>
      console.error('startHosts: clean-up failed', cleanupError),
    );
    throw error;
  }
}

async function formSwarm(hosts: readonly TestHost[], managers: number, slot: number) {
  const [first, ...others] = hosts as [TestHost, ...TestHost[]];
  await first.docker.swarmInit({
    ListenAddr: `${first.address}:2377`,
    AdvertiseAddr: first.address,
    DefaultAddrPool: [`10.234.${slot}.0/24`],
    SubnetSize: 26,
    // Swarm's default 5 s (a dead node marked down after ~15 s) would dominate a test's run time.
    Spec: { Dispatcher: { HeartbeatPeriod: SWARM_HEARTBEAT_MS * 1_000_000 } },
  });
  const { JoinTokens } = (await first.docker.swarmInspect()) as {
    JoinTokens: { Worker: string; Manager: string };
  };
  // One at a time: a manager joining while another is still catching up can stall the Raft join.
  for (const h of others) {
    await h.docker.swarmJoin({
      ListenAddr: `${h.address}:2377`,
      AdvertiseAddr: h.address,
      RemoteAddrs: [`${first.address}:2377`],
      JoinToken: h.index <= managers ? JoinTokens.Manager : JoinTokens.Worker,
    });
  }
  await until(
    `all ${hosts.length} Swarm nodes ready`,
    async () => {
      const nodes = (await first.docker.listNodes()) as { Status?: { State?: string } }[];
      return nodes.length === hosts.length && nodes.every((n) => n.Status?.State === 'ready');
    },
    60_000,
  );
  const subnet = `10.232.${slot}.0/24`;
  await first.docker.createNetwork({
    Name: OVERLAY,
    Driver: 'overlay',
    Attachable: true,
    CheckDuplicate: true,
    IPAM: { Config: [{ Subnet: subnet }] },
  });
  return { name: OVERLAY, subnet };
}

/**
 * Remove every service and container, then stop every dockerd (all at once: one can take seconds). A host
 * that was killed is started again first, managers before workers and while the others still run (a worker
 * waits for its manager): its containers outlived it (containerd's shims keep them running), and only its
 * dockerd reaps them and their mounts and cgroups.
 */
async function stopHosts(hosts: readonly TestHost[]) {
  try {
    for (const h of hosts) if (!h.running) await h.start();
    const swarm = (await hosts[0]?.docker.info())?.Swarm as { ControlAvailable?: boolean } | undefined;
    const manager = swarm?.ControlAvailable === true ? hosts[0] : undefined;
    // Services first, or Swarm starts new tasks in place of the containers removed below.
    if (manager !== undefined) {
      const services = await manager.docker.listServices();
      await Promise.all(services.map((s) => manager.docker.getService(s.ID).remove()));
    }
    await Promise.all(
      hosts.map(async (h) => {
        const list = await h.docker.listContainers({ all: true });
        await Promise.all(list.map((c) => h.docker.getContainer(c.Id).remove({ force: true })));
      }),
    );
  } finally {
    await Promise.all(hosts.map(stopDockerd));
  }
}

async function stopDockerd(h: TestHost) {
  const stopped = h.kill('SIGTERM');
  const timedOut = await Promise.race([
    stopped.then(() => false),
    new Promise<boolean>((resolve) => setTimeout(() => resolve(true), STOP_TIMEOUT_MS).unref()),
  ]);
  if (timedOut) {
    console.error(`startHosts: dockerd ${h.name} did not stop within ${STOP_TIMEOUT_MS} ms; killing it`);
    await h.kill('SIGKILL');
  }
}

/**
 * A daemon config giving the engine an ID of its own, as on a separate machine: Docker 20.10 derives the ID
 * from a key that would otherwise be the machine's /etc/docker/key.json (one ID for every engine here);
 * newer versions keep it in `<data-root>/engine-id`, written here beforehand. Returns the config's path.
 */
function ownEngineId(hostDir: string): string {
  const config = join(hostDir, 'daemon.json');
  if (!existsSync(config)) {
    writeFileSync(config, JSON.stringify({ 'deprecated-key-path': join(hostDir, 'key.json') }));
    mkdirSync(join(hostDir, 'data'), { recursive: true });
    writeFileSync(join(hostDir, 'data', 'engine-id'), randomUUID());
  }
  return config;
}

function ip(...args: string[]) {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function netnsPids(ns: string): number[] {
  return execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' })
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map(Number);
}

function killPid(pid: number) {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/**
 * This run's slot (1–254): the third octet of its subnets and part of its interface and namespace names.
 * Claimed with a lock file holding our pid and directory, linked into place (atomic), so test files running
 * at the same time never share one. A run that died without closing (its process killed) left a lock whose
 * owner is gone: the next run first removes what it left (dockerds and their containers, namespaces,
 * bridge, FORWARD rule, mounts, directory).
 */
const LOCK = /^registrar-testnet-(\d+)\.lock$/;
const slotLock = (slot: number) => join(tmpdir(), `registrar-testnet-${slot}.lock`);

async function claimSlot(dir: string): Promise<number> {
  await sweepDeadRuns();
  const inUse = execFileSync('ip', ['-o', '-4', 'addr', 'show'], { encoding: 'utf8' });
  const links = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' });
  const first = (process.pid % 254) + 1;
  for (let i = 0; i < 254; i++) {
    const slot = ((first - 1 + i) % 254) + 1;
    if (inUse.includes(` 10.231.${slot}.`) || links.includes(` rgn${slot}br:`)) continue;
    if (tryLock(slot, dir)) return slot;
  }
  throw new Error(
    'startHosts: no free 10.231.x.0/24 slot: every one is in use or locked (/tmp/registrar-testnet-*.lock)',
  );
}

function tryLock(slot: number, dir: string): boolean {
  const path = slotLock(slot);
  // Written whole under another name, then linked: a lock file is never seen without its owner.
  const mine = `${path}.${process.pid}`;
  writeFileSync(mine, `${process.pid} ${dir}`);
  try {
    linkSync(mine, path);
    return true;
  } catch {
    return false;
  } finally {
    rmSync(mine, { force: true });
  }
}

async function sweepDeadRuns() {
  for (const file of readdirSync(tmpdir())) {
    const slot = Number(LOCK.exec(file)?.[1]);
    if (!(slot > 0)) continue;
    const path = join(tmpdir(), file);
    let owner: string;
    try {
      owner = readFileSync(path, 'utf8');
    } catch {
      continue;
    }
    const [pid, dir] = owner.trim().split(' ');
    if (isAlive(Number(pid))) continue;
    // One sweeper per lock: whoever moves it aside.
    const sweeping = `${path}.sweep.${process.pid}`;
    try {
      renameSync(path, sweeping);
    } catch {
      continue;
    }
    try {
      await sweepSlot(slot, dir ?? '');
      console.error(`startHosts: removed what a run that died (pid ${pid}) left in slot ${slot}`);
    } catch (error) {
      console.error(`startHosts: could not remove all that pid ${pid} left in slot ${slot}`, error);
    } finally {
      rmSync(sweeping, { force: true });
    }
  }
}

async function sweepSlot(slot: number, dir: string) {
  // Only a directory of ours: the lock file is plain text anyone could have written.
  const ours = dir.startsWith(join(tmpdir(), 'registrar-hosts-')) && !dir.includes('..');
  if (ours && existsSync(dir)) {
    for (const entry of readdirSync(dir)) if (/^h\d+$/.test(entry)) await killLeftovers(join(dir, entry));
  }
  const namespaces = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((ns) => new RegExp(`^rgn${slot}h\\d+$`).test(ns));
  for (const ns of namespaces) {
    for (const pid of netnsPids(ns)) killPid(pid);
    ip('netns', 'del', ns);
  }
  const bridge = `rgn${slot}br`;
  if (execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).includes(` ${bridge}:`))
    ip('link', 'del', bridge);
  const rule = ['FORWARD', '-i', bridge, '-o', bridge, '-j', 'ACCEPT'];
  for (;;) {
    try {
      execFileSync('iptables', ['-w', '-C', ...rule], { stdio: 'ignore' });
    } catch {
      break;
    }
    execFileSync('iptables', ['-w', '-D', ...rule]);
  }
  if (ours) {
    for (const path of mountsUnder(dir)) execFileSync('umount', ['-l', path]);
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  }
}

function isAlive(pid: number): boolean {
  if (!(pid > 0)) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function releaseSlot(slot: number) {
  rmSync(slotLock(slot), { force: true });
}
