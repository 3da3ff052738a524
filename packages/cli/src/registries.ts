import {
  ConfigError,
  silentLogger,
  type Registry,
  type RegistryUriContext,
  type ServiceFollower,
} from '@registrar/core';
import { quote } from '@registrar/core/kit';

type Factory = (uri: string, ctx: RegistryUriContext) => Registry;
type FollowerFactory = (uri: string, ctx: Pick<RegistryUriContext, 'logger' | 'env'>) => ServiceFollower;

interface Adapter {
  readonly registry: Factory;
  /** The read side, for `registrar lb`. */
  readonly follower: FollowerFactory;
  /** Everything the factory checks (URI, credentials and TLS files in env), creating nothing. */
  readonly check: (uri: string, env: RegistryUriContext['env']) => void;
}

// Each adapter is imported only when a URI names it: their clients (etcd's gRPC stack, ZooKeeper's, undici)
// would otherwise cost every process tens of MiB of memory and start-up time for backends it never talks to.
const etcd = async (): Promise<Adapter> => {
  const m = await import('@registrar/etcd');
  return { registry: m.etcdRegistryFromUri, follower: m.etcdFollowerFromUri, check: m.checkEtcdUri };
};
const zookeeper = async (): Promise<Adapter> => {
  const m = await import('@registrar/zookeeper');
  return {
    registry: m.zookeeperRegistryFromUri,
    follower: m.zookeeperFollowerFromUri,
    check: (uri, env) => void m.parseZookeeperUri(uri, env),
  };
};
const consul = async (): Promise<Adapter> => {
  const m = await import('@registrar/consul');
  return {
    registry: m.consulRegistryFromUri,
    follower: m.consulFollowerFromUri,
    check: (uri, env) => void m.parseConsulUri(uri, { nodeId: 'check', ttl: 15, logger: silentLogger, env }),
  };
};

/** URI scheme → adapter. Each adapter parses its own URI (layouts, query options, credentials from env). */
const adapters: Record<string, () => Promise<Adapter>> = {
  etcd,
  etcds: etcd,
  'etcd-tls': etcd,
  zookeeper,
  zk: zookeeper,
  consul,
  'consul-tls': consul,
};

export const SCHEMES = Object.keys(adapters);

/** Where each backend's credentials go instead of a URI's query. */
const CREDENTIAL_VARIABLES: Record<string, string> = {
  etcd: 'ETCD_USERNAME and ETCD_PASSWORD (or ETCD_PASSWORD_FILE)',
  zookeeper: 'ZOOKEEPER_AUTH=user:password (or ZOOKEEPER_AUTH_FILE)',
  consul: 'CONSUL_HTTP_TOKEN (or CONSUL_HTTP_TOKEN_FILE)',
};

/** Query keys that look like a credential: `password`, `token`, `secret`, `auth`, `api-key`... */
const CREDENTIAL_KEY = /pass|pwd|token|secret|auth|credential|cookie|session|private|(^|[-_.])key$|^key/i;

const backendOf = (scheme: string) =>
  scheme.startsWith('etcd') ? 'etcd' : scheme.startsWith('consul') ? 'consul' : 'zookeeper';

/**
 * `text` with the value of every query parameter that looks like a credential replaced by `***`: what may be
 * shown of a URI someone put a secret in.
 */
export function redactUri(text: string): string {
  return text
    .replace(/\/\/[^/?#]*@/, '//***@')
    .replace(/([?&])([^=&#]*)=([^&#]*)/g, (whole, sep: string, key: string) =>
      CREDENTIAL_KEY.test(safeDecode(key)) ? `${sep}${key}=***` : whole,
    );
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    return text;
  }
}

/**
 * Refuse a URI whose query carries something credential-looking, naming the variable to use instead and
 * never echoing the value: query strings end up in shell history, process lists and logs.
 */
function refuseCredentialQuery(text: string, scheme: string): void {
  const query = /\?([^#]*)/.exec(text)?.[1];
  if (query === undefined) return;
  for (const pair of query.split('&')) {
    const key = safeDecode(pair.split('=')[0] ?? '');
    if (!CREDENTIAL_KEY.test(key)) continue;
    throw new ConfigError(
      `invalid registry URI ${quote(redactUri(text), 120)}: ${quote(key, 40)} looks like a credential, and credentials never go in the URI (its value is not shown); set ${CREDENTIAL_VARIABLES[backendOf(scheme)]} in the environment instead`,
    );
  }
}

/**
 * What the CLI itself refuses in a registry URI, synchronously: an unknown scheme, a credential in the
 * query. Returns the scheme.
 */
export function checkRegistryScheme(text: string): string {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(text)?.[1]?.toLowerCase();
  if (scheme === undefined || adapters[scheme] === undefined) {
    throw new ConfigError(
      `unknown registry URI ${quote(redactUri(text), 120)}: expected one of ${SCHEMES.map((s) => `${s}://`).join(', ')}`,
    );
  }
  refuseCredentialQuery(text, scheme);
  return scheme;
}

/**
 * Fail fast on a URI that is wrong, before anything connects: an unknown scheme, a credential in the query,
 * then the adapter's own checks, whose messages reach the user unchanged.
 */
export async function checkRegistryUri(text: string, env: RegistryUriContext['env'] = {}): Promise<void> {
  const scheme = checkRegistryScheme(text);
  (await adapters[scheme]()).check(text, env);
}

async function adapterOf(text: string, env: RegistryUriContext['env']): Promise<Adapter> {
  await checkRegistryUri(text, env);
  return adapters[checkRegistryScheme(text)]();
}

export async function createRegistry(text: string, ctx: RegistryUriContext): Promise<Registry> {
  return (await adapterOf(text, ctx.env)).registry(text, ctx);
}

export async function createFollower(
  text: string,
  ctx: Pick<RegistryUriContext, 'logger' | 'env'>,
): Promise<ServiceFollower> {
  return (await adapterOf(text, ctx.env)).follower(text, ctx);
}
