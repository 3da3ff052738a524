import type { Registry, RegistryUriContext, ServiceFollower } from '@registrar/core';
import { ConfigError, MAX_URI_LENGTH, oneLine, quote, showUri, stateFilePath } from '@registrar/core';
import { readFileSync } from 'node:fs';
import { createZookeeperFollower } from './follow.js';
import { ZOOKEEPER_PAYLOADS, type ZookeeperLayout, type ZookeeperPayload } from './layout.js';
import { createZookeeperRegistry, normaliseBase, type ZookeeperRegistryOptions } from './registry.js';

/** What a registry URI says, before node id, TTL and logger are added. */
export type ZookeeperUriOptions = Required<
  Pick<ZookeeperRegistryOptions, 'connectString' | 'basePath' | 'layout'>
> &
  Pick<ZookeeperRegistryOptions, 'auth' | 'worldReadable' | 'payload'>;

const HOST = /^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$/;

function fail(problem: string, fix: string): never {
  // Every value echoed in `problem` is quoted already; this keeps the whole message to one short line.
  throw new ConfigError(oneLine(`${problem}; ${fix}`, 600));
}

function parseHosts(authority: string): string {
  if (authority.includes('@')) {
    fail(
      'zookeeper URI must not carry credentials',
      'remove user:password@ and set ZOOKEEPER_AUTH=user:password or ZOOKEEPER_AUTH_FILE instead',
    );
  }
  if (authority === '')
    fail('zookeeper URI has no server', 'write zookeeper://host:2181[,host:2181...]/base');
  return authority
    .split(',')
    .map((entry) => {
      if (entry.startsWith('[') || entry.split(':').length > 2) {
        fail(
          `zookeeper server ${quote(entry, 60)} is an IPv6 literal, which node-zookeeper-client cannot parse`,
          'use a host name that resolves to it',
        );
      }
      const [host = '', port] = entry.split(':');
      if (!HOST.test(host))
        fail(`zookeeper server ${quote(entry, 60)} has no valid host`, 'write host:port, e.g. zk1:2181');
      if (port !== undefined) {
        const n = Number(port);
        if (!/^\d+$/.test(port) || n < 1 || n > 65535) {
          fail(
            `zookeeper server ${quote(entry, 60)} has an invalid port`,
            'use a port between 1 and 65535, e.g. 2181',
          );
        }
        return `${host}:${n}`;
      }
      return `${host}:2181`;
    })
    .join(',');
}

function parseBase(rawPath: string): string {
  let path: string;
  try {
    path = decodeURIComponent(rawPath);
  } catch {
    fail(
      `zookeeper base path ${quote(rawPath, 60)} is not valid percent-encoding`,
      'write a plain path such as /services',
    );
  }
  // No path (or just "/") means the default, as for etcd's prefix.
  if (path === '' || path === '/') return '/services';
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
  const inline = env.ZOOKEEPER_AUTH;
  const file = env.ZOOKEEPER_AUTH_FILE;
  if (inline && file) fail('both ZOOKEEPER_AUTH and ZOOKEEPER_AUTH_FILE are set', 'set only one of them');
  let credentials: string | undefined = inline;
  let source = 'ZOOKEEPER_AUTH';
  if (file) {
    source = `ZOOKEEPER_AUTH_FILE (${quote(file, 120)})`;
    try {
      credentials = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (error) {
      fail(
        `cannot read ZOOKEEPER_AUTH_FILE=${quote(file, 120)}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`,
        'point it at a readable file containing user:password',
      );
    }
  }
  if (file && !credentials) {
    fail(`ZOOKEEPER_AUTH_FILE=${quote(file, 120)} is empty`, 'write the digest credentials as user:password');
  }
  if (!credentials) return undefined;
  // Never echo the value: it is a secret.
  if (!/^[^:\n]+:[^\n]+$/.test(credentials)) {
    fail(`${source} is not in the form user:password`, 'write the digest credentials as user:password');
  }
  return { scheme: 'digest', credentials };
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
  const raw = typeof uri === 'string' ? uri : uri.href;
  if (raw.length > MAX_URI_LENGTH) {
    fail(`zookeeper URI is longer than ${MAX_URI_LENGTH} characters`, 'write zookeeper://host:2181/base');
  }
  // Unambiguous parts (the path starts with "/"), so matching stays linear on hostile input.
  const match = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)(\/[^?#]*)?(\?[^#]*)?(#[\s\S]*)?$/.exec(raw.trim());
  if (!match) fail(`${showUri(raw)} is not a zookeeper URI`, 'write zookeeper://host:2181/base');
  const [, scheme = '', authority = '', rawPath = '', query = '', fragment] = match;
  if (!['zookeeper', 'zk'].includes(scheme.toLowerCase())) {
    fail(
      `${quote(`${scheme}:`, 40)} is not a zookeeper URI scheme`,
      'write zookeeper://host:2181/base or zk://host:2181/base',
    );
  }
  const connectString = parseHosts(authority);
  if (fragment) fail('zookeeper URI has a #fragment', 'remove it');
  const basePath = parseBase(rawPath);
  let layout: ZookeeperLayout = 'curator';
  let payload: ZookeeperPayload | undefined;
  let worldReadable: boolean | undefined;
  for (const [name, value] of new URLSearchParams(query)) {
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
    connectString,
    basePath,
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
    ctx.logger.warn(
      'zookeeper world-readable=true has no effect without ZOOKEEPER_AUTH: nodes are open to all',
    );
  }
  return createZookeeperRegistry({
    ...options,
    nodeId: ctx.nodeId,
    ttl: ctx.ttl,
    logger: ctx.logger,
    ...(ctx.stateDir !== undefined && {
      stateFile: stateFilePath(
        ctx.stateDir,
        'zookeeper-session',
        options.connectString,
        options.basePath,
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
  const { connectString, basePath, layout, auth } = parseZookeeperUri(uri, ctx.env);
  return createZookeeperFollower({
    connectString,
    basePath,
    layout,
    ...(auth && { auth }),
    logger: ctx.logger,
  });
}
