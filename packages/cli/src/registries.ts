import { ConfigError, type Registry, type RegistryUriContext, type ServiceFollower } from '@registrar/core';
import { parseRegistryUri } from '@registrar/core/kit';

type Factory = (uri: string, ctx: RegistryUriContext) => Registry;
type FollowerFactory = (uri: string, ctx: Pick<RegistryUriContext, 'logger' | 'env'>) => ServiceFollower;

interface Adapter {
  readonly registry: Factory;
  /** The read side, for `registrar lb`. */
  readonly follower: FollowerFactory;
}

// Each adapter is imported only when a URI names it: their clients (etcd's gRPC stack, ZooKeeper's, undici)
// would otherwise cost every process tens of MiB of memory and start-up time for backends it never talks to.
const etcd = async (): Promise<Adapter> => {
  const m = await import('@registrar/etcd');
  return { registry: m.etcdRegistryFromUri, follower: m.etcdFollowerFromUri };
};
const zookeeper = async (): Promise<Adapter> => {
  const m = await import('@registrar/zookeeper');
  return { registry: m.zookeeperRegistryFromUri, follower: m.zookeeperFollowerFromUri };
};
const consul = async (): Promise<Adapter> => {
  const m = await import('@registrar/consul');
  return { registry: m.consulRegistryFromUri, follower: m.consulFollowerFromUri };
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

/** Fail fast on a URI whose scheme or shape is wrong, before anything connects. */
export function checkRegistryUri(text: string): void {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(text)?.[1]?.toLowerCase();
  if (scheme === undefined || adapters[scheme] === undefined) {
    throw new ConfigError(
      `unknown registry URI "${text}": expected one of ${SCHEMES.map((s) => `${s}://`).join(', ')}`,
    );
  }
  parseRegistryUri(text, { port: 1, host: 'localhost', form: `${scheme}://host:port/path` });
}

function adapterOf(text: string): Promise<Adapter> {
  checkRegistryUri(text);
  return adapters[text.slice(0, text.indexOf(':')).toLowerCase()]();
}

export async function createRegistry(text: string, ctx: RegistryUriContext): Promise<Registry> {
  return (await adapterOf(text)).registry(text, ctx);
}

export async function createFollower(
  text: string,
  ctx: Pick<RegistryUriContext, 'logger' | 'env'>,
): Promise<ServiceFollower> {
  return (await adapterOf(text)).follower(text, ctx);
}
