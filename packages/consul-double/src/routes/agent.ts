import { canRead, requirePermission } from '../acl.js';
import type { Call, DoubleContext, Route } from '../context.js';
import { decodeServiceRegistration } from '../decode.js';
import { HttpError, readBody, send } from '../http.js';
import { inScope } from '../query.js';
import { agentServiceJson } from '../views.js';
import { refuseScripts } from './checks.js';

// The agent's services: register, deregister, read.

function listServices({ agent, node }: DoubleContext, call: Call): void {
  const out: Record<string, unknown> = {};
  if (canRead(call)) {
    for (const s of agent.services.values()) if (inScope(call.url, s)) out[s.id] = agentServiceJson(s, node);
  }
  send(call, 200, out);
}

async function register({ agent, settings }: DoubleContext, call: Call): Promise<void> {
  const { url } = call;
  const def = decodeServiceRegistration(await readBody(call.req));
  const ns = url.searchParams.get('ns');
  const partition = url.searchParams.get('partition');
  if (ns && def.namespace === undefined) def.namespace = ns;
  if (partition && def.partition === undefined) def.partition = partition;
  requirePermission(call, 'service:write', def.name);
  // Consul checks this when it adds the checks, after every validation (a plain error: 500).
  refuseScripts(settings, def.checks);
  const replace = url.searchParams.get('replace-existing-checks');
  agent.registerService(def, replace !== null && replace !== 'false' && replace !== '0');
  send(call, 200, undefined);
}

function deregister({ agent }: DoubleContext, call: Call, id: string): void {
  const service = agent.services.get(id);
  if (!service) {
    throw new HttpError(
      404,
      `Unknown service ID ${JSON.stringify(id)}. Ensure that the service ID is passed, not the service name.`,
    );
  }
  requirePermission(call, 'service:write', service.name);
  agent.deregisterService(id);
  send(call, 200, undefined);
}

function readService({ agent, node }: DoubleContext, call: Call, id: string): void {
  const s = agent.services.get(id);
  if (!s || !canRead(call) || !inScope(call.url, s)) throw new HttpError(404, `unknown service ID: ${id}`);
  send(call, 200, { ...agentServiceJson(s, node), ContentHash: String(s.modifyIndex) });
}

export const agentRoutes: readonly Route[] = [
  { path: '/v1/agent/services', methods: ['GET'], handle: listServices },
  { path: '/v1/agent/service/register', methods: ['PUT'], handle: register },
  { path: '/v1/agent/service/deregister/*', methods: ['PUT'], handle: deregister },
  { path: '/v1/agent/service/*', methods: ['GET'], handle: readService },
];
