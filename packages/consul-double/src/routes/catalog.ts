import { canRead } from '../acl.js';
import type { AgentState } from '../agent.js';
import type { Call, DoubleContext, Route } from '../context.js';
import { block, send } from '../http.js';
import { flag, inScope } from '../query.js';
import { catalogServiceJson, checkJson, healthServiceJson, nodeJson, serfHealthJson } from '../views.js';

// The blocking reads of the catalog and of health: one node, this agent's services.

/** A service's health includes the node's checks (serfHealth and any registered without a ServiceID). */
const checksOf = (agent: AgentState, serviceId: string) =>
  [...agent.checks.values()].filter((c) => c.serviceId === serviceId || c.serviceId === '');

/** A blocking read of the entries under service `name`: none for the anonymous token (default deny). */
async function readByName(
  { agent }: DoubleContext,
  call: Call,
  name: string,
  entries: () => unknown[],
): Promise<void> {
  const index = await block(call, agent, () => agent.indexForName(name));
  send(call, 200, canRead(call) ? entries() : [], index);
}

function healthService(ctx: DoubleContext, call: Call, name: string): Promise<void> {
  const { agent, node } = ctx;
  const passingOnly = flag(call.url, 'passing');
  const tags = call.url.searchParams.getAll('tag');
  return readByName(ctx, call, name, () =>
    [...agent.services.values()]
      .filter((s) => s.name === name && inScope(call.url, s) && tags.every((t) => s.tags.includes(t)))
      .map((s) => ({
        Node: nodeJson(node),
        Service: healthServiceJson(s),
        Checks: [serfHealthJson(node), ...checksOf(agent, s.id).map((c) => checkJson(c, node))],
      }))
      .filter((e) => !passingOnly || e.Checks.every((c) => c.Status === 'passing')),
  );
}

function healthChecks(ctx: DoubleContext, call: Call, name: string): Promise<void> {
  return readByName(ctx, call, name, () =>
    [...ctx.agent.checks.values()]
      .filter((c) => c.serviceName === name && inScope(call.url, c))
      .map((c) => checkJson(c, ctx.node)),
  );
}

function catalogService(ctx: DoubleContext, call: Call, name: string): Promise<void> {
  return readByName(ctx, call, name, () =>
    [...ctx.agent.services.values()]
      .filter((s) => s.name === name && inScope(call.url, s))
      .map((s) => catalogServiceJson(s, ctx.node)),
  );
}

/** Every service name with the union of its instances' tags; `consul` itself is always there. */
async function catalogServices({ agent }: DoubleContext, call: Call): Promise<void> {
  const index = await block(call, agent, () => agent.indexForCatalog());
  const out: Record<string, string[]> = { consul: [] };
  if (canRead(call)) {
    for (const s of agent.services.values()) {
      if (!inScope(call.url, s)) continue;
      out[s.name] = [...new Set([...(out[s.name] ?? []), ...s.tags])];
    }
  }
  send(call, 200, out, index);
}

export const catalogRoutes: readonly Route[] = [
  { path: '/v1/health/service/*', methods: ['GET'], handle: healthService },
  { path: '/v1/health/checks/*', methods: ['GET'], handle: healthChecks },
  { path: '/v1/catalog/services', methods: ['GET'], handle: catalogServices },
  { path: '/v1/catalog/service/*', methods: ['GET'], handle: catalogService },
];
