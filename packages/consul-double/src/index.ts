export { startConsulDouble } from './server.js';
export type { ConsulDouble, ConsulDoubleOptions, RecordedRequest } from './server.js';
export type { CheckDefinition, CheckStatus } from './agent.js';
