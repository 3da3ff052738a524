export { createConsulRegistry } from './registry.js';
export type { ConsulRegistryOptions } from './registry.js';
export type { ConsulTlsOptions } from './client.js';
export { createConsulFollower } from './follow.js';
export type { ConsulFollowerOptions } from './follow.js';
export { consulFollowerFromUri, consulRegistryFromUri, parseConsulUri } from './uri.js';
