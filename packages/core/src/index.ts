/**
 * `@registrar/core`: what its README documents, and nothing else. `registerService` and the `Registry`
 * contract every adapter implements, the service model, the error taxonomy, loggers, the Docker bridge and the
 * follower contract. Adapters share `@registrar/core/kit`; `@registrar/core/internal` is for this repository's
 * own packages and may change in any release.
 */
export { registerService } from './register-service.js';
export type { RegisterOptions, Registration, RegistrationStatus } from './register-service.js';
export type { ServiceCheck, ServiceRecord } from './service-record.js';
export type { FamilyEndpoint, HealthStatus, Protocol, Service } from './service.js';
export type {
  ElectionOptions,
  Leadership,
  LivenessLoss,
  Registry,
  RegistryEntry,
  RegistryEvent,
  RegistryUriContext,
  RegistryWrite,
  RegistryWriteResult,
  ServiceProblem,
} from './registry.js';
export type { FollowUpdate, Instance, ServiceFollower } from './follow.js';
export type { LogFn, Logger } from './logger.js';
export { silentLogger } from './logger.js';
export type { ConsoleLoggerOptions, LogLevel } from './console-logger.js';
export { consoleLogger, createConsoleLogger } from './console-logger.js';
export {
  ConfigError,
  NodeIdConflictError,
  RegistryConnectionError,
  RegistryError,
  RegistryRejectedError,
  RegistrySessionLostError,
  registryErrorKind,
} from './errors.js';
export type { RegistryErrorKind } from './errors.js';
export { createBridge } from './public-bridge.js';
export type { Bridge } from './public-bridge.js';
export type { BridgeObserver, BridgeStatus } from './bridge.js';
export type { BridgeOptions, DeregisterMode } from './sources/container/index.js';
export type { DockerApi } from './docker-calls.js';
export type { DeriveOptions } from './derive.js';
export type { BackoffOptions } from './backoff.js';
export type { ReconcilerObserver, RegistryFailing, RegistryOp } from './reconciler.js';
