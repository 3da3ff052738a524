export type { HealthStatus, LabelWarning, Protocol, Service } from './service.js';
export type {
  ElectionOptions,
  Leadership,
  LivenessLoss,
  Registry,
  RegistryEntry,
  RegistryEvent,
  RegistryUriContext,
} from './registry.js';
export type { FollowUpdate, Instance, ServiceFollower } from './follow.js';
export type { FollowGate, FollowLifetimes } from './follow-gate.js';
export { followGate, followLifetimes, instanceLabels } from './follow-gate.js';
export type { LogFn, Logger } from './logger.js';
export { silentLogger } from './logger.js';
export {
  ConfigError,
  NodeIdConflictError,
  RegistryConnectionError,
  RegistryError,
  RegistryRejectedError,
  RegistrySessionLostError,
} from './errors.js';
export type { RegistryErrorKind } from './errors.js';
export type { ContainerState, Derivation, DeriveOptions, Skip, SkipReason } from './derive.js';
export {
  COMPOSE_SERVICE_LABEL,
  MAX_SKIPPED,
  containerName,
  containerStateOf,
  deriveServices,
  imageBaseName,
} from './derive.js';
export type { LabelScope, PortSettings, ServiceLabels } from './labels.js';
export {
  MAX_LABEL_VALUE_BYTES,
  MAX_SERVICE_NAME_LENGTH,
  collectSettings,
  isTruthy,
  isValidServiceName,
  parseServiceLabels,
  parseTags,
  settingsFor,
} from './labels.js';
export type {
  EnvSecret,
  Environment,
  HostPort,
  RegistryUri,
  RegistryUriProblem,
  RegistryUriSyntax,
} from './kit/index.js';
export {
  MAX_URI_LENGTH,
  envValue,
  formatGoDuration,
  formatHostPort,
  parseGoDuration,
  parseRegistryUri,
  readEnvFile,
  readSecret,
  registryUriError,
  concurrencyLimit,
  runPool,
  showUri,
} from './kit/index.js';
export { oneLine, quote } from './text.js';
export { readStateFile, removeStateFile, stateFilePath, writeStateFile } from './state-file.js';
export type { BackoffOptions } from './backoff.js';
export { backoffDelay, defaultBackoff } from './backoff.js';
export type { ReconcilePlan } from './diff.js';
export { planChanges, planReconcile } from './diff.js';
export { coalesceWhileBusy } from './operators.js';
export type { DockerApi, DockerHint, DockerSourceOptions } from './docker-source.js';
export { dockerHints } from './docker-source.js';
export type {
  ReconcilerObserver,
  ReconcilerOptions,
  RegistrationState,
  RegistryFailing,
  RegistryOp,
} from './reconciler.js';
export { Reconciler, findNodeIdConflict } from './reconciler.js';
export type { BridgeObserver, BridgeOptions, BridgeStatus, DeregisterMode, ExplainLookup } from './bridge.js';
export type {
  ContainerMatch,
  ExplainCode,
  ExplainInput,
  ExplainPort,
  ExplainReason,
  ExplainRegistration,
  ExplainRegistry,
  ExplainReport,
  ExplainService,
  ExplainSummary,
  ExplainVerdict,
  RegistrationVerdict,
} from './explain.js';
export { MIN_ID_PREFIX, explainContainer, matchContainer } from './explain.js';
export { Bridge, createBridge } from './bridge.js';
export type {
  SwarmContext,
  SwarmDerivation,
  SwarmDeriveOptions,
  SwarmMode,
  SwarmSkip,
  SwarmSkipReason,
  SwarmSnapshot,
} from './swarm/derive.js';
export {
  STACK_NAMESPACE_LABEL,
  SWARM_MODES,
  deriveSwarmService,
  deriveSwarmServices,
  isTaskServed,
  swarmContext,
} from './swarm/derive.js';
export type { SwarmDockerApi, SwarmFetch, SwarmHint, SwarmLook, SwarmSourceOptions } from './swarm/source.js';
export { fetchSwarm, swarmEventLook, swarmHints } from './swarm/source.js';
export type { SwarmBridgeObserver, SwarmBridgeOptions } from './swarm/bridge.js';
export { SwarmBridge, createSwarmBridge } from './swarm/bridge.js';
