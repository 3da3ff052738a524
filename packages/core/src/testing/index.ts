/**
 * `@registrar/core/testing`: fixtures for tests and benchmarks of registrar and of code built on it. Nothing
 * here imports a test runner, so benchmarks and plain scripts can use it too.
 */
export { DockerApiError, SyntheticDocker, type SyntheticContainer } from './docker.js';
export { MemoryRegistry, type MemoryRegistryOptions, type RegistryCall } from './memory-registry.js';
export { service } from './service.js';
export {
  startSyntheticEngine,
  type EngineContainer,
  type RequestCounts,
  type RequestFault,
  type RequestKind,
  type SyntheticEngine,
  type SyntheticEngineOptions,
} from './engine.js';
export type { SwarmServiceSpec, SyntheticSwarm, SyntheticSwarmOptions, TaskState } from './swarm.js';
export { capturingLogger, type CapturedLine, type CapturingLoggerOptions } from './logger.js';
export { freePort } from './ports.js';
export { GiveUp, tripwire, until, type Tripwire, type UntilOptions } from './until.js';
