#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parseGoDuration } from '@registrar/core/kit';
import { startConsulDouble } from './server.js';

const usage = `usage: consul-double [--host 127.0.0.1] [--port 8500] [--acl-token <token>]
                     [--reap-interval 30s] [--min-deregister-after 1m] [--node-name <name>]
                     [--session-ttl-min 10s]
                     [--tls-cert <file> --tls-key <file> [--tls-ca <file>]] [--enable-script-checks]
Every option can also be set as CONSUL_DOUBLE_<OPTION> (e.g. CONSUL_DOUBLE_PORT=8500,
CONSUL_DOUBLE_ENABLE_SCRIPT_CHECKS=true).`;

function fail(message: string): never {
  process.stderr.write(`consul-double: ${message}\n${usage}\n`);
  process.exit(2);
}

const names = [
  'host',
  'port',
  'acl-token',
  'acl-master',
  'reap-interval',
  'min-deregister-after',
  'session-ttl-min',
  'node-name',
  'tls-cert',
  'tls-key',
  'tls-ca',
] as const;
let values: Partial<Record<(typeof names)[number] | 'help' | 'enable-script-checks', string | boolean>>;
try {
  values = parseArgs({
    options: {
      ...Object.fromEntries(names.map((n) => [n, { type: 'string' as const }])),
      help: { type: 'boolean', short: 'h' },
      'enable-script-checks': { type: 'boolean' },
    },
  }).values;
} catch (err) {
  fail((err as Error).message);
}
if (values.help) {
  process.stdout.write(`${usage}\n`);
  process.exit(0);
}
const opt = (name: (typeof names)[number]): string | undefined => {
  const v = values[name];
  if (typeof v === 'string') return v;
  return process.env[`CONSUL_DOUBLE_${name.toUpperCase().replace(/-/g, '_')}`] || undefined;
};
const duration = (name: (typeof names)[number]): number | undefined => {
  const v = opt(name);
  if (v === undefined) return undefined;
  try {
    return parseGoDuration(v);
  } catch (err) {
    return fail(`--${name}: ${(err as Error).message} (use a Go duration such as 30s or 1m)`);
  }
};
const file = (name: (typeof names)[number]): Buffer | undefined => {
  const v = opt(name);
  if (v === undefined) return undefined;
  try {
    return readFileSync(v);
  } catch (err) {
    return fail(`--${name}: cannot read ${v}: ${(err as Error).message}`);
  }
};

const port = Number(opt('port') ?? '8500');
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`--port must be 0-65535, got ${opt('port')}`);
const aclToken = opt('acl-token') ?? opt('acl-master');
const reapIntervalMs = duration('reap-interval');
const minDeregisterAfterMs = duration('min-deregister-after');
const sessionTtlMinMs = duration('session-ttl-min');
const nodeName = opt('node-name');
const cert = file('tls-cert');
const key = file('tls-key');
const ca = file('tls-ca');
if ((cert === undefined) !== (key === undefined)) fail('--tls-cert and --tls-key go together');
const scriptsEnv = process.env.CONSUL_DOUBLE_ENABLE_SCRIPT_CHECKS?.trim().toLowerCase();
if (scriptsEnv && !['true', 'false', '1', '0'].includes(scriptsEnv))
  fail(`CONSUL_DOUBLE_ENABLE_SCRIPT_CHECKS must be true or false, got ${JSON.stringify(scriptsEnv)}`);
const enableScriptChecks =
  values['enable-script-checks'] === true || scriptsEnv === 'true' || scriptsEnv === '1';

const double = await startConsulDouble({
  host: opt('host') ?? '127.0.0.1',
  port,
  ...(aclToken !== undefined && { aclToken }),
  ...(reapIntervalMs !== undefined && { reapIntervalMs }),
  ...(minDeregisterAfterMs !== undefined && { minDeregisterAfterMs }),
  ...(sessionTtlMinMs !== undefined && { sessionTtlMinMs }),
  ...(nodeName !== undefined && { nodeName }),
  enableScriptChecks,
  ...(cert && key && { tls: { cert, key, ...(ca && { ca, requestCert: true }) } }),
}).catch((err: Error) => fail(err.message));
process.stdout.write(`consul-double listening on ${double.url}\n`);

const shutdown = (): void => {
  void double.close().then(() => process.exit(0));
};
process.once('SIGTERM', shutdown);
process.once('SIGINT', shutdown);
