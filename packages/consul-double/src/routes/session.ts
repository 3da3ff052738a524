import { formatGoDuration } from '@registrar/core/kit';
import { canRead, requirePermission } from '../acl.js';
import type { AgentState } from '../agent.js';
import type { Call, DoubleContext, Route } from '../context.js';
import { decodeSessionCreate } from '../decode.js';
import type { SessionCreate } from '../decode.js';
import { HttpError, block, readBody, send } from '../http.js';
import { sessionJson } from '../views.js';

// Sessions: create, renew, destroy, read. The store (kv.ts) runs their TTLs and invalidation.

const SESSION_TTL_MAX = 86_400_000;
// Consul caps lock-delay at 60 s.
const LOCK_DELAY_MAX = 60_000;

function validate(
  def: SessionCreate,
  sessionTtlMinMs: number,
): asserts def is SessionCreate & { behavior: 'release' | 'delete' } {
  if (def.behavior !== 'release' && def.behavior !== 'delete')
    throw new HttpError(500, `Invalid Behavior setting '${def.behavior}'`);
  if (def.ttlMs !== 0 && (def.ttlMs < sessionTtlMinMs || def.ttlMs > SESSION_TTL_MAX)) {
    throw new HttpError(
      400,
      `Invalid Session TTL '${def.ttl}', must be between [${formatGoDuration(sessionTtlMinMs)}=${formatGoDuration(SESSION_TTL_MAX)}]`,
    );
  }
}

/**
 * No checks given: the node's serfHealth, always passing here. Named checks (of the node or of a service) must
 * exist and not be critical at creation; one turning critical later invalidates the session.
 */
function checksFor(agent: AgentState, given: string[] | undefined): string[] {
  const checks = given ?? ['serfHealth'];
  for (const id of checks) {
    if (id === 'serfHealth') continue;
    const check = agent.checks.get(id);
    if (!check) throw new HttpError(500, `Missing check '${id}' registration`);
    if (check.status === 'critical') throw new HttpError(500, `Check '${id}' is in critical state`);
  }
  return checks;
}

async function create({ agent, kv, node, settings }: DoubleContext, call: Call): Promise<void> {
  const def = decodeSessionCreate(await readBody(call.req));
  const nodeName = def.node ?? node.name;
  requirePermission(call, 'session:write', nodeName);
  validate(def, settings.sessionTtlMinMs);
  if (nodeName !== node.name)
    throw new HttpError(500, `Failed to create session: unknown node '${nodeName}'`);
  const checks = checksFor(agent, def.checks);
  const session = kv.createSession({
    name: def.name,
    node: nodeName,
    behavior: def.behavior,
    ttlMs: def.ttlMs,
    lockDelayMs: Math.min(Math.max(def.lockDelayMs ?? 15_000, 0), LOCK_DELAY_MAX),
    checks,
  });
  send(call, 200, { ID: session.id });
}

function renew({ kv, node }: DoubleContext, call: Call, id: string): void {
  requirePermission(call, 'session:write', node.name);
  const session = kv.renewSession(id);
  if (!session) throw new HttpError(404, `Session id '${id}' not found`);
  send(call, 200, [sessionJson(session)], kv.sessionIndex);
}

function destroy({ kv, node }: DoubleContext, call: Call, id: string): void {
  requirePermission(call, 'session:write', node.name);
  // Destroying an unknown session succeeds too.
  kv.destroySession(id);
  send(call, 200, true);
}

/** One session (`id`) or all; an unknown one is an empty list, not a 404. */
async function read({ agent, kv }: DoubleContext, call: Call, id: string | undefined): Promise<void> {
  const index = await block(call, agent, () => kv.sessionIndex);
  const sessions = !canRead(call)
    ? []
    : id !== undefined
      ? [kv.sessions.get(id)].filter((s) => s !== undefined)
      : [...kv.sessions.values()];
  send(call, 200, sessions.map(sessionJson), index);
}

export const sessionRoutes: readonly Route[] = [
  { path: '/v1/session/create', methods: ['PUT'], handle: create },
  { path: '/v1/session/renew/*', methods: ['PUT'], handle: renew },
  { path: '/v1/session/destroy/*', methods: ['PUT'], handle: destroy },
  { path: '/v1/session/info/*', methods: ['GET'], handle: read },
  { path: '/v1/session/list', methods: ['GET'], handle: (ctx, call) => read(ctx, call, undefined) },
];
