import { circuitBreaker, ConsecutiveBreaker, handleWhen, retry } from 'cockatiel';
import { Etcd3, GRPCResourceExhastedError, isRecoverableError } from 'etcd3';
import type { EtcdClientOptions, EtcdConnectionOptions } from './registry.js';

const toBuffer = (value: string | Buffer | undefined) =>
  value === undefined ? undefined : Buffer.isBuffer(value) ? value : Buffer.from(value);

/**
 * What says a host is failing: etcd3's recoverable errors, except an answer too large to receive, which
 * every host would give alike (etcd3 counts it, and would open every host's circuit breaker on it).
 */
const hostFault = (error: Error) =>
  isRecoverableError(error) && !(error instanceof GRPCResourceExhastedError);

/**
 * Our client, for the registry and the follower alike: every call bounded, and a dead host retried after 1 s
 * instead of etcd3's 5 s. `keepaliveMs` adds gRPC keepalive pings, so that a stream to a server that stopped
 * answering (paused, partitioned) fails instead of waiting forever; etcd refuses pings more often than every
 * 5 s (`--grpc-keepalive-min-time`).
 */
export function createClient(
  options: EtcdConnectionOptions,
  timeoutMs: number,
  extra: { keepaliveMs?: number } = {},
): Etcd3 {
  const tls = options.tls;
  const secure = tls !== undefined;
  const hosts = options.hosts.map((host) => {
    const bare = host.replace(/^https?:\/\//, '');
    return `${secure ? 'https' : 'http'}://${bare}`;
  });
  const ca = toBuffer(tls?.ca);
  const cert = toBuffer(tls?.cert);
  return new Etcd3({
    hosts,
    ...(options.auth && {
      auth: {
        ...options.auth,
        callOptions: () => ({ deadline: Date.now() + timeoutMs }),
      },
    }),
    // Without files the `https://` hosts alone make etcd3 use the system roots; grpc does the same for a
    // missing CA next to a client certificate.
    ...((ca || cert) && {
      credentials: { rootCertificate: ca as Buffer, privateKey: toBuffer(tls?.key), certChain: cert },
    }),
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + timeoutMs }),
    grpcOptions: {
      // Reads come in pages of ~1 MiB (range.ts); this only spares a page of unusually large values, or a
      // watch catching up on many revisions, the default 4 MiB limit's permanent RESOURCE_EXHAUSTED.
      'grpc.max_receive_message_length': 64 << 20,
      'grpc.max_reconnect_backoff_ms': 2000,
      'grpc.initial_reconnect_backoff_ms': 200,
      ...(extra.keepaliveMs !== undefined && {
        'grpc.keepalive_time_ms': Math.max(5000, extra.keepaliveMs),
        'grpc.keepalive_timeout_ms': timeoutMs,
      }),
    },
    faultHandling: {
      host: () =>
        circuitBreaker(handleWhen(hostFault), {
          halfOpenAfter: 1000,
          breaker: new ConsecutiveBreaker(3),
        }),
      global: retry(handleWhen(hostFault), { maxAttempts: Math.max(2, hosts.length) }),
    },
  });
}

/** `etcd[s]://host:port[,...]<root>` for logs and metrics: never credentials. */
export function targetOf(options: EtcdConnectionOptions | EtcdClientOptions, root: string): string {
  const hosts = options.client ? ['(client)'] : options.hosts.map((host) => host.replace(/^https?:\/\//, ''));
  return `${!options.client && options.tls ? 'etcds' : 'etcd'}://${hosts.join(',')}${root || '/'}`;
}

/** The smallest key greater than every key starting with `prefix` (etcd's range_end for a prefix). */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i] = end[i] + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}
