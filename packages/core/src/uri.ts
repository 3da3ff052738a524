import { isIP } from 'node:net';
import { ConfigError } from './errors.js';
import { oneLine, quote } from './text.js';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/**
 * A registry URI, `scheme://host:port[,host:port...]/path?query`. WHATWG `URL` rejects the comma-separated
 * host lists etcd and ZooKeeper connect strings use, so registry URIs get this parser.
 */
export interface RegistryUri {
  /** Lower case. */
  readonly scheme: string;
  /** Empty only with `optionalHost` and an empty authority. */
  readonly hosts: readonly HostPort[];
  /** Percent-decoded, without trailing slashes; '' when absent or `/`. */
  readonly path: string;
  readonly params: URLSearchParams;
  /** The URI as given (registry URIs carry no credentials; those come from env/files). */
  readonly text: string;
}

/** What can be wrong with a registry URI before an adapter looks at its scheme-specific parts. */
export type RegistryUriProblem =
  | { readonly kind: 'too-long' }
  | { readonly kind: 'malformed' }
  | { readonly kind: 'scheme'; readonly scheme: string }
  | { readonly kind: 'fragment' }
  | { readonly kind: 'credentials' }
  | { readonly kind: 'no-host' }
  /** An empty entry in the host list (`a,,b`). */
  | { readonly kind: 'empty-host' }
  /** `:2379`: a port without a host name. */
  | { readonly kind: 'no-host-name'; readonly entry: string; readonly port: string }
  | { readonly kind: 'bad-host'; readonly entry: string; readonly host: string }
  | { readonly kind: 'bad-port'; readonly entry: string; readonly port: string; readonly range: boolean }
  /** An IPv6 address without brackets, or brackets around something else. */
  | { readonly kind: 'bad-ipv6'; readonly entry: string }
  /** With `ipv6: false`: any IPv6 literal. */
  | { readonly kind: 'ipv6-unsupported'; readonly entry: string }
  | { readonly kind: 'path-encoding'; readonly path: string }
  | { readonly kind: 'bad-path'; readonly path: string };

/** How an adapter's registry URIs look, and how their errors are worded. */
export interface RegistryUriSyntax {
  /** The backend as error messages name it: `invalid <name> URI "...": ...`. Default `registry`. */
  readonly name?: string;
  /** The expected form, for the default fix: `expected <form>`. */
  readonly form: string;
  /** Accepted schemes (lower case); any scheme when absent. */
  readonly schemes?: readonly string[];
  /** Port of a host given without one; may depend on the scheme (`consul-tls` → 8501). */
  readonly port: number | ((scheme: string) => number);
  /** Host of an empty authority; without it (and without `optionalHost`) an empty authority is an error. */
  readonly host?: string;
  /** An empty authority gives no hosts (the adapter has its own default, e.g. CONSUL_HTTP_ADDR). */
  readonly optionalHost?: boolean;
  /** Default true; false refuses IPv6 literals (a client library that cannot parse them). */
  readonly ipv6?: boolean;
  /** Where credentials go instead of the URI, for the fix: `set <credentialsFrom> instead`. */
  readonly credentialsFrom?: string;
  /** The adapter's own wording of a problem; undefined keeps the default. */
  readonly describe?: (problem: RegistryUriProblem) => { problem: string; fix: string } | undefined;
  /** How a problem and its fix become the message; default `invalid <name> URI "<uri>": <problem>; <fix>`. */
  readonly frame?: (problem: string, fix: string, shown: string) => string;
}

/**
 * Each part starts with a character the previous part cannot contain, so matching is linear: a path that
 * could also be authority made a 100 KB URI ending in `#` take tens of seconds to reject.
 */
const SHAPE = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)(\/[^?#]*)?(?:\?([^#]*))?(#[\s\S]*)?$/i;
/** Longer registry URIs are refused outright: no real connect string comes near this. */
export const MAX_URI_LENGTH = 4096;
const HOST_NAME = /^[A-Za-z0-9._-]+$/;
// eslint-disable-next-line no-control-regex -- refusing control characters is the point
const PATH = /^\/[^\s\u0000-\u001f\u007f]*$/;

/** The one-line ConfigError for a problem in registry URI `text`, framed as `syntax` frames its errors. */
export function registryUriError(
  text: string,
  syntax: Pick<RegistryUriSyntax, 'name' | 'frame'>,
  problem: string,
  fix: string,
): ConfigError {
  const shown = showUri(text);
  const message = syntax.frame
    ? syntax.frame(problem, fix, shown)
    : `invalid ${syntax.name ?? 'registry'} URI ${shown}: ${problem}; ${fix}`;
  return new ConfigError(oneLine(message, 600));
}

function defaultWording(problem: RegistryUriProblem, port: number): string {
  switch (problem.kind) {
    case 'too-long':
      return `longer than ${MAX_URI_LENGTH} characters`;
    case 'malformed':
      return 'not of the form scheme://host:port/path';
    case 'scheme':
      return `unknown scheme ${quote(`${problem.scheme}:`, 40)}`;
    case 'fragment':
      return 'a registry URI takes no #fragment';
    case 'credentials':
      return 'credentials do not belong in the URI';
    case 'no-host':
      return 'no host given';
    case 'empty-host':
      return 'empty host in the host list';
    case 'no-host-name':
      return `no host name before ${quote(`:${problem.port}`, 20)}`;
    case 'bad-host':
      return `host ${quote(problem.host, 60)} is not a valid host name`;
    case 'bad-port':
      return problem.range
        ? `port ${quote(problem.port, 20)} is out of range 1-65535`
        : `port ${quote(problem.port, 20)} is not a number`;
    case 'bad-ipv6':
      return problem.entry.startsWith('[')
        ? `${quote(problem.entry, 60)} is not an IPv6 address in brackets, e.g. [::1]:${port}`
        : `IPv6 address ${quote(problem.entry, 60)} must be in brackets, e.g. [::1]:${port}`;
    case 'ipv6-unsupported':
      return `IPv6 literal ${quote(problem.entry, 60)} is not supported; use a host name that resolves to it`;
    case 'path-encoding':
      return `path ${quote(problem.path, 60)} is not valid percent-encoding`;
    case 'bad-path':
      return `path ${quote(problem.path, 60)} must start with "/" and contain no spaces or control characters`;
  }
}

function defaultFix(problem: RegistryUriProblem, syntax: RegistryUriSyntax): string {
  if (problem.kind === 'scheme' && syntax.schemes)
    return `use ${syntax.schemes.map((s) => `${s}://`).join(' or ')}`;
  if (problem.kind === 'credentials' && syntax.credentialsFrom !== undefined)
    return `set ${syntax.credentialsFrom} instead`;
  return `expected ${syntax.form}`;
}

/**
 * Parse a registry URI: scheme, host list, path and query, each checked; the adapter checks what only it
 * knows (query keys, path rules). Throws a one-line ConfigError naming what is wrong and how to fix it.
 */
export function parseRegistryUri(input: string | URL, syntax: RegistryUriSyntax): RegistryUri {
  const text = String(input);
  let port = typeof syntax.port === 'number' ? syntax.port : 0;
  const fail = (problem: RegistryUriProblem): never => {
    const custom = syntax.describe?.(problem);
    throw registryUriError(
      text,
      syntax,
      custom?.problem ?? defaultWording(problem, port),
      custom?.fix ?? defaultFix(problem, syntax),
    );
  };
  if (text.length > MAX_URI_LENGTH) fail({ kind: 'too-long' });
  const match = SHAPE.exec(text.trim());
  if (!match) return fail({ kind: 'malformed' });
  const [, rawScheme = '', authority = '', rawPath = '', query = '', fragment] = match;
  const scheme = rawScheme.toLowerCase();
  if (syntax.schemes && !syntax.schemes.includes(scheme)) fail({ kind: 'scheme', scheme: rawScheme });
  if (typeof syntax.port === 'function') port = syntax.port(scheme);
  if (fragment !== undefined) fail({ kind: 'fragment' });
  if (authority.includes('@')) fail({ kind: 'credentials' });
  let hosts: HostPort[] = [];
  if (authority !== '') hosts = authority.split(',').map((entry) => parseHostPort(entry, port, syntax, fail));
  else if (syntax.host !== undefined) hosts = [{ host: syntax.host, port }];
  else if (!syntax.optionalHost) fail({ kind: 'no-host' });
  let decoded = '';
  try {
    decoded = decodeURIComponent(rawPath);
  } catch {
    fail({ kind: 'path-encoding', path: rawPath });
  }
  const path = decoded.replace(/\/+$/, '');
  if (path !== '' && !PATH.test(path)) fail({ kind: 'bad-path', path });
  return { scheme, hosts, path, params: new URLSearchParams(query), text };
}

function parseHostPort(
  entry: string,
  defaultPort: number,
  syntax: RegistryUriSyntax,
  fail: (problem: RegistryUriProblem) => never,
): HostPort {
  if (entry === '') return fail({ kind: 'empty-host' });
  const firstColon = entry.indexOf(':');
  const v6 = entry.startsWith('[') || (firstColon >= 0 && entry.lastIndexOf(':') !== firstColon);
  if (v6 && syntax.ipv6 === false) fail({ kind: 'ipv6-unsupported', entry });
  let host: string;
  let portText: string | undefined;
  if (v6) {
    // [v6]:port or [v6]
    const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(entry);
    if (!bracketed || isIP(bracketed[1] ?? '') !== 6) return fail({ kind: 'bad-ipv6', entry });
    host = bracketed[1] ?? '';
    portText = bracketed[2];
  } else {
    host = firstColon >= 0 ? entry.slice(0, firstColon) : entry;
    portText = firstColon >= 0 ? entry.slice(firstColon + 1) : undefined;
  }
  let port = defaultPort;
  if (portText !== undefined) {
    port = Number(portText);
    if (!/^\d+$/.test(portText)) fail({ kind: 'bad-port', entry, port: portText, range: false });
    if (port < 1 || port > 65535) fail({ kind: 'bad-port', entry, port: portText, range: true });
  }
  if (host === '') fail({ kind: 'no-host-name', entry, port: portText ?? '' });
  if (!v6 && !HOST_NAME.test(host)) fail({ kind: 'bad-host', entry, host });
  return { host, port };
}

/** `host:port`, with an IPv6 host in brackets so the port stays unambiguous. */
export function formatHostPort({ host, port }: HostPort): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * A URI for an error message: any `user:password@` masked (a credential must never reach a log line),
 * escaped to one line and cut short.
 */
export function showUri(text: string): string {
  return quote(text.replace(/\/\/[^/?#]*@/, '//***@'), 120);
}
