export { startConsulDouble } from './server.js';
export type { ConsulDouble, ConsulDoubleOptions, RecordedRequest } from './server.js';
export type { CheckDefinition, CheckStatus } from './agent.js';
// Go durations as the double parses and prints them: core's, the same the adapter uses.
export { formatGoDuration, parseGoDuration } from '@registrar/core/kit';
