export { createZookeeperRegistry } from './registry.js';
export type { ZookeeperRegistryOptions } from './registry.js';
export type { ZookeeperLayout, ZookeeperPayload } from './layout.js';
export { zookeeperRegistryFromUri } from './uri.js';
