import type { IncomingMessage, ServerResponse } from 'node:http';
import { identify, tokenOf } from './acl.js';
import type { Call, DoubleContext, RecordedRequest, Route } from './context.js';
import { HttpError, sendError } from './http.js';
import { agentRoutes } from './routes/agent.js';
import { catalogRoutes } from './routes/catalog.js';
import { checkRoutes } from './routes/checks.js';
import { kvRoutes } from './routes/kv.js';
import { sessionRoutes } from './routes/session.js';
import { statusRoutes } from './routes/status.js';

/** Every endpoint, in the order they are tried (an exact path before a prefix that also matches it). */
const routes: readonly Route[] = [
  ...statusRoutes,
  ...agentRoutes,
  ...checkRoutes,
  ...catalogRoutes,
  ...sessionRoutes,
  ...kvRoutes,
];

/** The route's parameter if `path` matches its pattern ('' for an exact path), else undefined. */
function matchPath(pattern: string, path: string): string | undefined {
  if (!pattern.endsWith('*')) return pattern === path ? '' : undefined;
  const prefix = pattern.slice(0, -1);
  return path.startsWith(prefix) && path.length > prefix.length
    ? decodeURIComponent(path.slice(prefix.length))
    : undefined;
}

async function dispatch(ctx: DoubleContext, call: Call): Promise<void> {
  const method = call.req.method ?? 'GET';
  for (const route of routes) {
    const param = matchPath(route.path, call.url.pathname);
    if (param === undefined) continue;
    if (!route.methods.includes(method)) throw new HttpError(405, `method ${method} not allowed`);
    return route.handle(ctx, call, param);
  }
  throw new HttpError(404, '');
}

/** The path as recorded for tests: URI-decoded where it decodes. */
function decodedPath(url: URL): string {
  try {
    return decodeURIComponent(url.pathname);
  } catch {
    // Not valid percent-encoding: record it as sent.
    return url.pathname;
  }
}

/** The HTTP server's request listener: record the request, check its token, answer it or its error. */
export function createHandler(ctx: DoubleContext, record: (request: RecordedRequest) => void) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://double');
    record({ method: req.method ?? 'GET', path: decodedPath(url), query: url.search, at: Date.now() });
    let call: Call;
    try {
      call = { req, res, url, identity: identify(ctx.settings.aclToken, tokenOf(req, url)) };
    } catch (err) {
      sendError(res, err);
      return;
    }
    dispatch(ctx, call).catch((err: unknown) => sendError(res, err));
  };
}
