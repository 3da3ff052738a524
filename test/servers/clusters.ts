import { readdirSync, readlinkSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, GiveUp, until } from '@registrar/core/testing';
import { fourLetter } from './zookeeper.js';
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
  /** The member that leads right now, as the members themselves say (undefined while there is none). */
  leader(): Promise<Member | undefined>;
  /**
   * Whether the cluster serves writes right now, asked of every running member at once, each within
   * `timeoutMs` (etcd: a put of a probe key outside every test's prefix; ZooKeeper: a member in `leader` or
   * `follower` mode, which only a quorum with a leader gives).
   */
  serving(timeoutMs?: number): Promise<boolean>;
  close(): Promise<void>;
}

/** An etcd cluster can also hand its leadership to a member on request. */
export interface EtcdCluster extends Cluster {
  moveLeader(to: Member): Promise<void>;
}

/**
 * How long after `since` the cluster served again: a probe every 25 ms, overlapping (one that hangs on a dead
 * leader does not delay the next), and the first one to succeed decides. Resolves with milliseconds.
 */
export async function servingAgain(cluster: Cluster, since: number, timeoutMs = 30_000): Promise<number> {
  return new Promise((resolve, reject) => {
    let done = false;
    const timer = setInterval(() => {
      if (Date.now() - since > timeoutMs) {
        clearInterval(timer);
        reject(new Error(`the cluster did not serve again within ${timeoutMs} ms`));
        return;
      }
      void cluster.serving(2000).then((ok) => {
        if (!ok || done) return;
        done = true;
        clearInterval(timer);
        resolve(Date.now() - since);
      });
    }, 25);
  });
}

/** etcd's JSON gateway (the v3 API over HTTP), bounded: undefined when the member does not answer in time. */
async function etcdGateway(port: number, path: string, body: object, timeoutMs = 1000): Promise<unknown> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}${path}`, {
      method: 'POST',
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    return response.ok ? ((await response.json()) as unknown) : undefined;
  } catch {
    return undefined;
  }
}

interface EtcdStatus {
  header: { member_id: string };
  leader: string;
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

/** A 3-member etcd cluster (Debian's etcd 3.4, default raft timings) on loopback ports. */
export async function startEtcdCluster(size = 3): Promise<EtcdCluster> {
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
  const status = async (m: Member) =>
    m.running
      ? ((await etcdGateway(m.port, '/v3/maintenance/status', {})) as EtcdStatus | undefined)
      : undefined;
  const statuses = async () =>
    Promise.all(members.map(async (m) => ({ member: m, status: await status(m) })));
  const probeKey = Buffer.from('/registrar-cluster-probe').toString('base64');
  const leader = async () => {
    const all = await statuses();
    const id = all.find((s) => s.status)?.status?.leader;
    return all.find((s) => s.status?.header.member_id === id && id !== '0')?.member;
  };
  return {
    members,
    hosts: members.map((m) => `127.0.0.1:${m.port}`).join(','),
    leader,
    async moveLeader(to) {
      const all = await statuses();
      const target = all.find((s) => s.member === to)?.status?.header.member_id;
      const current = all.find((s) => s.status && s.status.header.member_id === s.status.leader);
      if (!target || !current) throw new Error('moveLeader: no leader, or the target does not answer');
      if (current.member === to) return;
      const moved = await etcdGateway(
        current.member.port,
        '/v3/maintenance/transfer-leadership',
        { targetID: target },
        10_000,
      );
      if (!moved) throw new Error(`moveLeader: ${current.member.name} refused to hand over to ${to.name}`);
      await until(`${to.name} leads`, async () => (await leader()) === to, 10_000);
    },
    async serving(timeoutMs = 1000) {
      const answers = await Promise.all(
        members
          .filter((m) => m.running)
          .map((m) => etcdGateway(m.port, '/v3/kv/put', { key: probeKey, value: '' }, timeoutMs)),
      );
      return answers.some((answer) => answer !== undefined);
    },
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
  const mode = async (m: Member, timeoutMs = 1000) =>
    m.running
      ? /Mode: (\w+)/.exec(await fourLetter(m.port, 'srvr', timeoutMs).catch(() => ''))?.[1]
      : undefined;
  return {
    members,
    hosts: members.map((m) => `127.0.0.1:${m.port}`).join(','),
    async leader() {
      const modes = await Promise.all(members.map((m) => mode(m)));
      return members[modes.indexOf('leader')];
    },
    async serving(timeoutMs = 1000) {
      const modes = await Promise.all(members.map((m) => mode(m, timeoutMs)));
      return modes.some((x) => x === 'leader' || x === 'follower');
    },
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
