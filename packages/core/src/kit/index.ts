/**
 * `@registrar/core/kit`: what the adapters (and the Consul double) share, without the pipeline and its rxjs:
 * registry URIs, host:port, secrets and TLS files, state files, the worker pool, backoff, Go durations,
 * one-line quoting, the followers' gate and the endpoint check every adapter's `check()` starts with. For
 * adapter authors; it follows the same versions as the root but documents less.
 */
export type { HostPort, RegistryUri, RegistryUriProblem, RegistryUriSyntax } from '../uri.js';
export { MAX_URI_LENGTH, formatHostPort, parseRegistryUri, registryUriError, showUri } from '../uri.js';
export { isPort, parseHostPort } from './host-port.js';
export type { EnvSecret, Environment } from './env-files.js';
export { envValue, readEnvFile, readSecret } from './env-files.js';
export { concurrencyLimit, runPool } from './pool.js';
export { roundsById, splitBatches, writeId } from './batches.js';
export type { QuietGcOptions, QuietGcProbe } from './quiet-gc.js';
export { processProbe, startQuietGc } from './quiet-gc.js';
export { formatGoDuration, parseGoDuration } from './go-duration.js';
export { oneLine, quote } from '../text.js';
export { readStateFile, removeStateFile, stateFilePath, writeStateFile } from '../state-file.js';
export { backoffDelay, defaultBackoff } from '../backoff.js';
export type { FollowGate, FollowLifetimes } from '../follow-gate.js';
export { followGate, followLifetimes, instanceLabels } from '../follow-gate.js';
export { endpointProblem } from '../service-record.js';
export { renamedOption } from './renamed.js';
export { familyAddresses } from '../service.js';
export { connectFailureIn, connectionHint } from './net-errors.js';
