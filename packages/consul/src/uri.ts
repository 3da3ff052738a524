import { ConfigError, consoleLogger } from '@registrar/core';
import {
  envValue,
  formatHostPort,
  parseGoDuration,
  parseRegistryUri,
  quote,
  readEnvFile,
  readSecret,
  registryUriError,
  showUri,
} from '@registrar/core/kit';
import type { Registry, RegistryUriContext, ServiceFollower } from '@registrar/core';
import type { RegistryUri, RegistryUriSyntax } from '@registrar/core/kit';
import type { ConsulTlsOptions } from './client.js';
import { createConsulFollower } from './follow.js';
import { createConsulRegistry } from './registry.js';
import type { ConsulRegistryOptions } from './registry.js';

const QUERY_KEYS = ['ns', 'partition', 'deregister-after'];
const syntax: RegistryUriSyntax = {
  name: 'Consul',
  form: 'consul://host:port or consul-tls://host:port',
  schemes: ['consul', 'consul-tls'],
  port: (scheme) => (scheme === 'consul-tls' ? 8501 : 8500),
  // A host-less consul:// means Consul's own CONSUL_HTTP_ADDR, else 127.0.0.1.
  optionalHost: true,
  credentialsFrom: 'CONSUL_HTTP_TOKEN or CONSUL_HTTP_TOKEN_FILE',
  describe: (problem) =>
    problem.kind === 'scheme'
      ? {
          problem: `unknown scheme ${quote(`${problem.scheme}:`, 40)}, not a Consul URI`,
          fix: 'use consul://host:port or consul-tls://host:port',
        }
      : undefined,
};

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
): { host: string; port: number | undefined; https: boolean } | undefined {
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
  return {
    host: parsed.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: parsed.port === '' ? undefined : Number(parsed.port),
    https: parsed.protocol === 'https:',
  };
}

/** How to reach the agent, as registry and follower both take it. */
type ConsulConnectionOptions = Pick<
  ConsulRegistryOptions,
  'hosts' | 'token' | 'tls' | 'namespace' | 'partition'
>;

/**
 * The agent, token, TLS files, namespace and partition of a Consul URI and the environment: what registry and
 * follower share. Also gives the parsed URI, for the options only one of them reads.
 */
function parseConnection(
  input: URL | string,
  ctx: Pick<RegistryUriContext, 'logger' | 'env'>,
): { uri: RegistryUri; connection: ConsulConnectionOptions & { hosts: [string] } } {
  const uri = parseRegistryUri(input, syntax);
  const fail = (problem: string, fix: string): never => {
    throw registryUriError(uri.text, syntax, problem, fix);
  };
  const [given, ...more] = uri.hosts;
  if (more.length > 0) fail('a Consul URI names one agent', 'list the others in separate URIs');
  if (uri.path !== '') {
    const agent = given ?? { host: '127.0.0.1', port: uri.scheme === 'consul-tls' ? 8501 : 8500 };
    fail('a Consul URI takes no path', `use ${uri.scheme}://${formatHostPort(agent)}`);
  }
  for (const key of uri.params.keys()) {
    if (!QUERY_KEYS.includes(key)) {
      fail(
        `unknown option ?${quote(key, 40).slice(1, -1)}=`,
        `supported: ${QUERY_KEYS.map((k) => `?${k}=`).join(', ')}`,
      );
    }
  }
  const agent = given === undefined ? defaultAgent(ctx.env) : undefined;
  const tls = uri.scheme === 'consul-tls' || agent?.https === true;
  const host = given ?? {
    host: agent?.host ?? '127.0.0.1',
    port: agent?.port ?? (tls ? 8501 : 8500),
  };
  const url = `${tls ? 'https' : 'http'}://${formatHostPort(host)}`;
  const env = ctx.env;

  // Consul's own tools trim the token they read.
  const secret = readSecret(env, 'CONSUL_HTTP_TOKEN', 'the Consul ACL token');
  const token = secret?.value.trim() || undefined;
  if (token !== undefined && !/^[\x21-\x7e]+$/.test(token)) {
    // Never echo the value: it is a secret.
    throw new ConfigError(
      `${secret?.source ?? 'CONSUL_HTTP_TOKEN'} holds characters an HTTP header cannot carry; set it to the token's SecretID`,
    );
  }

  let tlsOptions: ConsulTlsOptions | undefined;
  const cert = envValue(env, 'CONSUL_CLIENT_CERT');
  const key = envValue(env, 'CONSUL_CLIENT_KEY');
  const ca = envValue(env, 'CONSUL_CACERT');
  if (tls) {
    if ((cert === undefined) !== (key === undefined)) {
      throw new ConfigError(
        'CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY must be set together (client certificate and its key)',
      );
    }
    const verify = env.CONSUL_HTTP_SSL_VERIFY?.trim().toLowerCase();
    const servername = env.CONSUL_TLS_SERVER_NAME?.trim();
    const caPem = readEnvFile(env, 'CONSUL_CACERT', 'a PEM CA certificate');
    const certPem = readEnvFile(env, 'CONSUL_CLIENT_CERT', 'a PEM client certificate');
    const keyPem = readEnvFile(env, 'CONSUL_CLIENT_KEY', 'a PEM private key');
    tlsOptions = {
      ...(caPem && { ca: caPem }),
      ...(certPem && { cert: certPem }),
      ...(keyPem && { key: keyPem }),
      ...((verify === 'false' || verify === '0') && { rejectUnauthorized: false }),
      ...(servername && { servername }),
    };
  } else if (cert || ca) {
    (ctx.logger ?? consoleLogger).warn(
      { uri: showUri(uri.text).slice(1, -1) },
      'CONSUL_CACERT/CONSUL_CLIENT_CERT are set but the URI is consul:// (plain HTTP); use consul-tls:// to use them',
    );
  }

  // Consul's own variables, as its CLI reads them; the URI's options win.
  const ns = uri.params.get('ns') ?? (env.CONSUL_NAMESPACE?.trim() || null);
  const partition = uri.params.get('partition') ?? (env.CONSUL_PARTITION?.trim() || null);
  return {
    uri,
    connection: {
      hosts: [url],
      ...(token !== undefined && { token }),
      ...(tlsOptions !== undefined && { tls: tlsOptions }),
      ...(ns && { namespace: ns }),
      ...(partition && { partition }),
    },
  };
}

/** Everything `consulRegistryFromUri` validates and reads (files included), without creating the registry. */
export function parseConsulUri(input: URL | string, ctx: RegistryUriContext): ConsulRegistryOptions {
  const { uri, connection } = parseConnection(input, ctx);
  let deregisterAfter: number | undefined;
  const deregisterRaw = uri.params.get('deregister-after');
  if (deregisterRaw !== null) {
    let ms = 0;
    try {
      ms = parseGoDuration(deregisterRaw);
    } catch {
      // ms stays 0: refused below.
    }
    if (!(ms > 0)) {
      throw registryUriError(
        uri.text,
        syntax,
        `?deregister-after=${quote(deregisterRaw, 40)} is not a positive Go duration`,
        'use e.g. 1m or 90s',
      );
    }
    deregisterAfter = ms / 1000;
  }
  const options: ConsulRegistryOptions = {
    nodeId: ctx.nodeId,
    ...(ctx.engineId !== undefined && { engineId: ctx.engineId }),
    ...connection,
    ttl: ctx.ttl,
    ...(ctx.logger !== undefined && { logger: ctx.logger }),
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
  return createConsulFollower({
    ...parseConnection(input, ctx).connection,
    ...(ctx.logger !== undefined && { logger: ctx.logger }),
  });
}
