import type { IncomingMessage } from 'node:http';
import type { CheckRecord } from './agent.js';
import type { Call, Identity } from './context.js';
import { HttpError } from './http.js';

/** The request's token, where Consul looks: `X-Consul-Token`, then `?token=`, then `Authorization: Bearer`. */
export function tokenOf(req: IncomingMessage, url: URL): string {
  const bearer = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1];
  const header = req.headers['x-consul-token'];
  return (typeof header === 'string' ? header : undefined) || url.searchParams.get('token') || bearer || '';
}

/**
 * Who the token is, under the only (management) token `aclToken` when ACLs are on. An unknown token is rejected
 * outright (403 `ACL not found`), before anything else is looked at.
 */
export function identify(aclToken: string | undefined, token: string): Identity {
  if (aclToken === undefined) return 'open';
  if (token === '') return 'anonymous';
  if (token !== aclToken) throw new HttpError(403, 'ACL not found');
  return 'management';
}

/** Default-deny ACLs: the anonymous token may write nothing. */
export function requirePermission(call: Call, permission: string, on: string): void {
  if (call.identity === 'anonymous') {
    throw new HttpError(
      403,
      `Permission denied: anonymous token lacks permission '${permission}' on ${JSON.stringify(on)}. The anonymous token is used implicitly when a request does not specify a token.`,
    );
  }
}

/** Writing a check needs `service:write` on its service, or `node:write` on the node for a node check. */
export function requireCheckWrite(
  call: Call,
  check: Pick<CheckRecord, 'serviceId' | 'serviceName'>,
  nodeName: string,
): void {
  if (check.serviceId) requirePermission(call, 'service:write', check.serviceName);
  else requirePermission(call, 'node:write', nodeName);
}

/** Default-deny ACLs filter reads down to nothing for the anonymous token. */
export function canRead(call: Call): boolean {
  return call.identity !== 'anonymous';
}
