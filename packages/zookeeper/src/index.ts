export { createZookeeperRegistry } from './registry.js';
export type { ZookeeperRegistryOptions } from './registry.js';
export type { ZookeeperLayout, ZookeeperPayload } from './layout.js';
export type { DigestAuth } from './session.js';
export { createZookeeperFollower } from './follow.js';
export type { ZookeeperFollowerOptions } from './follow.js';
export { parseZookeeperUri, zookeeperFollowerFromUri, zookeeperRegistryFromUri } from './uri.js';
export type { ZookeeperUriOptions } from './uri.js';
