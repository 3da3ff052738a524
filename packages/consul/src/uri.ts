import { readFileSync } from 'node:fs';
import { ConfigError, MAX_URI_LENGTH, oneLine, quote, showUri } from '@registrar/core';
import type { Registry, RegistryUriContext, ServiceFollower } from '@registrar/core';
import type { ConsulTlsOptions } from './client.js';
import { parseGoDuration } from './duration.js';
import { createConsulFollower } from './follow.js';
import { createConsulRegistry } from './registry.js';
import type { ConsulRegistryOptions } from './registry.js';

const QUERY_KEYS = ['ns', 'partition', 'deregister-after'];

function readFile(variable: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? oneLine((err as Error).message, 100);
    throw new ConfigError(
      `${variable}=${quote(path, 120)} cannot be read (${reason}); point it at a readable file`,
    );
  }
}

function toUrl(input: URL | string): URL {
  if (typeof input !== 'string') return input;
  if (input.length > MAX_URI_LENGTH) {
    throw new ConfigError(
      `Consul URI is longer than ${MAX_URI_LENGTH} characters; expected consul://host:port`,
    );
  }
  try {
    return new URL(input);
  } catch {
    throw new ConfigError(
      `invalid Consul URI ${showUri(input)}; expected consul://host:port or consul-tls://host:port`,
    );
  }
}

/**
 * `consul://host:port` or `consul-tls://host:port` (default 127.0.0.1:8500 / :8501), optional `?ns=`,
 * `?partition=`, `?deregister-after=<Go duration>`. Credentials come from `ctx.env` only:
 * CONSUL_HTTP_TOKEN or CONSUL_HTTP_TOKEN_FILE, CONSUL_CACERT, CONSUL_CLIENT_CERT, CONSUL_CLIENT_KEY,
 * CONSUL_HTTP_SSL_VERIFY=false, CONSUL_TLS_SERVER_NAME.
 */
export function consulRegistryFromUri(input: URL | string, ctx: RegistryUriContext): Registry {
  return createConsulRegistry(parseConsulUri(input, ctx));
}

/**
 * The agent of a `consul://` URI without a host: Consul's own `CONSUL_HTTP_ADDR` (`host:port`,
 * `http://host:port` or `https://host:port`), as every Consul tool reads it; undefined when unset.
 */
function defaultAgent(
  env: RegistryUriContext['env'],
): { host: string; port: string; https: boolean } | undefined {
  const raw = env.CONSUL_HTTP_ADDR?.trim();
  if (!raw) return undefined;
  const withScheme = /^[a-z]+:\/\//i.test(raw) ? raw : `http://${raw}`;
  const parsed = URL.canParse(withScheme) ? new URL(withScheme) : undefined;
  if (
    !parsed ||
    !['http:', 'https:'].includes(parsed.protocol) ||
    parsed.hostname === '' ||
    parsed.pathname.length > 1
  ) {
    throw new ConfigError(
      `invalid CONSUL_HTTP_ADDR ${quote(raw, 80)}: expected host:port, http://host:port or https://host:port (a unix socket is not supported)`,
    );
  }
  return { host: parsed.hostname, port: parsed.port, https: parsed.protocol === 'https:' };
}

/** How to reach the agent, as registry and follower both take it. */
type ConsulConnectionOptions = Pick<
  ConsulRegistryOptions,
  'url' | 'token' | 'tls' | 'namespace' | 'partition'
>;

/**
 * The agent, token, TLS files, namespace and partition of a Consul URI and the environment: what registry and
 * follower share. Also gives the parsed URI (for the options only one of them reads) and how to show it.
 */
function parseConnection(
  input: URL | string,
  ctx: Pick<RegistryUriContext, 'logger' | 'env'>,
): { uri: URL; shown: string; connection: ConsulConnectionOptions & { url: string } } {
  const uri = toUrl(input);
  const shown = showUri(`${uri.protocol}//${uri.host}${uri.pathname}`).slice(1, -1);
  const agent = uri.hostname === '' ? defaultAgent(ctx.env) : undefined;
  const tls = uri.protocol === 'consul-tls:' || agent?.https === true;
  if (uri.protocol !== 'consul-tls:' && uri.protocol !== 'consul:') {
    throw new ConfigError(`${shown}: not a Consul URI; use consul://host:port or consul-tls://host:port`);
  }
  if (uri.username || uri.password) {
    throw new ConfigError(
      `${showUri(`${uri.protocol}//${uri.host}`).slice(1, -1)}: credentials do not belong in the URI; set CONSUL_HTTP_TOKEN or CONSUL_HTTP_TOKEN_FILE`,
    );
  }
  if (uri.pathname !== '' && uri.pathname !== '/') {
    throw new ConfigError(
      `${shown}: a Consul URI takes no path; use ${showUri(`${uri.protocol}//${uri.host || '127.0.0.1:8500'}`).slice(1, -1)}`,
    );
  }
  for (const key of uri.searchParams.keys()) {
    if (!QUERY_KEYS.includes(key)) {
      throw new ConfigError(
        `${shown}: unknown option ?${quote(key, 40).slice(1, -1)}=; supported: ${QUERY_KEYS.map((k) => `?${k}=`).join(', ')}`,
      );
    }
  }
  const host = uri.hostname || agent?.host || '127.0.0.1';
  const port = uri.port || agent?.port || (tls ? '8501' : '8500');
  const url = `${tls ? 'https' : 'http'}://${host}:${port}`;
  // consul:// is not a special scheme to WHATWG URL, so its host is barely checked: check it as http(s).
  if (!URL.canParse(url)) {
    throw new ConfigError(`${shown}: ${quote(host, 60)} is not a valid host name or address`);
  }
  const env = ctx.env;

  let token = env.CONSUL_HTTP_TOKEN?.trim() || undefined;
  const tokenFile = env.CONSUL_HTTP_TOKEN_FILE?.trim();
  if (!token && tokenFile) {
    token = readFile('CONSUL_HTTP_TOKEN_FILE', tokenFile).toString('utf8').trim() || undefined;
    if (!token)
      throw new ConfigError(
        `CONSUL_HTTP_TOKEN_FILE=${quote(tokenFile, 120)} is empty; write the ACL token into it`,
      );
  }

  let tlsOptions: ConsulTlsOptions | undefined;
  const cert = env.CONSUL_CLIENT_CERT?.trim();
  const key = env.CONSUL_CLIENT_KEY?.trim();
  const ca = env.CONSUL_CACERT?.trim();
  if (tls) {
    if (!!cert !== !!key) {
      throw new ConfigError(
        'CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY must be set together (client certificate and its key)',
      );
    }
    const verify = env.CONSUL_HTTP_SSL_VERIFY?.trim().toLowerCase();
    const servername = env.CONSUL_TLS_SERVER_NAME?.trim();
    tlsOptions = {
      ...(ca && { ca: readFile('CONSUL_CACERT', ca) }),
      ...(cert && { cert: readFile('CONSUL_CLIENT_CERT', cert) }),
      ...(key && { key: readFile('CONSUL_CLIENT_KEY', key) }),
      ...((verify === 'false' || verify === '0') && { rejectUnauthorized: false }),
      ...(servername && { servername }),
    };
  } else if (cert || ca) {
    ctx.logger.warn(
      { uri: shown },
      'CONSUL_CACERT/CONSUL_CLIENT_CERT are set but the URI is consul:// (plain HTTP); use consul-tls:// to use them',
    );
  }

  // Consul's own variables, as its CLI reads them; the URI's options win.
  const ns = uri.searchParams.get('ns') ?? (env.CONSUL_NAMESPACE?.trim() || null);
  const partition = uri.searchParams.get('partition') ?? (env.CONSUL_PARTITION?.trim() || null);
  return {
    uri,
    shown,
    connection: {
      url,
      ...(token !== undefined && { token }),
      ...(tlsOptions !== undefined && { tls: tlsOptions }),
      ...(ns && { namespace: ns }),
      ...(partition && { partition }),
    },
  };
}

/** Everything `consulRegistryFromUri` validates and reads (files included), without creating the registry. */
export function parseConsulUri(input: URL | string, ctx: RegistryUriContext): ConsulRegistryOptions {
  const { uri, shown, connection } = parseConnection(input, ctx);
  let deregisterAfter: number | undefined;
  const deregisterRaw = uri.searchParams.get('deregister-after');
  if (deregisterRaw !== null) {
    const ms = parseGoDuration(deregisterRaw);
    if (ms === undefined || ms <= 0) {
      throw new ConfigError(
        `${shown}: ?deregister-after=${quote(deregisterRaw, 40)} is not a positive Go duration; use e.g. 1m or 90s`,
      );
    }
    deregisterAfter = ms / 1000;
  }
  const options: ConsulRegistryOptions = {
    nodeId: ctx.nodeId,
    ...connection,
    ttl: ctx.ttl,
    logger: ctx.logger,
    ...(ctx.ttlRefresh !== undefined && { ttlRefresh: ctx.ttlRefresh }),
    ...(deregisterAfter !== undefined && { deregisterAfter }),
    ...(ctx.dryRun === true && { readOnly: true }),
  };
  return options;
}

/**
 * The follower of `registrar lb`, from the same URI and environment as the registry: agent, TLS, token,
 * namespace and partition (`deregister-after` only matters to the registry).
 */
export function consulFollowerFromUri(
  input: URL | string,
  ctx: Pick<RegistryUriContext, 'logger' | 'env'>,
): ServiceFollower {
  return createConsulFollower({ ...parseConnection(input, ctx).connection, logger: ctx.logger });
}
