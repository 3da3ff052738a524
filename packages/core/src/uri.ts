import { isIP } from 'node:net';
import { ConfigError } from './errors.js';

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
  /** The URI as given, for error messages (registry URIs carry no credentials; those come from env/files). */
  readonly text: string;
}

const SHAPE = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)([^?#]*)(?:\?([^#]*))?$/i;

/**
 * Parse a registry URI; `defaultPort` fills hosts given without a port and `defaultHost` an empty authority.
 * Throws a one-line ConfigError naming what is wrong and the expected form.
 */
export function parseRegistryUri(
  text: string,
  defaults: { port: number; host?: string; form: string },
): RegistryUri {
  const fail = (what: string): never => {
    throw new ConfigError(`invalid registry URI "${text}": ${what}; expected ${defaults.form}`);
  };
  const match = SHAPE.exec(text.trim());
  if (!match) return fail('not of the form scheme://host:port/path');
  const [, scheme = '', authority = '', rawPath = '', query = ''] = match;
  if (authority.includes('@')) fail('credentials do not belong in the URI (use the environment or a file)');
  const parts = authority === '' ? (defaults.host ? [defaults.host] : []) : authority.split(',');
  if (parts.length === 0) fail('no host given');
  const hosts = parts.map((part) => parseHostPort(part, defaults.port, fail));
  const path = decodeURIComponent(rawPath).replace(/\/+$/, '');
  if (path !== '' && !/^\/[^\s]*$/.test(path))
    fail(`path "${path}" must start with "/" and contain no spaces`);
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
    if (isIP(host) !== 6) fail(`"${host}" is not an IPv6 address`);
  } else {
    const colon = part.lastIndexOf(':');
    if (colon >= 0 && part.indexOf(':') !== colon)
      fail(`IPv6 address "${part}" must be in brackets, e.g. [::1]:2379`);
    host = colon >= 0 ? part.slice(0, colon) : part;
    portText = colon >= 0 ? part.slice(colon + 1) : undefined;
  }
  if (host === '') fail(`host missing in "${part}"`);
  if (!/^[A-Za-z0-9.:_-]+$/.test(host)) fail(`"${host}" is not a valid host name`);
  if (portText === undefined || portText === '') return { host, port: defaultPort };
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port < 1 || port > 65535)
    fail(`port "${portText}" is not a number from 1 to 65535`);
  return { host, port };
}

/** `host:port` with IPv6 hosts bracketed. */
export function formatHostPort({ host, port }: HostPort): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}
