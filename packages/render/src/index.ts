export { followIntoFiles, GOOD_OUTCOMES, loadTemplate } from './follow.js';
export type { RenderEvent, RenderFollowOptions, RenderOutcome, RenderTarget } from './follow.js';
export { compileTemplate, TemplateError } from './template.js';
export type { CompiledTemplate, RenderResult, TemplateInstance } from './template.js';
export { haproxy, hostname, integer, json, nginx, token } from './escape.js';
export { settle } from './settle.js';
export type { WaitWindow } from './settle.js';
