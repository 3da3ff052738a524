/**
 * Connection failures in words an operator acts on: the likely cause of a Node/undici/gRPC error code, shared
 * by the adapters (and the CLI) so that "connect ECONNREFUSED" reads the same on every backend.
 */

const TLS =
  /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|EPROTO)/;

/** The likely cause of a connection that failed with `code`, naming `server` (e.g. `etcd`); undefined if unknown. */
export function connectionHint(code: string | undefined, server: string): string | undefined {
  if (code === undefined) return undefined;
  switch (code) {
    case 'ECONNREFUSED':
      return `nothing listens there: is ${server} running, and is this its client port?`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'the host name does not resolve';
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'UND_ERR_CONNECT_TIMEOUT':
      return 'no route to it, or a firewall drops the traffic';
    case 'ECONNRESET':
    case 'EPIPE':
    case 'UND_ERR_SOCKET':
      return `${server} closed the connection: TLS spoken to a plain port, or the reverse?`;
    case 'ENOENT':
      return 'no such socket file';
    case 'EACCES':
      return 'permission denied';
  }
  if (TLS.test(code)) return 'the TLS handshake failed: check the CA and client certificate files';
  return undefined;
}

/** `connect ECONNREFUSED 127.0.0.1:2379` inside a client's error text (gRPC wraps it): the code and address. */
export function connectFailureIn(text: string): { code: string; address: string } | undefined {
  const match = /connect (E[A-Z]+) (\S+?)\.?(?:\s|$)/.exec(text);
  return match?.[1] !== undefined && match[2] !== undefined
    ? { code: match[1], address: match[2] }
    : undefined;
}
