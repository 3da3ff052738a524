import { isIP } from 'node:net';
import { ConfigError } from './errors.js';
import { quote } from './text.js';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/**
 * A registry URI, `scheme://host:port[,host:port...]/path?query`. WHATWG `URL` rejects the comma-separated
 * host lists etcd and ZooKeeper connect strings use, so registry URIs get this parser.
 */
export interface RegistryUri {
  readonly scheme: string;
  readonly hosts: readonly HostPort[];
  /** Path without trailing slash; '' when absent. */
  readonly path: string;
  readonly params: URLSearchParams;
  /** The URI as given (registry URIs carry no credentials; those come from env/files). */
  readonly text: string;
}

/**
 * Each part starts with a character the previous part cannot contain, so matching is linear: a path that
 * could also be authority made a 100 KB URI ending in `#` take tens of seconds to reject.
 */
const SHAPE = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)(\/[^?#]*)?(?:\?([^#]*))?(#[\s\S]*)?$/i;
/** Longer registry URIs are refused outright: no real connect string comes near this. */
export const MAX_URI_LENGTH = 4096;

/**
 * Parse a registry URI; `defaultPort` fills hosts given without a port and `defaultHost` an empty authority.
 * Throws a one-line ConfigError naming what is wrong and the expected form.
 */
export function parseRegistryUri(
  text: string,
  defaults: { port: number; host?: string; form: string },
): RegistryUri {
  const fail = (what: string): never => {
    throw new ConfigError(`invalid registry URI ${showUri(text)}: ${what}; expected ${defaults.form}`);
  };
  if (text.length > MAX_URI_LENGTH) fail(`longer than ${MAX_URI_LENGTH} characters`);
  const match = SHAPE.exec(text.trim());
  if (!match) return fail('not of the form scheme://host:port/path');
  const [, scheme = '', authority = '', rawPath = '', query = '', fragment] = match;
  if (fragment !== undefined) fail('a registry URI takes no #fragment');
  if (authority.includes('@')) fail('credentials do not belong in the URI (use the environment or a file)');
  const parts = authority === '' ? (defaults.host ? [defaults.host] : []) : authority.split(',');
  if (parts.length === 0) fail('no host given');
  const hosts = parts.map((part) => parseHostPort(part, defaults.port, fail));
  let decoded = '';
  try {
    decoded = decodeURIComponent(rawPath);
  } catch {
    fail(`path ${quote(rawPath, 60)} is not valid percent-encoding`);
  }
  const path = decoded.replace(/\/+$/, '');
  if (path !== '' && !/^\/[^\s]*$/.test(path))
    fail(`path ${quote(path, 60)} must start with "/" and contain no spaces`);
  return { scheme: scheme.toLowerCase(), hosts, path, params: new URLSearchParams(query), text };
}

function parseHostPort(part: string, defaultPort: number, fail: (what: string) => never): HostPort {
  // [v6]:port, [v6], host:port, host
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(part);
  let host: string;
  let portText: string | undefined;
  if (bracketed) {
    host = bracketed[1] ?? '';
    portText = bracketed[2];
    if (isIP(host) !== 6) fail(`${quote(host, 60)} is not an IPv6 address`);
  } else {
    const colon = part.lastIndexOf(':');
    if (colon >= 0 && part.indexOf(':') !== colon)
      fail(`IPv6 address ${quote(part, 60)} must be in brackets, e.g. [::1]:2379`);
    host = colon >= 0 ? part.slice(0, colon) : part;
    portText = colon >= 0 ? part.slice(colon + 1) : undefined;
  }
  if (host === '') fail(`host missing in ${quote(part, 60)}`);
  if (!/^[A-Za-z0-9.:_-]+$/.test(host)) fail(`${quote(host, 60)} is not a valid host name`);
  if (portText === undefined || portText === '') return { host, port: defaultPort };
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port < 1 || port > 65535)
    fail(`port ${quote(portText, 20)} is not a number from 1 to 65535`);
  return { host, port };
}

/** `host:port` with IPv6 hosts bracketed. */
export function formatHostPort({ host, port }: HostPort): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * A URI for an error message: any `user:password@` masked (a credential must never reach a log line),
 * escaped to one line and cut short.
 */
export function showUri(text: string): string {
  return quote(text.replace(/\/\/[^/?#]*@/, '//***@'), 120);
}
