import { canRead } from '../acl.js';
import type { Call, DoubleContext, Route } from '../context.js';
import { HttpError, send } from '../http.js';

// Who the agent is and who leads: a single server that is its own leader.

function self({ node }: DoubleContext, call: Call): void {
  if (!canRead(call))
    throw new HttpError(403, "Permission denied: anonymous token lacks permission 'agent:read'");
  send(call, 200, {
    Config: {
      Datacenter: node.datacenter,
      NodeName: node.name,
      NodeID: node.id,
      Server: true,
      Version: '1.19.0-double',
    },
    Member: { Name: node.name, Addr: node.address, Port: 8301, Status: 1 },
    Meta: {},
    Stats: {},
  });
}

export const statusRoutes: readonly Route[] = [
  {
    path: '/v1/status/leader',
    methods: ['GET'],
    handle: ({ node }, call) => send(call, 200, `${node.address}:8300`),
  },
  {
    path: '/v1/status/peers',
    methods: ['GET'],
    handle: ({ node }, call) => send(call, 200, [`${node.address}:8300`]),
  },
  { path: '/v1/agent/self', methods: ['GET'], handle: self },
];
