export { createEtcdRegistry } from './registry.js';
export type {
  EtcdClientOptions,
  EtcdCommonOptions,
  EtcdConnectionOptions,
  EtcdRegistryOptions,
} from './registry.js';
export type { EtcdLayout } from './layout.js';
export { createEtcdFollower } from './follow.js';
export type { EtcdFollowerOptions } from './follow.js';
export { checkEtcdUri, etcdFollowerFromUri, etcdRegistryFromUri, parseEtcdUri } from './uri.js';
export type { ParsedEtcdUri } from './uri.js';
