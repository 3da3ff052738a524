import { readFileSync } from 'node:fs';
import type { Registry, RegistryUriContext, ServiceFollower } from '@registrar/core';
import { ConfigError, MAX_URI_LENGTH, oneLine, quote, showUri, stateFilePath } from '@registrar/core';
import { createEtcdFollower } from './follow.js';
import type { EtcdLayout } from './layout.js';
import { layouts } from './layout.js';
import type { EtcdConnectionOptions } from './registry.js';
import { createEtcdRegistry } from './registry.js';

/** `etcd://` is plain gRPC; `etcds://` (alias `etcd-tls://`, like `consul-tls://`) is TLS. */
const schemes: Record<string, boolean> = { etcd: false, etcds: true, 'etcd-tls': true };
const usage = 'expected etcd://host:port[,host:port...]/prefix';
const queryKeys = ['layout', 'domain', 'timeout'];

export interface ParsedEtcdUri {
  readonly hosts: string[];
  readonly tls: boolean;
  /** Undefined when the URI has no path: the layout's default applies. */
  readonly prefix: string | undefined;
  readonly layout: EtcdLayout | undefined;
  readonly domain: string | undefined;
  /** Milliseconds. */
  readonly requestTimeout: number | undefined;
}

/**
 * Parses `etcd://host:port[,host:port...]/prefix[?layout=json|hostport|skydns&domain=...&timeout=<s>]`
 * by hand: WHATWG `URL` rejects the comma-separated host list, so a string is the reliable input.
 */
export function parseEtcdUri(input: string | URL): ParsedEtcdUri {
  const uri = String(input);
  const shown = showUri(uri);
  const fail = (problem: string, fix = usage): never => {
    throw new ConfigError(oneLine(`invalid etcd URI ${shown}: ${problem}; ${fix}`, 600));
  };
  if (uri.length > MAX_URI_LENGTH) return fail(`longer than ${MAX_URI_LENGTH} characters`);
  // Unambiguous parts (the path starts with "/"), so matching stays linear on hostile input.
  const match = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)(\/[^?#]*)?(?:\?([^#]*))?(?:#[\s\S]*)?$/i.exec(uri);
  if (!match) return fail('not a URI');
  const [, rawScheme = '', authority = '', path = '', query] = match;
  const scheme = rawScheme.toLowerCase();
  if (!Object.hasOwn(schemes, scheme)) {
    return fail(`unknown scheme ${quote(`${scheme}:`, 40)}`, 'use etcd:// or etcds:// (TLS)');
  }
  if (authority.includes('@')) {
    return fail('credentials in the URI are not allowed', 'set ETCD_USERNAME and ETCD_PASSWORD instead');
  }
  if (authority === '') return fail('no host given');
  const hosts = authority.split(',').map((host) => parseHost(host, fail));

  const params = new URLSearchParams(query ?? '');
  for (const key of params.keys()) {
    if (!queryKeys.includes(key))
      fail(`unknown parameter ${quote(key, 40)}`, `known: ${queryKeys.join(', ')}`);
  }
  const layout = params.get('layout') ?? undefined;
  if (layout !== undefined && !layouts.includes(layout as EtcdLayout)) {
    fail(`unknown layout ${quote(layout, 40)}`, `use layout=${layouts.join('|')}`);
  }
  const domain = params.get('domain') ?? undefined;
  if (domain !== undefined && !/^[a-z0-9-]+(\.[a-z0-9-]+)*\.?$/i.test(domain)) {
    fail(`invalid domain ${quote(domain, 60)}`, 'use a DNS name such as skydns.local');
  }
  if (domain !== undefined && layout !== 'skydns') fail('domain is only used with layout=skydns');
  const timeout = params.get('timeout');
  const seconds = timeout === null ? undefined : Number(timeout);
  if (seconds !== undefined && !(seconds > 0 && Number.isFinite(seconds))) {
    fail(`timeout ${quote(timeout ?? '', 20)} is not a positive number of seconds`, 'e.g. timeout=5');
  }

  let prefix: string | undefined;
  try {
    prefix = decodeURIComponent(path);
  } catch {
    return fail(`prefix ${quote(path, 60)} is not valid percent-encoding`);
  }
  if (prefix === '' || prefix === '/') prefix = undefined;
  return {
    hosts,
    tls: schemes[scheme],
    prefix,
    layout: layout as EtcdLayout | undefined,
    domain,
    requestTimeout: seconds === undefined ? undefined : seconds * 1000,
  };
}

function parseHost(host: string, fail: (problem: string) => never): string {
  const match = /^(\[[0-9a-f:.]+\]|[^:[\]]*)(?::(.*))?$/i.exec(host);
  if (!match) return fail(`host ${quote(host, 60)} is not host:port`);
  const [, name = '', port] = match;
  if (port !== undefined && !/^\d+$/.test(port)) return fail(`port ${quote(port, 20)} is not a number`);
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) {
    return fail(`port ${quote(port, 20)} is out of range 1-65535`);
  }
  if (name === '')
    return fail(host === '' ? 'empty host in the host list' : `no host name before ${quote(`:${port}`, 20)}`);
  if (!/^(\[[0-9a-f:.]+\]|[a-z0-9._-]+)$/i.test(name))
    return fail(`host ${quote(name, 60)} is not a valid host name`);
  return `${name}:${port ?? 2379}`;
}

/**
 * Credentials and TLS files come from the environment only, never from the URI or argv:
 * `ETCD_USERNAME` + `ETCD_PASSWORD` (or `ETCD_PASSWORD_FILE`); `ETCD_CACERT`, `ETCD_CERT`, `ETCD_KEY`
 * (PEM file paths, named after etcdctl's `ETCDCTL_CACERT`...; they need `etcds://`).
 */
function fromEnv(env: RegistryUriContext['env'], tls: boolean): Pick<EtcdConnectionOptions, 'auth' | 'tls'> {
  const set = (name: string) => (env[name] === undefined || env[name] === '' ? undefined : env[name]);
  const read = (variable: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (error) {
      const reason = (error as NodeJS.ErrnoException).code ?? 'unreadable';
      throw new ConfigError(
        `cannot read ${variable}=${quote(path, 120)} (${reason}); point it at a readable file`,
      );
    }
  };
  const username = set('ETCD_USERNAME');
  const passwordFile = set('ETCD_PASSWORD_FILE');
  let password = set('ETCD_PASSWORD');
  if (password !== undefined && passwordFile !== undefined) {
    throw new ConfigError('both ETCD_PASSWORD and ETCD_PASSWORD_FILE are set; set only one of them');
  }
  if (passwordFile !== undefined) {
    password = read('ETCD_PASSWORD_FILE', passwordFile)
      .toString()
      .replace(/\r?\n$/, '');
    if (password === '') {
      throw new ConfigError(
        `ETCD_PASSWORD_FILE=${quote(passwordFile, 120)} is empty; write the etcd password into it`,
      );
    }
  }
  if ((username === undefined) !== (password === undefined)) {
    throw new ConfigError(
      username === undefined
        ? 'an etcd password is set but ETCD_USERNAME is not; set both or neither'
        : 'ETCD_USERNAME is set but no password; set ETCD_PASSWORD or ETCD_PASSWORD_FILE',
    );
  }
  const files = { ca: set('ETCD_CACERT'), cert: set('ETCD_CERT'), key: set('ETCD_KEY') };
  if (!tls && (files.ca || files.cert || files.key)) {
    throw new ConfigError(
      'ETCD_CACERT/ETCD_CERT/ETCD_KEY are set but the URI is etcd://; use etcds:// for TLS',
    );
  }
  if ((files.cert === undefined) !== (files.key === undefined)) {
    throw new ConfigError('a client certificate needs both ETCD_CERT and ETCD_KEY; set both or neither');
  }
  return {
    ...(username !== undefined && password !== undefined && { auth: { username, password } }),
    ...(tls && {
      tls: {
        ...(files.ca && { ca: read('ETCD_CACERT', files.ca) }),
        ...(files.cert && { cert: read('ETCD_CERT', files.cert) }),
        ...(files.key && { key: read('ETCD_KEY', files.key) }),
      },
    }),
  };
}

/** The CLI's entry point: an adapter from `etcd[s]://host:port[,...]/prefix?...` and the CLI's settings. */
export function etcdRegistryFromUri(uri: string | URL, ctx: RegistryUriContext): Registry {
  const parsed = parseEtcdUri(uri);
  return createEtcdRegistry({
    hosts: parsed.hosts,
    ...fromEnv(ctx.env, parsed.tls),
    nodeId: ctx.nodeId,
    ttl: ctx.ttl,
    ...(ctx.ttlRefresh !== undefined && { keepaliveInterval: ctx.ttlRefresh }),
    ...(parsed.prefix !== undefined && { prefix: parsed.prefix }),
    ...(parsed.layout !== undefined && { layout: parsed.layout }),
    ...(parsed.domain !== undefined && { skydnsDomain: parsed.domain }),
    ...(parsed.requestTimeout !== undefined && { requestTimeout: parsed.requestTimeout }),
    logger: ctx.logger,
    ...(ctx.stateDir !== undefined && {
      stateFile: stateFilePath(
        ctx.stateDir,
        'etcd-lease',
        parsed.hosts.join(','),
        parsed.prefix ?? '',
        parsed.layout ?? '',
        ctx.nodeId,
      ),
    }),
  });
}

/**
 * The follower of `registrar lb`, from the same URI and environment as the registry (hosts, TLS, credentials,
 * prefix, layout, domain, timeout).
 */
export function etcdFollowerFromUri(
  uri: string | URL,
  ctx: Pick<RegistryUriContext, 'logger' | 'env'>,
): ServiceFollower {
  const parsed = parseEtcdUri(uri);
  return createEtcdFollower({
    hosts: parsed.hosts,
    ...fromEnv(ctx.env, parsed.tls),
    ...(parsed.prefix !== undefined && { prefix: parsed.prefix }),
    ...(parsed.layout !== undefined && { layout: parsed.layout }),
    ...(parsed.domain !== undefined && { skydnsDomain: parsed.domain }),
    ...(parsed.requestTimeout !== undefined && { requestTimeout: parsed.requestTimeout }),
    logger: ctx.logger,
  });
}
