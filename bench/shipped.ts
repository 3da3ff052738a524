// How the product image runs node, read from the Dockerfile itself, so the goal rows measure the process as it
// ships: the node flags of its ENTRYPOINT and the runtime environment its ENV lines set (allocator and V8
// settings; the compile cache goes to a directory of the run's own).
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Launch } from './registrar-process.js';

const DOCKERFILE = new URL('../Dockerfile', import.meta.url);
/** ENV names of the image that change how node runs; the rest (log format, metrics address) the bench sets. */
const RUNTIME_ENV = /^(MALLOC_\w+|NODE_COMPILE_CACHE|NODE_OPTIONS|UV_THREADPOOL_SIZE)$/;

export interface Shipped extends Partial<Launch> {
  /** `node <flags>` and the environment, for the report. */
  readonly label: string;
}

/** The registrar stage of the Dockerfile: from `FROM … AS registrar` to the next FROM or the end. */
function registrarStage(text: string): string {
  const start = text.search(/^FROM\s+\S+\s+AS\s+registrar\s*$/im);
  if (start < 0) throw new Error('Dockerfile: no `FROM … AS registrar` stage');
  const rest = text.slice(start + 1);
  const next = rest.search(/^FROM\s/im);
  return next < 0 ? rest : rest.slice(0, next);
}

/** Every `KEY=value` of the ENV instructions of `stage` (continuation lines joined). */
function envOf(stage: string): Record<string, string> {
  const env: Record<string, string> = {};
  const joined = stage.replace(/\\\n\s*/g, ' ');
  for (const line of joined.split('\n')) {
    const m = /^ENV\s+(.*)$/.exec(line.trim());
    if (!m) continue;
    for (const pair of m[1].matchAll(/(\w+)=("[^"]*"|\S+)/g)) env[pair[1]] = pair[2].replace(/^"|"$/g, '');
  }
  return env;
}

export function shipped(): Shipped {
  const stage = registrarStage(readFileSync(DOCKERFILE, 'utf8'));
  const entry = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(stage);
  if (!entry) throw new Error('Dockerfile: the registrar stage has no ENTRYPOINT [...]');
  const argv = JSON.parse(entry[1]) as string[];
  const node = argv.indexOf('node');
  const script = argv.findIndex((a) => a.endsWith('/bin/registrar.js'));
  if (node < 0 || script < node)
    throw new Error(`Dockerfile: ENTRYPOINT ${entry[1]} does not run node …/bin/registrar.js`);
  const nodeFlags = argv.slice(node + 1, script);
  const env = Object.fromEntries(Object.entries(envOf(stage)).filter(([key]) => RUNTIME_ENV.test(key)));
  if (env.NODE_COMPILE_CACHE !== undefined)
    env.NODE_COMPILE_CACHE = mkdtempSync(join(tmpdir(), 'registrar-compile-cache-'));
  const shown = Object.entries(env).map(([k, v]) =>
    k === 'NODE_COMPILE_CACHE' ? `${k}=<dir>` : `${k}=${v}`,
  );
  return { label: [...shown, 'node', ...nodeFlags].join(' '), nodeFlags, env };
}
