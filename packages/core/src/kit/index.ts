/**
 * `@registrar/core/kit`: what adapters (and the Consul double) share, without the pipeline and its rxjs:
 * registry URIs, host:port, secrets and TLS files, the worker pool and Go durations.
 */
export type { HostPort, RegistryUri, RegistryUriProblem, RegistryUriSyntax } from '../uri.js';
export { MAX_URI_LENGTH, formatHostPort, parseRegistryUri, registryUriError, showUri } from '../uri.js';
export type { EnvSecret, Environment } from './env-files.js';
export { envValue, readEnvFile, readSecret } from './env-files.js';
export { concurrencyLimit, runPool } from './pool.js';
export { formatGoDuration, parseGoDuration } from './go-duration.js';
export { connectFailureIn, connectionHint } from './net-errors.js';
