import { circuitBreaker, ConsecutiveBreaker, handleWhen, retry } from 'cockatiel';
import { Etcd3, GRPCDeadlineExceededError, GRPCResourceExhastedError, isRecoverableError } from 'etcd3';
import type { EtcdClientOptions, EtcdConnectionOptions } from './registry.js';

const toBuffer = (value: string | Buffer | undefined) =>
  value === undefined ? undefined : Buffer.isBuffer(value) ? value : Buffer.from(value);

/**
 * What says a host is failing, for etcd3's per-host circuit breakers and its immediate retry on another host:
 * its recoverable errors (unreachable, reset...) except two. An answer too large to receive: every host would
 * give it alike. And a deadline: `etcdCall` sends an attempt that ran out again itself, with a new deadline;
 * etcd3 would retry with the spent one, fail at once against every host and open all their breakers, which
 * is what made a leader's death cost seconds (its followers, waiting for a new leader, answer nothing for a
 * while without being at fault).
 */
const hostFault = (error: Error) =>
  isRecoverableError(error) &&
  !(error instanceof GRPCResourceExhastedError) &&
  !(error instanceof GRPCDeadlineExceededError);

/**
 * Our client, for the registry and the follower alike: every call bounded (`etcdCall` sends each attempt with
 * its own deadline and tries another member when one fails), and a dead host retried after 1 s instead of
 * etcd3's 5 s. gRPC keepalive pings every `keepaliveMs` (default 10 s) on a connection that has calls or
 * streams open, so that one to a member that stopped answering (paused, cut off: no FIN ever comes) fails
 * within about 2 s of a ping instead of hanging: etcd refuses pings more often than every 5 s
 * (`--grpc-keepalive-min-time`) and, by default, any ping on a connection without a stream, hence
 * `keepalive_permit_without_calls` stays off.
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
      'grpc.keepalive_time_ms': Math.max(5000, extra.keepaliveMs ?? 10_000),
      'grpc.keepalive_timeout_ms': Math.min(timeoutMs, 2000),
      'grpc.keepalive_permit_without_calls': 0,
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
