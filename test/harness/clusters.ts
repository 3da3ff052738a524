import { readdirSync, readlinkSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fourLetter } from './zookeeper.js';
import { freePort, GiveUp, until } from './net.js';
import { removeDir, startProcess, tempDir, type ServerProcess } from './process.js';

/** One member of a registry cluster on loopback: its client port, and SIGKILL / start again with its data. */
export interface Member {
  readonly name: string;
  readonly port: number;
  readonly running: boolean;
  kill(): Promise<void>;
  start(): Promise<void>;
}

export interface Cluster {
  readonly members: readonly Member[];
  /** Every client endpoint, comma-separated, as a registry URI's host list takes them. */
  readonly hosts: string;
  /** Until every member answers, and the cluster has a leader again. */
  healthy(): Promise<void>;
  close(): Promise<void>;
}

function member(
  name: string,
  port: number,
  launch: () => ServerProcess,
  ready: () => Promise<boolean>,
): Member & { process?: ServerProcess } {
  let proc: ServerProcess | undefined;
  const self = {
    name,
    port,
    get running() {
      return proc !== undefined && proc.child.exitCode === null && proc.child.signalCode === null;
    },
    get process() {
      return proc;
    },
    async kill() {
      await proc?.kill('SIGKILL');
    },
    async start() {
      const started = launch();
      proc = started;
      await until(
        `${name} on 127.0.0.1:${port}`,
        async () => {
          if (started.child.exitCode !== null || started.child.signalCode !== null) {
            throw new GiveUp(`${name} exited; see ${started.logFile}`);
          }
          return ready();
        },
        60_000,
      );
    },
  };
  return self;
}

/** A 3-member etcd cluster (Debian's etcd 3.4) on loopback ports. */
export async function startEtcdCluster(size = 3): Promise<Cluster> {
  const dir = tempDir('etcd-cluster');
  const ports = await Promise.all(
    Array.from({ length: size }, async () => [await freePort(), await freePort()] as const),
  );
  const names = ports.map((_, i) => `e${i + 1}`);
  const initial = names.map((n, i) => `${n}=http://127.0.0.1:${ports[i]![1]}`).join(',');
  const members = names.map((name, i) => {
    const [client, peer] = ports[i]!;
    const endpoint = `http://127.0.0.1:${client}`;
    return member(
      name,
      client,
      () =>
        startProcess(
          process.env.ETCD_BIN ?? 'etcd',
          [
            `--name=${name}`,
            `--data-dir=${dir}/${name}`,
            `--listen-client-urls=${endpoint}`,
            `--advertise-client-urls=${endpoint}`,
            `--listen-peer-urls=http://127.0.0.1:${peer}`,
            `--initial-advertise-peer-urls=http://127.0.0.1:${peer}`,
            `--initial-cluster=${initial}`,
            '--initial-cluster-state=new',
            '--initial-cluster-token=registrar-test',
            '--logger=zap',
            '--log-level=warn',
          ],
          { dir, name },
        ),
      // Serving: a member without quorum answers /health with 503.
      async () => (await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1000) })).ok,
    );
  });
  // The members wait for each other to form the cluster: start them together.
  await Promise.all(members.map((m) => m.start()));
  return {
    members,
    hosts: members.map((m) => `127.0.0.1:${m.port}`).join(','),
    async healthy() {
      await until(
        'every etcd member healthy',
        async () => {
          const answers = await Promise.all(
            members.map((m) =>
              fetch(`http://127.0.0.1:${m.port}/health`, { signal: AbortSignal.timeout(1000) }).then(
                (r) => r.ok,
                () => false,
              ),
            ),
          );
          return answers.every(Boolean);
        },
        60_000,
      );
    },
    async close() {
      await Promise.all(members.map((m) => m.kill()));
      removeDir(dir);
    },
  };
}

const ZOOKEEPER_CLASSPATH =
  process.env.ZOOKEEPER_CLASSPATH ?? '/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar';

/** A 3-server ZooKeeper ensemble (Debian's 3.8) on loopback ports. */
export async function startZookeeperEnsemble(size = 3, tickTime = 500): Promise<Cluster> {
  const dir = tempDir('zookeeper-ensemble');
  const ports = await Promise.all(
    Array.from({ length: size }, async () => [await freePort(), await freePort(), await freePort()] as const),
  );
  const servers = ports.map(([, peer, election], i) => `server.${i + 1}=127.0.0.1:${peer}:${election}`);
  const members = ports.map(([client], i) => {
    const id = i + 1;
    const data = join(dir, `zk${id}`);
    mkdirSync(data, { recursive: true });
    writeFileSync(join(data, 'myid'), `${id}\n`);
    const config = join(dir, `zk${id}.cfg`);
    writeFileSync(
      config,
      [
        `tickTime=${tickTime}`,
        'initLimit=10',
        'syncLimit=5',
        'minSessionTimeout=1000',
        'maxSessionTimeout=30000',
        `dataDir=${data}`,
        `clientPort=${client}`,
        'clientPortAddress=127.0.0.1',
        'admin.enableServer=false',
        '4lw.commands.whitelist=ruok,srvr,stat,mntr,cons',
        ...servers,
        '',
      ].join('\n'),
    );
    return member(
      `zk${id}`,
      client,
      () =>
        startProcess(
          process.env.JAVA_BIN ?? 'java',
          [
            '-Xmx192m',
            '-cp',
            ZOOKEEPER_CLASSPATH,
            'org.apache.zookeeper.server.quorum.QuorumPeerMain',
            config,
          ],
          { dir, name: `zk${id}` },
        ),
      // `ruok` answers even without quorum; `srvr` says "Mode: leader|follower" only in a working ensemble.
      async () => /Mode: (leader|follower)/.test(await fourLetter(client, 'srvr', 1000).catch(() => '')),
    );
  });
  await Promise.all(members.map((m) => m.start()));
  return {
    members,
    hosts: members.map((m) => `127.0.0.1:${m.port}`).join(','),
    async healthy() {
      await until(
        'every ZooKeeper server in the ensemble',
        async () => {
          const modes = await Promise.all(
            members.map((m) => fourLetter(m.port, 'srvr', 1000).catch(() => '')),
          );
          return modes.every((mode) => /Mode: (leader|follower)/.test(mode));
        },
        60_000,
      );
    },
    async close() {
      await Promise.all(members.map((m) => m.kill()));
      removeDir(dir);
    },
  };
}

/**
 * The loopback ports a process has established TCP connections to, read from /proc (its socket fds, matched
 * with /proc/net/tcp): which cluster member a bridge is talking to right now.
 */
export function connectedPorts(pid: number): Set<number> {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      const match = /^socket:\[(\d+)\]$/.exec(target);
      if (match) inodes.add(match[1]!);
    } catch {
      // The fd closed meanwhile.
    }
  }
  const ports = new Set<number>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      // sl local_address rem_address st ... inode (10th field)
      if (fields.length < 10 || fields[3] !== '01' || !inodes.has(fields[9]!)) continue;
      ports.add(parseInt(fields[2]!.split(':')[1]!, 16));
    }
  }
  return ports;
}
