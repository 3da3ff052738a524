export type { HealthStatus, LabelWarning, Protocol, Service } from './service.js';
export type { LivenessLoss, Registry, RegistryEntry, RegistryUriContext } from './registry.js';
export type { LogFn, Logger } from './logger.js';
export { silentLogger } from './logger.js';
export {
  ConfigError,
  RegistryConnectionError,
  RegistryError,
  RegistryRejectedError,
  RegistrySessionLostError,
} from './errors.js';
export type { Derivation, DeriveOptions } from './derive.js';
