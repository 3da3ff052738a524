import { freePort, until } from './net.js';
import { removeDir, startProcess, tempDir, type ServerProcess } from './process.js';

/** A real single-member etcd (Debian's `etcd-server`) on loopback with a throw-away data dir. */
export interface EtcdServer {
  readonly endpoint: string;
  readonly port: number;
  process: ServerProcess;
  /** Stop (SIGKILL) and start again on the same port with the same data. */
  restart(): Promise<void>;
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

export async function startEtcd(): Promise<EtcdServer> {
  const dir = tempDir('etcd');
  const port = await freePort();
  const peerPort = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const launch = async () => {
    const proc = startProcess(
      process.env.ETCD_BIN ?? 'etcd',
      [
        '--name=t',
        `--data-dir=${dir}/data`,
        `--listen-client-urls=${endpoint}`,
        `--advertise-client-urls=${endpoint}`,
        `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
        `--initial-cluster=t=http://127.0.0.1:${peerPort}`,
        '--logger=zap',
        '--log-level=warn',
      ],
      { dir, name: 'etcd' },
    );
    await until(`etcd on ${endpoint}`, async () => {
      if (proc.child.exitCode !== null) throw new Error(`etcd exited; see ${proc.logFile}`);
      const res = await fetch(`${endpoint}/health`);
      return res.ok;
    });
    return proc;
  };
  const server: EtcdServer = {
    endpoint,
    port,
    process: await launch(),
    async stop() {
      await server.process.kill('SIGKILL');
    },
    async start() {
      server.process = await launch();
    },
    async restart() {
      await server.stop();
      await server.start();
    },
    async close() {
      await server.process.kill('SIGKILL');
      removeDir(dir);
    },
  };
  return server;
}
