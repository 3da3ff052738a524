/**
 * Everything we use of node-zookeeper-client beyond its public API, in one place. The client has no read
 * timeout and no way to drop a connection or to abandon a session without sending closeSession, so the
 * Session watchdog reaches into its connection manager. Those internals are checked once per client
 * (`clientInternals`): a library update that moves them fails at start-up with one clear error instead of
 * misbehaving later (a watchdog that never fires, a close that deletes nodes it should have kept).
 */
import { createRequire } from 'node:module';
import type { Client, Transaction } from 'node-zookeeper-client';

/** The installed node-zookeeper-client's version, named when its internals are not what we expect. */
export const CLIENT_VERSION: string = installedVersion();

function installedVersion(): string {
  try {
    const manifest = createRequire(import.meta.url)('node-zookeeper-client/package.json') as {
      version?: unknown;
    };
    return typeof manifest.version === 'string' ? manifest.version : 'of unknown version';
  } catch {
    return 'of unknown version';
  }
}

/** The internals of node-zookeeper-client changed (or the object is not one of its clients). */
export class ZookeeperClientInternalsError extends Error {
  override readonly name = 'ZookeeperClientInternalsError';
}

/** The connection manager states we act on (names as in its `ConnectionManager.STATES`). */
const STATE_NAMES = ['DISCONNECTED', 'CONNECTING', 'CLOSING', 'CLOSED'] as const;
type StateName = (typeof STATE_NAMES)[number];

/** The fields of `client.connectionManager` we read or call. */
interface ConnectionManager {
  state: number;
  socket?: { destroy(): void };
  setState(state: number): void;
  /** Starts a (re)connect: picks a server, after a spin delay when all were tried, then opens a socket. */
  connect(): void;
  /** Sends the ConnectRequest (with our session id and password) once a socket is open. */
  onSocketConnected(): void;
  /** Reads the replies out of a socket's bytes; a reply cut by the socket's end waits in `pendingBuffer`. */
  onSocketData: (this: ConnectionManager, buffer: Buffer) => void;
  onSocketClosed: (this: ConnectionManager, hadError: boolean) => void;
  pendingBuffer: Buffer | null;
}

/** What the Session and `closeClient` may do to a client beyond its public API. */
export interface ClientInternals {
  /** Never asked to connect (an injected client the caller has not connected yet). */
  isIdle(): boolean;
  /** Opening a TCP connection or waiting for the server's session answer. */
  isConnecting(): boolean;
  /** Drop the socket: the client reconnects (to the next server) with the same session. */
  dropSocket(): void;
  /**
   * Stop for good without closeSession: the server keeps our ephemerals until the session times out, and no
   * ConnectRequest with our session id is ever sent again (one would take the session back from whoever
   * took it over since: the election's successor).
   */
  abandon(): void;
  /** Stopped for good (after `abandon`, or a close): no socket and no reconnect to come. */
  isStopped(): boolean;
}

const checked = new WeakMap<object, ClientInternals>();

/**
 * The internals of `client`, checked to be what this adapter was written against; throws
 * `ZookeeperClientInternalsError` naming the library version otherwise.
 */
export function clientInternals(client: Client): ClientInternals {
  const known = checked.get(client);
  if (known) return known;
  const manager = (client as unknown as { connectionManager?: unknown }).connectionManager;
  if (typeof manager !== 'object' || manager === null) fail('client.connectionManager is missing');
  const cm = manager as Partial<ConnectionManager> & { constructor?: { STATES?: unknown } };
  if (typeof cm.state !== 'number') fail('connectionManager.state is not a number');
  if (typeof cm.setState !== 'function') fail('connectionManager.setState() is missing');
  if (typeof cm.connect !== 'function') fail('connectionManager.connect() is missing');
  if (typeof cm.onSocketConnected !== 'function') fail('connectionManager.onSocketConnected() is missing');
  if (typeof cm.onSocketData !== 'function') fail('connectionManager.onSocketData() is missing');
  if (typeof cm.onSocketClosed !== 'function') fail('connectionManager.onSocketClosed() is missing');
  if (cm.socket !== undefined && typeof cm.socket?.destroy !== 'function') {
    fail('connectionManager.socket is not a socket');
  }
  const table = cm.constructor?.STATES as Partial<Record<StateName, unknown>> | undefined;
  const states = {} as Record<StateName, number>;
  for (const name of STATE_NAMES) {
    const value = table?.[name];
    if (typeof value !== 'number') fail(`ConnectionManager.STATES.${name} is not a number`);
    states[name] = value;
  }
  if (new Set(Object.values(states)).size !== STATE_NAMES.length) {
    fail(`ConnectionManager.STATES ${STATE_NAMES.join(', ')} are not distinct`);
  }
  const m = cm as ConnectionManager;
  guardReplies(m);
  const internals: ClientInternals = {
    isIdle: () => m.state === states.DISCONNECTED,
    isConnecting: () => m.state === states.CONNECTING,
    dropSocket: () => m.socket?.destroy(),
    isStopped: () => m.state === states.CLOSED,
    abandon: () => {
      // A reconnect may already be on its way: the client picks the next server in a timer (the spin delay)
      // and then opens a socket without looking at its state again. So never start another one, and close
      // any socket that still opens before it says who we are.
      m.connect = () => m.setState(states.CLOSED);
      m.onSocketConnected = function (this: ConnectionManager) {
        this.socket?.destroy();
      };
      // CLOSING makes the socket's close final (no retry) and keeps closeSession unsent.
      m.setState(states.CLOSING);
      m.socket?.destroy();
    },
  };
  checked.set(client, internals);
  return internals;
}

/**
 * The client keeps a reply cut by a socket's end (`pendingBuffer`) across sockets: the next socket's bytes
 * would be read as its tail, every reply after misframed, and the first error code it does not know thrown
 * from its socket's data handler, where nothing catches it (the process dies). A server, or a proxy in front
 * of it, may also send bytes the client cannot read. So the buffer goes with its socket, and a reply the
 * client cannot read drops the connection (the client reconnects with the same session) instead.
 */
function guardReplies(m: ConnectionManager): void {
  const onData = m.onSocketData;
  const onClosed = m.onSocketClosed;
  m.onSocketData = function (this: ConnectionManager, buffer: Buffer) {
    try {
      onData.call(this, buffer);
    } catch {
      this.pendingBuffer = null;
      this.socket?.destroy();
    }
  };
  m.onSocketClosed = function (this: ConnectionManager, hadError: boolean) {
    this.pendingBuffer = null;
    onClosed.call(this, hadError);
  };
}

/** A saved session to take over, as the client's (untyped, undocumented) `sessionId` options. */
export interface Resume {
  readonly sessionId: Buffer;
  readonly sessionPassword: Buffer;
}

/** The options that make `zookeeper.createClient` resume `resume` instead of opening a new session. */
export function resumeOptions(resume: Resume | undefined): object {
  return resume ? { sessionId: resume.sessionId, sessionPassword: resume.sessionPassword } : {};
}

/** Throws unless a client created with `resumeOptions(resume)` took the session over. */
export function assertResumes(client: Client, resume: Resume): void {
  if (!client.getSessionId().equals(resume.sessionId)) {
    fail('createClient() ignored the sessionId option (a saved session cannot be resumed)');
  }
}

function fail(what: string): never {
  throw new ZookeeperClientInternalsError(
    `node-zookeeper-client ${CLIENT_VERSION} is not what @registrar/zookeeper was written against (${what}); install the exact version @registrar/zookeeper pins in its dependencies`,
  );
}

/** One op of a `multi` as the client queues it (`Transaction.ops`). */
interface QueuedOp {
  readonly type: number;
  readonly path: string;
  version?: number;
}

/**
 * `multi.remove(path, version)` with the version as given: the client turns a version of 0 (a node written
 * once, as every node we create is) into -1, any version, so the delete would no longer be conditional.
 */
export function removeVersioned(multi: Transaction, path: string, version: number): void {
  multi.remove(path, version);
  const ops = (multi as unknown as { ops?: unknown }).ops;
  const op = Array.isArray(ops) ? (ops.at(-1) as Partial<QueuedOp> | undefined) : undefined;
  if (op?.path !== path || !('version' in op)) fail('Transaction.ops does not hold the queued remove');
  op.version = version;
}
