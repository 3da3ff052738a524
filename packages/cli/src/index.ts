export type { CliConfig, LogFormat } from './options.js';
export { buildProgram, parseCli } from './options.js';
export { run } from './run.js';
