import { readFileSync } from 'node:fs';
import { connect } from 'node:tls';
import { freePort, GiveUp, until } from '@registrar/core/testing';
import { restartable, startProcess, tempDir, type RestartableServer } from './process.js';

/** A real single-member etcd (Debian's `etcd-server`) on loopback with a throw-away data dir. */
export interface EtcdServer extends RestartableServer {
  readonly endpoint: string;
  readonly port: number;
}

/** Serve clients over TLS with these PEM files; `clientCertAuth` also demands client certificates signed by `ca`. */
export interface EtcdTlsFiles {
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
  readonly clientCertAuth?: boolean;
}

export async function startEtcd(options: { tls?: EtcdTlsFiles } = {}): Promise<EtcdServer> {
  const dir = tempDir('etcd');
  const port = await freePort();
  const peerPort = await freePort();
  const { tls } = options;
  const endpoint = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const tlsArgs = tls
    ? [
        `--cert-file=${tls.cert}`,
        `--key-file=${tls.key}`,
        ...(tls.clientCertAuth ? ['--client-cert-auth', `--trusted-ca-file=${tls.ca}`] : []),
      ]
    : [];
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
        ...tlsArgs,
      ],
      { dir, name: 'etcd' },
    );
    await until(`etcd on ${endpoint}`, async () => {
      const exited = () => {
        if (proc.child.exitCode !== null || proc.child.signalCode !== null)
          throw new GiveUp(`etcd exited; see ${proc.logFile}`);
      };
      exited();
      const ready = tls ? await tlsHandshake(port, tls) : (await fetch(`${endpoint}/health`)).ok;
      // Ready, and still ours: not some other server that took the port after ours died.
      exited();
      return ready;
    });
    return proc;
  };
  return Object.assign(await restartable(launch, dir), { endpoint, port });
}

/** Ready means a TLS handshake with the server's CA succeeds (fetch cannot trust a private CA). */
function tlsHandshake(port: number, tls: EtcdTlsFiles): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({
      host: '127.0.0.1',
      port,
      ca: readFileSync(tls.ca),
      ...(tls.clientCertAuth && { cert: readFileSync(tls.cert), key: readFileSync(tls.key) }),
      servername: '', // no SNI for an IP address (RFC 6066)
      ALPNProtocols: ['h2'],
    });
    socket.once('secureConnect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
