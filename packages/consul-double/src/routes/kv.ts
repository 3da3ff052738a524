import { requirePermission } from '../acl.js';
import type { Call, DoubleContext, Route } from '../context.js';
import { HttpError, block, readBytes, send } from '../http.js';
import { flag } from '../query.js';
import { kvJson } from '../views.js';

// The KV store's HTTP face: read (blocking, recursive, raw), write (cas, acquire, release), delete.

const KV_VALUE_MAX = 512 * 1024;

/** An unsigned integer parameter (`?cas=`, `?flags=`), undefined when absent. */
function uint(url: URL, name: string): number | undefined {
  const raw = url.searchParams.get(name);
  if (raw === null) return undefined;
  if (!/^\d+$/.test(raw)) throw new HttpError(400, `Invalid ${name} index: ${JSON.stringify(raw)}`);
  return Number(raw);
}

async function get({ agent, kv }: DoubleContext, call: Call, key: string): Promise<void> {
  requirePermission(call, 'key:read', key);
  const recurse = flag(call.url, 'recurse');
  const index = await block(call, agent, () =>
    recurse ? kv.kvIndex : (kv.entries.get(key)?.modifyIndex ?? kv.kvIndex),
  );
  const found = recurse
    ? [...kv.entries.values()].filter((e) => e.key.startsWith(key)).sort((a, b) => (a.key < b.key ? -1 : 1))
    : [kv.entries.get(key)].filter((e) => e !== undefined);
  if (found.length === 0) return send(call, 404, undefined, index);
  if (flag(call.url, 'raw') && !recurse) {
    call.res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'X-Consul-Index': String(index) });
    call.res.end(found[0].value);
    return;
  }
  send(call, 200, found.map(kvJson), index);
}

async function put({ kv }: DoubleContext, call: Call, key: string): Promise<void> {
  const value = await readBytes(call.req);
  requirePermission(call, 'key:write', key);
  if (value.length > KV_VALUE_MAX)
    throw new HttpError(
      413,
      `Request body(${value.length} bytes) too large, max size: ${KV_VALUE_MAX} bytes.`,
    );
  const flags = uint(call.url, 'flags') ?? 0;
  const acquire = call.url.searchParams.get('acquire');
  const release = call.url.searchParams.get('release');
  if (acquire !== null) {
    if (!kv.sessions.has(acquire)) throw new HttpError(500, `invalid session ${JSON.stringify(acquire)}`);
    return send(call, 200, kv.acquire(key, value, flags, acquire));
  }
  if (release !== null) return send(call, 200, kv.release(key, value, flags, release));
  send(call, 200, kv.put(key, value, flags, uint(call.url, 'cas')));
}

function remove({ kv }: DoubleContext, call: Call, key: string): void {
  requirePermission(call, 'key:write', key);
  send(call, 200, kv.delete(key, flag(call.url, 'recurse'), uint(call.url, 'cas')));
}

const byMethod: Readonly<Record<string, Route['handle']>> = { GET: get, PUT: put, DELETE: remove };

export const kvRoutes: readonly Route[] = [
  {
    path: '/v1/kv/*',
    methods: Object.keys(byMethod),
    handle: (ctx, call, key) => byMethod[call.req.method ?? 'GET'](ctx, call, key),
  },
];
