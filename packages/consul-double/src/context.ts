import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AgentState } from './agent.js';
import type { KvStore } from './kv.js';

/** Who this agent is: the one node it reports in every view. */
export interface NodeIdentity {
  readonly id: string;
  readonly name: string;
  readonly datacenter: string;
  /** The listen address, as given (also the node's tagged addresses). */
  readonly host: string;
  /** Where the node is reached: the listen address, or loopback for a wildcard one. */
  readonly address: string;
}

/** The options the routes read, defaults applied. */
export interface Settings {
  /** When set, ACLs are on and this is the management token (`setAclToken` changes it). */
  aclToken: string | undefined;
  readonly enableScriptChecks: boolean;
  readonly sessionTtlMinMs: number;
}

/** Everything a route works on: handed to each one instead of closing over it. */
export interface DoubleContext {
  readonly agent: AgentState;
  /** Server-side state (sessions, KV): survives agent restarts, with or without `loseState`. */
  readonly kv: KvStore;
  readonly node: NodeIdentity;
  readonly settings: Settings;
}

/** `management`, `anonymous` (ACLs on, no token) or `open` (ACLs off). */
export type Identity = 'management' | 'anonymous' | 'open';

/** One request being answered. */
export interface Call {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly url: URL;
  readonly identity: Identity;
}

/**
 * One endpoint. `path` is exact, or ends in `*` to match any non-empty rest, which the handler gets URI-decoded
 * as `param`. The first route whose path matches answers; a method not in `methods` gets 405.
 */
export interface Route {
  readonly path: string;
  readonly methods: readonly string[];
  readonly handle: (ctx: DoubleContext, call: Call, param: string) => void | Promise<void>;
}

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly query: string;
  readonly at: number;
}
