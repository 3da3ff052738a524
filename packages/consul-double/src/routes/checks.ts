import { canRead, requireCheckWrite, requirePermission } from '../acl.js';
import { STATUSES } from '../agent.js';
import type { CheckDefinition, CheckRecord, CheckStatus } from '../agent.js';
import type { Call, DoubleContext, Route, Settings } from '../context.js';
import { decodeCheckRegistration, decodeCheckUpdate } from '../decode.js';
import { HttpError, readBody, send } from '../http.js';
import { inScope } from '../query.js';
import { checkJson } from '../views.js';

// The agent's checks: register, deregister, list, and the TTL check updates.

/** Script and Docker checks (`Args`) are refused from the HTTP API unless `enableScriptChecks`, as in Consul. */
export function refuseScripts(settings: Settings, checks: readonly CheckDefinition[]): void {
  if (!settings.enableScriptChecks && checks.some((c) => c.args && c.args.length > 0)) {
    throw new HttpError(
      500,
      "Scripts are disabled on this agent from remote calls; to enable, configure 'enable_script_checks' to true",
    );
  }
}

function knownCheck({ agent }: DoubleContext, id: string): CheckRecord {
  const check = agent.checks.get(id);
  if (!check) {
    throw new HttpError(
      404,
      `Unknown check ID ${JSON.stringify(id)}. Ensure that the check ID is passed, not the check name.`,
    );
  }
  return check;
}

function listChecks({ agent, node }: DoubleContext, call: Call): void {
  const out: Record<string, unknown> = {};
  if (canRead(call)) {
    for (const c of agent.checks.values()) if (inScope(call.url, c)) out[c.id] = checkJson(c, node);
  }
  send(call, 200, out);
}

async function register({ agent, node, settings }: DoubleContext, call: Call): Promise<void> {
  const registration = decodeCheckRegistration(await readBody(call.req));
  if (registration.serviceId) {
    const service = agent.services.get(registration.serviceId);
    if (!service)
      throw new HttpError(400, `ServiceID ${JSON.stringify(registration.serviceId)} does not exist`);
    requirePermission(call, 'service:write', service.name);
  } else {
    requirePermission(call, 'node:write', node.name);
  }
  refuseScripts(settings, [registration.def]);
  agent.registerCheck(registration.def, registration.id, registration.serviceId);
  send(call, 200, undefined);
}

function deregister(ctx: DoubleContext, call: Call, id: string): void {
  requireCheckWrite(call, knownCheck(ctx, id), ctx.node.name);
  ctx.agent.deregisterCheck(id);
  send(call, 200, undefined);
}

function ttlUpdate(ctx: DoubleContext, call: Call, id: string, status: CheckStatus, output: string): void {
  requireCheckWrite(call, knownCheck(ctx, id), ctx.node.name);
  if (ctx.agent.updateTtl(id, status, output) === 'not-ttl')
    throw new HttpError(500, `CheckID ${JSON.stringify(id)} does not have associated TTL`);
  send(call, 200, undefined);
}

/** `PUT /v1/agent/check/{pass,warn,fail}/:id?note=`. */
const ttlVerb = (verb: string, status: CheckStatus): Route => ({
  path: `/v1/agent/check/${verb}/*`,
  methods: ['PUT'],
  handle: (ctx, call, id) => ttlUpdate(ctx, call, id, status, call.url.searchParams.get('note') ?? ''),
});

async function update(ctx: DoubleContext, call: Call, id: string): Promise<void> {
  const { status, output } = decodeCheckUpdate(await readBody(call.req));
  if (!STATUSES.includes(status as CheckStatus))
    throw new HttpError(400, `Invalid check status: '${status}'`);
  ttlUpdate(ctx, call, id, status as CheckStatus, output);
}

export const checkRoutes: readonly Route[] = [
  { path: '/v1/agent/checks', methods: ['GET'], handle: listChecks },
  { path: '/v1/agent/check/register', methods: ['PUT'], handle: register },
  { path: '/v1/agent/check/deregister/*', methods: ['PUT'], handle: deregister },
  ttlVerb('pass', 'passing'),
  ttlVerb('warn', 'warning'),
  ttlVerb('fail', 'critical'),
  { path: '/v1/agent/check/update/*', methods: ['PUT'], handle: update },
];
