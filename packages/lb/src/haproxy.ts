import { connect, isIP } from 'node:net';
import { ConfigError } from '@registrar/core';
import { formatHostPort, quote } from '@registrar/core/kit';

/** Where HAProxy's runtime API listens: a `stats socket` on a unix path or on TCP. */
export type RuntimeAddress = { readonly path: string } | { readonly host: string; readonly port: number };

/**
 * `--haproxy`: an absolute path (optionally `unix:`-prefixed) is a unix socket; otherwise `host:port`
 * (`[v6]:port` for IPv6).
 */
export function parseRuntimeAddress(text: string): RuntimeAddress {
  const trimmed = text.trim();
  const path = trimmed.startsWith('unix:') ? trimmed.slice('unix:'.length) : trimmed;
  if (path.startsWith('/')) return { path };
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(trimmed);
  const port = Number(match?.[3]);
  if (!match || port < 1 || port > 65535) {
    throw new ConfigError(
      `invalid HAProxy runtime API address ${quote(text, 80)}: expected a unix socket path such as /run/haproxy/admin.sock or host:port such as 127.0.0.1:9999`,
    );
  }
  return { host: match[1] ?? match[2] ?? '', port };
}

export const describeAddress = (address: RuntimeAddress): string =>
  'path' in address ? `unix:${address.path}` : formatHostPort(address);

/** HAProxy answered, but not with what was asked for (an unknown backend, a refused command). */
export class HaproxyCommandError extends Error {
  override readonly name = 'HaproxyCommandError';
}

/**
 * Send one line to the runtime API and resolve with the whole answer. Without `prompt` HAProxy answers and
 * closes the connection, so each call is one connection; several commands may share a line, separated by `;`.
 * Written by hand: it is a dozen lines of `net`, and no maintained npm client covers HAProxy 2.6's API.
 */
export function runtimeCommand(address: RuntimeAddress, line: string, timeoutMs = 5_000): Promise<string> {
  if (/[\r\n]/.test(line)) throw new Error('a runtime API command cannot contain a line break');
  return new Promise((resolve, reject) => {
    const socket = 'path' in address ? connect(address.path) : connect(address.port, address.host);
    const chunks: Buffer[] = [];
    socket.setTimeout(timeoutMs, () =>
      socket.destroy(
        new Error(`HAProxy runtime API at ${describeAddress(address)} did not answer within ${timeoutMs} ms`),
      ),
    );
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('error', reject);
    socket.once('close', (hadError) => {
      if (!hadError) resolve(Buffer.concat(chunks).toString('utf8'));
    });
    socket.once('connect', () => socket.end(`${line}\n`));
  });
}

/** One `server` (or `server-template` slot) of a backend, from `show servers state`. */
export interface Slot {
  readonly name: string;
  /** `srv_id`: the order slots are filled in. */
  readonly id: number;
  readonly address: string;
  readonly port: number;
  /** Not in maintenance (forced, inherited or DNS-resolution maintenance), so it may take traffic. */
  readonly enabled: boolean;
}

// srv_admin_state bits (HAProxy's SRV_ADMF_*): forced, inherited and resolution maintenance. The
// configuration's `disabled` (CMAINT, 0x04) stays set after `state ready`, so it does not count.
const MAINTENANCE = 0x01 | 0x02 | 0x20;

/**
 * Parse `show servers state <backend>`. Columns are found by the header's names, so a HAProxy version that
 * adds columns still parses; an answer without that header (e.g. `Can't find backend.`) is an error.
 */
export function parseServersState(answer: string, backend: string): Slot[] {
  const lines = answer.split('\n').map((line) => line.trim());
  const header = lines.find((line) => line.startsWith('# be_id'));
  if (header === undefined) {
    throw new HaproxyCommandError(
      `HAProxy has no backend ${quote(backend, 80)} (show servers state said ${quote(answer.trim(), 120)})`,
    );
  }
  const columns = header.slice(2).split(' ');
  const at = (name: string) => {
    const index = columns.indexOf(name);
    if (index < 0)
      throw new HaproxyCommandError(`show servers state has no column ${name}: ${quote(header, 200)}`);
    return index;
  };
  const [beName, srvId, srvName, srvAddr, srvAdmin, srvPort] = [
    'be_name',
    'srv_id',
    'srv_name',
    'srv_addr',
    'srv_admin_state',
    'srv_port',
  ].map(at) as [number, number, number, number, number, number];
  return lines
    .filter((line) => line !== '' && !line.startsWith('#') && line.includes(' '))
    .map((line) => line.split(' '))
    .filter((fields) => fields[beName] === backend)
    .map((fields) => ({
      name: fields[srvName] ?? '',
      id: Number(fields[srvId]),
      address: fields[srvAddr] ?? '',
      port: Number(fields[srvPort]),
      enabled: (Number(fields[srvAdmin]) & MAINTENANCE) === 0,
    }))
    .sort((a, b) => a.id - b.id);
}

/** The answers of `set server` that report a failure (others say what changed, or nothing). */
export function commandFailures(answer: string): string[] {
  return answer
    .split('\n')
    .map((line) => line.trim())
    .filter((line) =>
      /^(no such|invalid|require|unknown|unable|cannot|can't|not allowed|permission denied)/i.test(line),
    );
}

/** An address HAProxy's `set server ... addr` accepts and that cannot smuggle a second command. */
export const isServerAddress = (address: string): boolean => isIP(address) !== 0;
