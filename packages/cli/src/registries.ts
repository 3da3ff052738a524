import {
  ConfigError,
  parseRegistryUri,
  type Registry,
  type RegistryUriContext,
  type ServiceFollower,
} from '@registrar/core';
import { consulFollowerFromUri, consulRegistryFromUri } from '@registrar/consul';
import { etcdFollowerFromUri, etcdRegistryFromUri } from '@registrar/etcd';
import { zookeeperFollowerFromUri, zookeeperRegistryFromUri } from '@registrar/zookeeper';

type Factory = (uri: string, ctx: RegistryUriContext) => Registry;

/** URI scheme → adapter. Each adapter parses its own URI (layouts, query options, credentials from env). */
const factories: Record<string, Factory> = {
  etcd: etcdRegistryFromUri,
  etcds: etcdRegistryFromUri,
  'etcd-tls': etcdRegistryFromUri,
  zookeeper: zookeeperRegistryFromUri,
  zk: zookeeperRegistryFromUri,
  consul: consulRegistryFromUri,
  'consul-tls': consulRegistryFromUri,
};

type FollowerFactory = (uri: string, ctx: Pick<RegistryUriContext, 'logger' | 'env'>) => ServiceFollower;

/** The same schemes → each adapter's read side, for `registrar lb`. */
const followers: Record<string, FollowerFactory> = {
  etcd: etcdFollowerFromUri,
  etcds: etcdFollowerFromUri,
  'etcd-tls': etcdFollowerFromUri,
  zookeeper: zookeeperFollowerFromUri,
  zk: zookeeperFollowerFromUri,
  consul: consulFollowerFromUri,
  'consul-tls': consulFollowerFromUri,
};

export const SCHEMES = Object.keys(factories);

/** Fail fast on a URI whose scheme or shape is wrong, before anything connects. */
export function checkRegistryUri(text: string): void {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(text)?.[1]?.toLowerCase();
  if (scheme === undefined || factories[scheme] === undefined) {
    throw new ConfigError(
      `unknown registry URI "${text}": expected one of ${SCHEMES.map((s) => `${s}://`).join(', ')}`,
    );
  }
  parseRegistryUri(text, { port: 1, host: 'localhost', form: `${scheme}://host:port/path` });
}

export function createRegistry(text: string, ctx: RegistryUriContext): Registry {
  checkRegistryUri(text);
  const scheme = text.slice(0, text.indexOf(':')).toLowerCase();
  return factories[scheme](text, ctx);
}

export function createFollower(
  text: string,
  ctx: Pick<RegistryUriContext, 'logger' | 'env'>,
): ServiceFollower {
  checkRegistryUri(text);
  const scheme = text.slice(0, text.indexOf(':')).toLowerCase();
  return followers[scheme](text, ctx);
}
