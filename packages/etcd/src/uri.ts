import type { Registry, RegistryUriContext, ServiceFollower } from '@registrar/core';
import type { RegistryUriSyntax } from '@registrar/core/kit';
import { ConfigError } from '@registrar/core';
import {
  envValue,
  formatHostPort,
  parseRegistryUri,
  quote,
  readEnvFile,
  readSecret,
  registryUriError,
  stateFilePath,
} from '@registrar/core/kit';
import { createEtcdFollower } from './follow.js';
import type { EtcdLayout } from './layout.js';
import { layouts } from './layout.js';
import type { EtcdConnectionOptions } from './registry.js';
import { createEtcdRegistry } from './registry.js';

/** `etcd://` is plain gRPC; `etcds://` (alias `etcd-tls://`, like `consul-tls://`) is TLS. */
const schemes: Record<string, boolean> = { etcd: false, etcds: true, 'etcd-tls': true };
const queryKeys = ['layout', 'domain', 'timeout'];
const syntax: RegistryUriSyntax = {
  name: 'etcd',
  form: 'etcd://host:port[,host:port...]/prefix',
  schemes: Object.keys(schemes),
  port: 2379,
  credentialsFrom: 'ETCD_USERNAME and ETCD_PASSWORD',
  describe: (problem) =>
    problem.kind === 'scheme'
      ? { problem: `unknown scheme ${quote(`${problem.scheme}:`, 40)}`, fix: 'use etcd:// or etcds:// (TLS)' }
      : undefined,
};

export interface ParsedEtcdUri {
  readonly hosts: string[];
  readonly tls: boolean;
  /** Undefined when the URI has no path: the layout's default applies. */
  readonly prefix: string | undefined;
  readonly layout: EtcdLayout | undefined;
  readonly domain: string | undefined;
  /** Milliseconds. */
  readonly timeoutMs: number | undefined;
}

/** Parses `etcd://host:port[,host:port...]/prefix[?layout=json|hostport|skydns&domain=...&timeout=<s>]`. */
export function parseEtcdUri(input: string | URL): ParsedEtcdUri {
  const uri = parseRegistryUri(input, syntax);
  const fail = (problem: string, fix = `expected ${syntax.form}`): never => {
    throw registryUriError(uri.text, syntax, problem, fix);
  };
  const { params } = uri;
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
  return {
    hosts: uri.hosts.map(formatHostPort),
    tls: schemes[uri.scheme] ?? false,
    prefix: uri.path === '' ? undefined : uri.path,
    layout: layout as EtcdLayout | undefined,
    domain,
    timeoutMs: seconds === undefined ? undefined : seconds * 1000,
  };
}

/**
 * Credentials and TLS files come from the environment only, never from the URI or argv:
 * `ETCD_USERNAME` + `ETCD_PASSWORD` (or `ETCD_PASSWORD_FILE`); `ETCD_CACERT`, `ETCD_CERT`, `ETCD_KEY`
 * (PEM file paths, named after etcdctl's `ETCDCTL_CACERT`...; they need `etcds://`).
 */
function fromEnv(env: RegistryUriContext['env'], tls: boolean): Pick<EtcdConnectionOptions, 'auth' | 'tls'> {
  const username = envValue(env, 'ETCD_USERNAME');
  const password = readSecret(env, 'ETCD_PASSWORD', 'the etcd password')?.value;
  if ((username === undefined) !== (password === undefined)) {
    throw new ConfigError(
      username === undefined
        ? 'an etcd password is set but ETCD_USERNAME is not; set both or neither'
        : 'ETCD_USERNAME is set but no password; set ETCD_PASSWORD or ETCD_PASSWORD_FILE',
    );
  }
  const files = {
    ca: envValue(env, 'ETCD_CACERT'),
    cert: envValue(env, 'ETCD_CERT'),
    key: envValue(env, 'ETCD_KEY'),
  };
  if (!tls && (files.ca || files.cert || files.key)) {
    throw new ConfigError(
      'ETCD_CACERT/ETCD_CERT/ETCD_KEY are set but the URI is etcd://; use etcds:// for TLS',
    );
  }
  if ((files.cert === undefined) !== (files.key === undefined)) {
    throw new ConfigError('a client certificate needs both ETCD_CERT and ETCD_KEY; set both or neither');
  }
  const ca = readEnvFile(env, 'ETCD_CACERT', 'a PEM CA certificate');
  const cert = readEnvFile(env, 'ETCD_CERT', 'a PEM client certificate');
  const key = readEnvFile(env, 'ETCD_KEY', 'a PEM private key');
  return {
    ...(username !== undefined && password !== undefined && { auth: { username, password } }),
    ...(tls && { tls: { ...(ca && { ca }), ...(cert && { cert }), ...(key && { key }) } }),
  };
}

/**
 * Everything `etcdRegistryFromUri` checks (the URI, the credentials and TLS files in `env`), without creating
 * a client: the CLI refuses a bad URI with the adapter's own words before anything connects.
 */
export function checkEtcdUri(uri: string | URL, env: RegistryUriContext['env']): void {
  fromEnv(env, parseEtcdUri(uri).tls);
}

/** The CLI's entry point: an adapter from `etcd[s]://host:port[,...]/prefix?...` and the CLI's settings. */
export function etcdRegistryFromUri(uri: string | URL, ctx: RegistryUriContext): Registry {
  const parsed = parseEtcdUri(uri);
  return createEtcdRegistry({
    hosts: parsed.hosts,
    ...fromEnv(ctx.env, parsed.tls),
    nodeId: ctx.nodeId,
    ...(ctx.engineId !== undefined && { engineId: ctx.engineId }),
    ttl: ctx.ttl,
    ...(ctx.ttlRefresh !== undefined && { keepaliveInterval: ctx.ttlRefresh }),
    ...(parsed.prefix !== undefined && { prefix: parsed.prefix }),
    ...(parsed.layout !== undefined && { layout: parsed.layout }),
    ...(parsed.domain !== undefined && { skydnsDomain: parsed.domain }),
    ...(parsed.timeoutMs !== undefined && { timeoutMs: parsed.timeoutMs }),
    ...(ctx.logger !== undefined && { logger: ctx.logger }),
    ...(ctx.dryRun === true && { readOnly: true }),
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
    ...(parsed.timeoutMs !== undefined && { timeoutMs: parsed.timeoutMs }),
    ...(ctx.logger !== undefined && { logger: ctx.logger }),
  });
}
