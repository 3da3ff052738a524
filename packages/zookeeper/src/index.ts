export { createZookeeperRegistry } from './registry.js';
export type { ZookeeperRegistryOptions } from './registry.js';
export type { ZookeeperLayout, ZookeeperPayload } from './layout.js';
export { createZookeeperFollower } from './follow.js';
export type { ZookeeperFollowerOptions } from './follow.js';
export { parseZookeeperUri, zookeeperFollowerFromUri, zookeeperRegistryFromUri } from './uri.js';
export { electionPath } from './election.js';
export type { PublishedSession } from './election.js';
