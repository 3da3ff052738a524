/**
 * `@registrar/core/internal`: what this repository's own packages (the CLI, `@registrar/lb`, the adapters)
 * share beyond the public API and the adapter kit: derivation, labels, the reconciler, explain, the Swarm
 * bridge. No compatibility promise: anything here may change in any release.
 */
export type { LabelWarning } from './service.js';
export type { ContainerState, Derivation, Skip, SkipReason } from './derive.js';
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
export type { ReconcilePlan } from './diff.js';
export { planChanges, planReconcile } from './diff.js';
export { coalesceWhileBusy } from './operators.js';
export type { DockerHint, DockerSourceOptions } from './sources/container/events.js';
export { dockerHints } from './sources/container/events.js';
export type { EngineIdentity } from './engine.js';
export { engineIdentity } from './engine.js';
export type { EventAction, NormalisedEvent } from './engine-events.js';
export { normaliseEvent } from './engine-events.js';
export type { ReconcilerOptions, RegistrationState, RegistryFailing } from './reconciler.js';
export { Reconciler, findNodeIdConflict } from './reconciler.js';
export type { Bridge, ExplainLookup, TailOptions, UnresolvedContainer } from './bridge.js';
export { startBridge } from './bridge.js';
export type { Source, SourceInput, SourceStatus, Step, StepLog } from './source.js';
export type { ContainerSource, ContainerSourceOptions } from './sources/container/index.js';
export { containerSource, createBridge } from './sources/container/index.js';
export { listedAsInspect } from './sources/container/listed.js';
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
export type {
  SwarmContext,
  SwarmDerivation,
  SwarmDeriveOptions,
  SwarmMode,
  SwarmSkip,
  SwarmSkipReason,
  SwarmSnapshot,
} from './sources/swarm/derive.js';
export {
  STACK_NAMESPACE_LABEL,
  SWARM_MODES,
  deriveSwarmService,
  deriveSwarmServices,
  isTaskServed,
  swarmContext,
} from './sources/swarm/derive.js';
export type { SwarmDockerApi, SwarmFetch, SwarmHint, SwarmLook } from './sources/swarm/events.js';
export { fetchSwarm, swarmEventLook, swarmHints } from './sources/swarm/events.js';
export type { SwarmBridgeOptions, SwarmSource, SwarmSourceOptions } from './sources/swarm/index.js';
export { createSwarmBridge, swarmSource } from './sources/swarm/index.js';
