export { createEtcdRegistry } from './registry.js';
export type {
  EtcdClientOptions,
  EtcdCommonOptions,
  EtcdConnectionOptions,
  EtcdRegistryOptions,
} from './registry.js';
export type { EtcdLayout } from './layout.js';
export { etcdRegistryFromUri } from './uri.js';
