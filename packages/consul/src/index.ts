export { createConsulRegistry } from './registry.js';
export type { ConsulRegistryOptions } from './registry.js';
export type { ConsulTlsOptions } from './client.js';
export { consulRegistryFromUri, parseConsulUri } from './uri.js';
