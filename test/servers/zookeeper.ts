import { writeFileSync } from 'node:fs';
import zookeeper from 'node-zookeeper-client';
import { connect } from 'node:net';
import { join } from 'node:path';
import { freePort, GiveUp, until } from '@registrar/core/testing';
import { restartable, startProcess, tempDir, type RestartableServer } from './process.js';

/**
 * Debian's zookeeper.jar names its dependencies (jute, netty, slf4j-api, ...) in its manifest Class-Path, so
 * the jar plus an slf4j binding is enough.
 */
const CLASSPATH =
  process.env.ZOOKEEPER_CLASSPATH ?? '/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar';

/** A real standalone ZooKeeper (Debian's `zookeeper` package) on loopback with a throw-away data dir. */
/** `restart()` on the same port and data: sessions survive if it is quick enough. */
export interface ZookeeperServer extends RestartableServer {
  /** `127.0.0.1:<port>` */
  readonly connectString: string;
  readonly port: number;
  /** tickTime in ms: negotiated session timeouts are clamped to 2–20 × this. */
  readonly tickTime: number;
}

/** Send a four-letter command and return the whole answer. */
export async function fourLetter(port: number, command: string, timeoutMs = 2_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let answer = '';
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`${command}: no answer`)));
    socket.on('connect', () => socket.write(command));
    socket.on('data', (chunk) => (answer += chunk.toString('utf8')));
    socket.on('error', reject);
    socket.on('close', () => resolve(answer));
  });
}

export async function startZookeeper(options: { tickTime?: number } = {}): Promise<ZookeeperServer> {
  const dir = tempDir('zookeeper');
  const port = await freePort();
  const tickTime = options.tickTime ?? 500;
  const config = join(dir, 'zoo.cfg');
  writeFileSync(
    config,
    [
      `tickTime=${tickTime}`,
      'minSessionTimeout=1000',
      'maxSessionTimeout=30000',
      `dataDir=${join(dir, 'data')}`,
      `clientPort=${port}`,
      'clientPortAddress=127.0.0.1',
      'admin.enableServer=false',
      '4lw.commands.whitelist=ruok,srvr,stat,mntr,cons',
      '',
    ].join('\n'),
  );
  const launch = async () => {
    const proc = startProcess(
      process.env.JAVA_BIN ?? 'java',
      ['-Xmx256m', '-cp', CLASSPATH, 'org.apache.zookeeper.server.quorum.QuorumPeerMain', config],
      { dir, name: 'zookeeper' },
    );
    await until(`zookeeper on 127.0.0.1:${port}`, async () => {
      const exited = () => {
        if (proc.child.exitCode !== null || proc.child.signalCode !== null)
          throw new GiveUp(`zookeeper exited; see ${proc.logFile}`);
      };
      exited();
      const ready = (await fourLetter(port, 'ruok', 500)) === 'imok';
      exited();
      return ready;
    });
    return proc;
  };
  return Object.assign(await restartable(launch, dir), {
    connectString: `127.0.0.1:${port}`,
    port,
    tickTime,
  });
}

/** A plain node-zookeeper-client connected to `connectString`, for a test to look at what the bridge wrote. */
export async function connectedClient(connectString: string): Promise<zookeeper.Client> {
  const client = zookeeper.createClient(connectString);
  await new Promise<void>((resolve) => {
    client.once('connected', () => resolve());
    client.connect();
  });
  return client;
}
