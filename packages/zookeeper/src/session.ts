import type { Logger } from '@registrar/core';
import { ConfigError, RegistryConnectionError, RegistrySessionLostError } from '@registrar/core';
import { createHash } from 'node:crypto';
import zookeeper from 'node-zookeeper-client';
import type { ACL, Client, Exception } from 'node-zookeeper-client';
import { assertResumes, clientInternals, resumeOptions, type ClientInternals } from './client-internals.js';
import { ZkCodeError } from './errors.js';

const BACKEND = 'zookeeper';

/** ZooKeeper digest credentials, as the registry and the follower take them. */
export interface DigestAuth {
  readonly scheme: 'digest';
  readonly credentials: string;
}

/** Throws unless `auth` is `user:password` (never echoing it: it is a secret). */
export function checkDigest(auth: DigestAuth | undefined): void {
  if (auth && !/^[^:]+:.+$/s.test(auth.credentials)) {
    throw new ConfigError('zookeeper digest credentials must look like user:password');
  }
}

/** The ACLs of the nodes we create: all permissions for `auth`'s user (or anyone without), `worldReadable` adds read for anyone. */
export function digestAcls(auth: DigestAuth | undefined, worldReadable: boolean): ACL[] {
  const { ACL, Id, Permission } = zookeeper;
  if (!auth) return [new ACL(Permission.ALL, new Id('world', 'anyone'))];
  const user = auth.credentials.slice(0, auth.credentials.indexOf(':'));
  const hash = createHash('sha1').update(auth.credentials).digest('base64');
  const acls = [new ACL(Permission.ALL, new Id('digest', `${user}:${hash}`))];
  if (worldReadable) acls.push(new ACL(Permission.READ, new Id('world', 'anyone')));
  return acls;
}

/**
 * A client of our own for `connectString`: our reconnect pacing (the Session watchdog decides when a
 * connection is dead, so the client itself never gives up), the credentials sent on every connection, and
 * optionally a saved session to resume.
 */
export function createClient(
  connectString: string,
  sessionTimeoutMs: number,
  auth: DigestAuth | undefined,
  resume?: { readonly sessionId: Buffer; readonly sessionPassword: Buffer },
): Client {
  const client = zookeeper.createClient(connectString, {
    sessionTimeout: sessionTimeoutMs,
    spinDelay: 200,
    retries: 0,
    ...resumeOptions(resume),
  });
  clientInternals(client);
  if (resume) assertResumes(client, resume);
  if (auth) client.addAuthInfo(auth.scheme, Buffer.from(auth.credentials));
  return client;
}

type Callback = (error: Error | Exception | null, ...results: unknown[]) => void;

export type SessionState = 'connecting' | 'connected' | 'disconnected' | 'lost' | 'closed';

export interface SessionOptions {
  readonly client: Client;
  /** Whether we opened this client (then we connect and close it). */
  readonly owned: boolean;
  readonly requestedTimeoutMs: number;
  /** Bound on every operation and on waiting for a first connection. */
  readonly operationTimeoutMs: number;
  /** The servers (`host:port,...`), for messages: a connection that never comes names where it was sought. */
  readonly servers?: string;
  readonly logger: Logger;
  /** Called once when the session is gone for good (expired, silent too long, auth failed). */
  readonly onLost: (reason: string) => void;
  /** Called when the server first gives this session its id (and password). */
  readonly onEstablished?: (sessionId: string, password: Buffer) => void;
  /** Called whenever operations can be sent again: once established, and after every reconnect. */
  readonly onConnected?: () => void;
  /** Called when the connection drops while the session may still live (the client reconnects by itself). */
  readonly onDisconnected?: () => void;
  /**
   * Called once per outage when the heartbeat fails while the session may still live: the connection
   * dropped, or the server went silent and we dropped it. Followed by `onRecovered` or by `onLost`.
   */
  readonly onHeartbeatFailed?: (error: RegistryConnectionError) => void;
  /** Called when the session is connected again after `onHeartbeatFailed`. */
  readonly onRecovered?: () => void;
}

/**
 * One ZooKeeper session and its liveness bookkeeping. node-zookeeper-client has no read timeout (a paused or
 * partitioned server is never noticed) and only reports `expired` after reconnecting, so we heartbeat
 * ourselves: no answer for 2/3 of the session timeout → drop the socket and reconnect (the Java client's
 * rule); no answer for the whole session timeout → the server has expired us, declare the session lost.
 */
export class Session {
  state: SessionState = 'connecting';
  /** Hex session id once connected; ephemeral nodes carry it as `ephemeralOwner`. */
  sessionId = '';
  private lastHeard = 0;
  private lastKick = Date.now();
  private heartbeatInFlight = false;
  /** Between `onHeartbeatFailed` and `onRecovered` (or the loss): one report per outage. */
  private failing = false;
  private lastHeartbeat = 0;
  private readonly watchdog: NodeJS.Timeout;
  private readonly waiters = new Set<() => void>();
  readonly client: Client;
  private readonly internals: ClientInternals;
  private readonly listeners: [string, () => void][];

  constructor(private readonly options: SessionOptions) {
    this.client = options.client;
    // Before anything else: a client whose internals moved must fail here, not misbehave later.
    this.internals = clientInternals(options.client);
    this.listeners = [
      ['connected', () => this.onConnected()],
      ['connectedReadOnly', () => this.onDisconnected()],
      ['disconnected', () => this.onDisconnected()],
      ['expired', () => this.lose('session expired')],
      ['authenticationFailed', () => this.lose('authentication failed')],
    ];
    for (const [event, listener] of this.listeners) this.client.on(event, listener);
    this.watchdog = setInterval(() => this.tick(), Math.max(50, Math.floor(this.timeoutMs / 6)));
    this.watchdog.unref();
    if (this.client.getState() === zookeeper.State.SYNC_CONNECTED) this.onConnected();
    else if (options.owned || this.internals.isIdle()) this.client.connect();
  }

  /** The negotiated timeout once connected, the requested one before. */
  get timeoutMs(): number {
    return this.sessionId ? this.client.getSessionTimeout() : this.options.requestedTimeoutMs;
  }

  private onConnected() {
    if (this.state === 'lost' || this.state === 'closed') return;
    const id = this.client.getSessionId().toString('hex');
    if (this.sessionId && id !== this.sessionId) {
      // Cannot happen with this client (it never renews a session by itself), but a new id means new nodes.
      this.lose('session replaced');
      return;
    }
    const first = !this.sessionId;
    this.sessionId = id;
    this.state = 'connected';
    this.lastHeard = Date.now();
    if (first) {
      this.options.logger.info(
        { sessionId: id, requestedMs: this.options.requestedTimeoutMs, negotiatedMs: this.timeoutMs },
        'zookeeper session established',
      );
      this.options.onEstablished?.(id, this.client.getSessionPassword());
    } else {
      this.options.logger.info({ sessionId: id }, 'zookeeper reconnected, session kept');
    }
    if (this.failing) {
      this.failing = false;
      this.options.onRecovered?.();
    }
    for (const wake of this.waiters) wake();
    this.options.onConnected?.();
  }

  private onDisconnected() {
    if (this.state !== 'connected') return;
    this.state = 'disconnected';
    this.lastKick = Date.now();
    this.options.logger.warn({ sessionId: this.sessionId }, 'zookeeper disconnected, reconnecting');
    this.heartbeatFailed('disconnected from ZooKeeper, reconnecting');
    this.options.onDisconnected?.();
  }

  private heartbeatFailed(message: string) {
    if (this.failing || this.state === 'lost' || this.state === 'closed') return;
    this.failing = true;
    this.options.onHeartbeatFailed?.(new RegistryConnectionError(message, BACKEND));
  }

  private tick() {
    const now = Date.now();
    const timeout = this.timeoutMs;
    if (this.state === 'connected' || this.state === 'disconnected') {
      const silent = now - this.lastHeard;
      if (silent > timeout) {
        this.lose(`no answer from ZooKeeper for ${silent} ms (session timeout ${timeout} ms)`);
        return;
      }
      if (this.state === 'connected') {
        if (silent > (timeout * 2) / 3) {
          this.options.logger.warn({ silentMs: silent }, 'zookeeper server silent, reconnecting');
          this.heartbeatFailed(`no answer from ZooKeeper for ${silent} ms, reconnecting`);
          this.kick();
        } else if (!this.heartbeatInFlight && now - this.lastHeartbeat >= timeout / 3) {
          this.heartbeat();
        }
        return;
      }
    }
    // Connecting: the client times out only the TCP connect, not a server that accepts and never answers.
    if (
      this.state !== 'lost' &&
      this.state !== 'closed' &&
      now - this.lastKick > Math.max(1000, timeout / 2)
    ) {
      if (this.internals.isConnecting()) this.kick();
      this.lastKick = now;
    }
  }

  /**
   * Run the watchdog's check now rather than at its next tick: a session silent past its timeout is declared
   * lost at once (`onLost` runs before this returns).
   */
  checkNow(): void {
    this.tick();
  }

  /** O(1) per interval whatever the number of nodes. */
  private heartbeat() {
    this.heartbeatInFlight = true;
    this.lastHeartbeat = Date.now();
    this.client.exists('/', (error) => {
      this.heartbeatInFlight = false;
      if (!error || (error as Exception).getCode?.() !== zookeeper.Exception.CONNECTION_LOSS) {
        this.lastHeard = Date.now();
      }
    });
  }

  /** Drop the socket; the client then reconnects (to the next server) with the same session. */
  private kick() {
    this.lastKick = Date.now();
    this.internals.dropSocket();
  }

  private lose(reason: string) {
    if (this.state === 'lost' || this.state === 'closed') return;
    this.state = 'lost';
    this.failing = false;
    this.stop();
    // Abandon the old session for good: if it still lives on the server it expires on its own, and it must
    // never come back to life behind the new one.
    if (this.options.owned) closeClient(this.client, false);
    this.options.onLost(reason);
  }

  /** For an injected client whose session is gone and which we cannot replace. */
  markLost() {
    this.state = 'lost';
    this.stop();
  }

  private stop() {
    clearInterval(this.watchdog);
    for (const [event, listener] of this.listeners) this.client.removeListener(event, listener);
    for (const wake of this.waiters) wake();
  }

  /**
   * Resolve when operations can be sent. Rejects at once while disconnected (the caller retries later rather
   * than queueing behind a dead socket) and after `operationTimeoutMs` while a new session is being opened.
   */
  async ready(): Promise<void> {
    if (this.state === 'connecting') {
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, this.options.operationTimeoutMs);
        this.waiters.add(wake);
      });
    }
    switch (this.state) {
      case 'connected':
        return;
      case 'connecting':
        throw new RegistryConnectionError(
          this.options.servers === undefined
            ? `no ZooKeeper session within ${this.options.operationTimeoutMs} ms`
            : `no ZooKeeper session with ${this.options.servers} within ${this.options.operationTimeoutMs} ms: is ZooKeeper running there and answering on that client port?`,
          BACKEND,
        );
      case 'disconnected':
        throw new RegistryConnectionError('disconnected from ZooKeeper, reconnecting', BACKEND);
      case 'lost':
        throw new RegistrySessionLostError('ZooKeeper session lost', BACKEND);
      case 'closed':
        throw new RegistryConnectionError('ZooKeeper registry is closed', BACKEND);
    }
  }

  /** Run one client call, bounded by the operation timeout; native error codes become `ZkCodeError`. */
  async call<T>(what: string, invoke: (client: Client, callback: Callback) => void): Promise<T> {
    await this.ready();
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new RegistryConnectionError(
              `${what}: no answer within ${this.options.operationTimeoutMs} ms`,
              BACKEND,
            ),
          ),
        this.options.operationTimeoutMs,
      );
      invoke(this.client, (error: Error | Exception | null, ...results: unknown[]) => {
        clearTimeout(timer);
        if (error) {
          const code = (error as Exception).getCode?.();
          if (typeof code === 'number') {
            if (code !== zookeeper.Exception.CONNECTION_LOSS) this.lastHeard = Date.now();
            reject(new ZkCodeError(code, error.toString()));
          } else reject(error instanceof Error ? error : new Error(String(error)));
          return;
        }
        this.lastHeard = Date.now();
        resolve((results.length > 1 ? results : results[0]) as T);
      });
    });
  }

  /**
   * `graceful`: send closeSession (the server deletes our ephemerals at once) and wait briefly for the answer.
   * Otherwise abandon: drop the socket without closeSession so the server keeps the nodes until the session
   * times out.
   */
  async close(graceful: boolean): Promise<void> {
    if (this.state === 'closed') return;
    const wasConnected = this.state === 'connected';
    this.state = 'closed';
    this.stop();
    if (!this.options.owned) return;
    if (graceful && wasConnected) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(2000, this.options.operationTimeoutMs));
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.client.once('disconnected', done);
        this.client.close();
      });
      this.internals.dropSocket();
      return;
    }
    closeClient(this.client, false);
  }
}

/** Stop a client for good without waiting: closeSession only if `graceful`, never a reconnect. */
export function closeClient(client: Client, graceful: boolean) {
  const internals = clientInternals(client);
  if (graceful) {
    client.close();
    internals.dropSocket();
  } else {
    internals.abandon();
  }
}
