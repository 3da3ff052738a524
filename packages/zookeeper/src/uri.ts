import type { Registry, RegistryUriContext, ServiceFollower } from '@registrar/core';
import { consoleLogger } from '@registrar/core';
import type { RegistryUriProblem, RegistryUriSyntax } from '@registrar/core/kit';
import {
  MAX_URI_LENGTH,
  formatHostPort,
  oneLine,
  parseRegistryUri,
  quote,
  readSecret,
  registryUriError,
  showUri,
  stateFilePath,
} from '@registrar/core/kit';
import { createZookeeperFollower } from './follow.js';
import { ZOOKEEPER_PAYLOADS, type ZookeeperLayout, type ZookeeperPayload } from './layout.js';
import { createZookeeperRegistry, normaliseBase, type ZookeeperRegistryOptions } from './registry.js';

/** What a registry URI says, before node id, TTL and logger are added. */
export type ZookeeperUriOptions = {
  /** `host:port` each, port 2181 unless given. */
  readonly hosts: string[];
  /** The base path, `/services` unless given. */
  readonly prefix: string;
} & Required<Pick<ZookeeperRegistryOptions, 'layout'>> &
  Pick<ZookeeperRegistryOptions, 'auth' | 'worldReadable' | 'payload'>;

/** Stricter than core's host check: no leading or trailing dot or hyphen. */
const HOST = /^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$/;
const FORM = 'write zookeeper://host:2181/base';

function fail(problem: string, fix: string): never {
  throw registryUriError('', syntax, problem, fix);
}

/** ZooKeeper's wording of core's URI problems. */
function describe(problem: RegistryUriProblem, text: string): { problem: string; fix: string } {
  const server = (entry: string) => `zookeeper server ${quote(entry, 60)}`;
  switch (problem.kind) {
    case 'too-long':
      return { problem: `zookeeper URI is longer than ${MAX_URI_LENGTH} characters`, fix: FORM };
    case 'malformed':
      return { problem: `${showUri(text)} is not a zookeeper URI`, fix: FORM };
    case 'scheme':
      return {
        problem: `${quote(`${problem.scheme}:`, 40)} is not a zookeeper URI scheme`,
        fix: 'write zookeeper://host:2181/base or zk://host:2181/base',
      };
    case 'fragment':
      return { problem: 'zookeeper URI has a #fragment', fix: 'remove it' };
    case 'credentials':
      return {
        problem: 'zookeeper URI must not carry credentials',
        fix: 'remove user:password@ and set ZOOKEEPER_AUTH=user:password or ZOOKEEPER_AUTH_FILE instead',
      };
    case 'no-host':
      return {
        problem: 'zookeeper URI has no server',
        fix: 'write zookeeper://host:2181[,host:2181...]/base',
      };
    case 'empty-host':
      return { problem: `${server('')} has no valid host`, fix: 'write host:port, e.g. zk1:2181' };
    case 'no-host-name':
    case 'bad-host':
      return { problem: `${server(problem.entry)} has no valid host`, fix: 'write host:port, e.g. zk1:2181' };
    case 'bad-port':
      return {
        problem: `${server(problem.entry)} has an invalid port`,
        fix: 'use a port between 1 and 65535, e.g. 2181',
      };
    case 'bad-ipv6':
    case 'ipv6-unsupported':
      return {
        problem: `${server(problem.entry)} is an IPv6 literal, which node-zookeeper-client cannot parse`,
        fix: 'use a host name that resolves to it',
      };
    case 'path-encoding':
      return {
        problem: `zookeeper base path ${quote(problem.path, 60)} is not valid percent-encoding`,
        fix: 'write a plain path such as /services',
      };
    case 'bad-path':
      return {
        problem: `zookeeper base path ${quote(problem.path, 60)} has spaces or control characters`,
        fix: 'use e.g. /services',
      };
  }
}

const syntax: RegistryUriSyntax = {
  name: 'zookeeper',
  form: 'zookeeper://host:2181/base',
  schemes: ['zookeeper', 'zk'],
  port: 2181,
  ipv6: false,
  // Every value echoed in a problem is quoted already; this keeps the whole message to one short line.
  frame: (problem, fix) => `${problem}; ${fix}`,
};

function parseBase(path: string): string {
  // No path (or just "/") means the default, as for etcd's prefix.
  if (path === '') return '/services';
  try {
    return normaliseBase(path) || '/';
  } catch (error) {
    return fail(
      `zookeeper base path ${quote(path, 60)} is invalid (${oneLine((error as Error).message, 200)})`,
      'use e.g. /services',
    );
  }
}

function parseBool(name: string, value: string): boolean {
  if (value === 'true' || value === '1' || value === '') return true;
  if (value === 'false' || value === '0') return false;
  return fail(
    `zookeeper URI parameter ${name}=${quote(value, 40)} is not a boolean`,
    `write ${name}=true or ${name}=false`,
  );
}

function readAuth(env: RegistryUriContext['env']): ZookeeperRegistryOptions['auth'] {
  const secret = readSecret(env, 'ZOOKEEPER_AUTH', 'user:password');
  if (secret === undefined) return undefined;
  // Never echo the value: it is a secret.
  if (!/^[^:\n]+:[^\n]+$/.test(secret.value)) {
    fail(
      `${secret.source} is not in the form user:password`,
      'write the digest credentials as user:password',
    );
  }
  return { scheme: 'digest', credentials: secret.value };
}

const SUPPORTED = 'supported: layout=curator|registrator, payload=none|spring|plain, world-readable=true';

/**
 * Parse `zookeeper://h1:2181,h2:2181/base?payload=spring&world-readable=true` (alias `zk://`). Takes the
 * raw string too: WHATWG `new URL()` rejects a comma-separated host list with ports.
 */
export function parseZookeeperUri(
  uri: URL | string,
  env: RegistryUriContext['env'] = {},
): ZookeeperUriOptions {
  const parsed = parseRegistryUri(uri, { ...syntax, describe: (problem) => describe(problem, String(uri)) });
  const hosts = parsed.hosts.map((server) => {
    if (!HOST.test(server.host)) {
      fail(`zookeeper server ${quote(server.host, 60)} has no valid host`, 'write host:port, e.g. zk1:2181');
    }
    return formatHostPort(server);
  });
  const prefix = parseBase(parsed.path);
  let layout: ZookeeperLayout = 'curator';
  let payload: ZookeeperPayload | undefined;
  let worldReadable: boolean | undefined;
  for (const [name, value] of parsed.params) {
    if (name === 'layout') {
      if (value !== 'curator' && value !== 'registrator') {
        fail(
          `unknown zookeeper layout ${quote(value, 60)}`,
          'use ?layout=curator (default) or ?layout=registrator',
        );
      }
      layout = value;
    } else if (name === 'payload') {
      if (!(ZOOKEEPER_PAYLOADS as readonly string[]).includes(value)) {
        fail(
          `unknown zookeeper payload ${quote(value, 60)}`,
          'use ?payload=none (default), ?payload=spring (Spring Cloud Zookeeper) or ?payload=plain (a Curator Map)',
        );
      }
      payload = value as ZookeeperPayload;
    } else if (name === 'world-readable') {
      worldReadable = parseBool(name, value);
    } else {
      fail(`unknown zookeeper URI parameter ${quote(name, 60)}`, SUPPORTED);
    }
  }
  if (layout === 'registrator' && payload !== undefined) {
    // Ignoring it would let the user believe registrator's nodes carry a Curator payload.
    fail(
      `zookeeper payload=${payload} applies to the curator layout only (registrator nodes have no payload)`,
      'remove payload= or use layout=curator',
    );
  }
  const auth = readAuth(env);
  return {
    hosts,
    prefix,
    layout,
    ...(layout === 'curator' ? { payload: payload ?? 'none' } : {}),
    ...(auth ? { auth } : {}),
    ...(worldReadable ? { worldReadable } : {}),
  };
}

/** The CLI's entry point: a registry for one `zookeeper://` / `zk://` URI. */
export function zookeeperRegistryFromUri(uri: URL | string, ctx: RegistryUriContext): Registry {
  const options = parseZookeeperUri(uri, ctx.env);
  if (options.worldReadable && !options.auth) {
    (ctx.logger ?? consoleLogger).warn(
      'zookeeper world-readable=true has no effect without ZOOKEEPER_AUTH: nodes are open to all',
    );
  }
  return createZookeeperRegistry({
    ...options,
    nodeId: ctx.nodeId,
    ...(ctx.engineId !== undefined && { engineId: ctx.engineId }),
    ttl: ctx.ttl,
    ...(ctx.logger !== undefined && { logger: ctx.logger }),
    ...(ctx.stateDir !== undefined && {
      stateFile: stateFilePath(
        ctx.stateDir,
        'zookeeper-session',
        options.hosts.join(','),
        options.prefix,
        ctx.nodeId,
      ),
    }),
  });
}

/**
 * The follower of `registrar lb`, from the same URI and environment as the registry: servers, base path,
 * layout and ZOOKEEPER_AUTH / ZOOKEEPER_AUTH_FILE (`payload` and `world-readable` only matter to writers).
 */
export function zookeeperFollowerFromUri(
  uri: URL | string,
  ctx: Pick<RegistryUriContext, 'logger' | 'env'>,
): ServiceFollower {
  const { hosts, prefix, layout, auth } = parseZookeeperUri(uri, ctx.env);
  return createZookeeperFollower({
    hosts,
    prefix,
    layout,
    ...(auth && { auth }),
    ...(ctx.logger !== undefined && { logger: ctx.logger }),
  });
}
