/**
 * The registry's liveness: the one ZooKeeper session its ephemeral nodes live on. A lost session is replaced
 * at once and reported on `lost$` (every node must be created again); a session saved in the state file, or
 * published by the previous election leader, is resumed so that its nodes are kept.
 */
import type { LivenessLoss, Logger, RegistryEvent } from '@registrar/core';
import { readStateFile, removeStateFile, writeStateFile } from '@registrar/core/kit';
import type { Client } from 'node-zookeeper-client';
import { Subject } from 'rxjs';
import type { PublishedSession } from './election.js';
import { createClient, Session, type DigestAuth } from './session.js';

/** What a restarted bridge needs to resume its ZooKeeper session: the id and the password the server gave. */
export interface SavedSession {
  readonly connectString: string;
  /** Hex, 8 bytes. */
  readonly sessionId: string;
  /** Hex, 16 bytes: whoever holds it can take the session over, hence a 0600 file. */
  readonly password: string;
}

/**
 * The session saved in `file` for this `connectString`; undefined when there is none, it is unreadable, or
 * it belongs to other servers (a state file never makes a session appear on an ensemble that did not issue
 * it).
 */
export function loadSession(file: string, connectString: string): SavedSession | undefined {
  const saved = (readStateFile(file) ?? {}) as Partial<SavedSession>;
  const { sessionId, password } = saved;
  if (
    saved.connectString !== connectString ||
    typeof sessionId !== 'string' ||
    !/^[0-9a-f]{16}$/.test(sessionId) ||
    typeof password !== 'string' ||
    !/^[0-9a-f]{32}$/.test(password)
  ) {
    return undefined;
  }
  return { connectString, sessionId, password };
}

export interface EntriesSessionOptions {
  /** As the registry's `client` option: injected (never replaced, never closed) or a factory. */
  readonly client?: Client | (() => Client);
  readonly connectString?: string;
  readonly auth?: DigestAuth;
  readonly stateFile?: string;
  readonly requestedTimeoutMs: number;
  readonly operationTimeoutMs: number;
  readonly logger: Logger;
  /** The session is let go of (lost, or abandoned for another): what it wrote is no longer ours to skip reads on. */
  readonly forget: (lost: boolean) => void;
}

/** What an election is told of the entries session (see `ZookeeperElection`). */
interface ElectionHooks {
  entriesEstablished(): void;
  entriesDisconnected(): void;
}

/** The session the registry's entries live on, replaced when lost, resumed across restarts and leaders. */
export class EntriesSession {
  readonly lost$ = new Subject<LivenessLoss>();
  /** `heartbeat-failed` once per outage, then `recovered` or `liveness-lost`. */
  readonly events$ = new Subject<RegistryEvent>();
  /** The current session. */
  session: Session;
  /** The first session came from the state file (it may hold entries the election's leader owns now). */
  readonly fromStateFile: boolean = false;
  /** The saved session id the current client tries to resume, until it is established, and whose it was. */
  private resuming: { readonly sessionId: string; readonly from: 'state file' | 'leader' } | undefined;
  /** The current session's id and password, once the server gave them (the election publishes them). */
  private established: { readonly client: Client; readonly credentials: PublishedSession } | undefined;
  private election: ElectionHooks | undefined;
  private closed = false;

  constructor(private readonly options: EntriesSessionOptions) {
    this.session = this.open(true);
    if (this.resuming?.from === 'state file') this.fromStateFile = true;
  }

  /** `takeOver`: resume this session (the previous election leader's) instead of opening a new one. */
  private open(first: boolean, takeOver?: PublishedSession): Session {
    const { client, connectString, auth, stateFile, requestedTimeoutMs, operationTimeoutMs, logger } =
      this.options;
    let instance: Client;
    let owned: boolean;
    if (typeof client === 'function') {
      instance = client();
      owned = true;
      if (auth) instance.addAuthInfo(auth.scheme, Buffer.from(auth.credentials));
    } else if (client && first) {
      instance = client;
      owned = false;
      if (auth) instance.addAuthInfo(auth.scheme, Buffer.from(auth.credentials));
    } else if (connectString) {
      // Only the first session may resume a saved one: after a loss the saved one is gone too.
      const saved = takeOver ?? (first && stateFile ? loadSession(stateFile, connectString) : undefined);
      this.resuming = saved && { sessionId: saved.sessionId, from: takeOver ? 'leader' : 'state file' };
      instance = createClient(
        connectString,
        requestedTimeoutMs,
        auth,
        saved && {
          sessionId: Buffer.from(saved.sessionId, 'hex'),
          sessionPassword: Buffer.from(saved.password, 'hex'),
        },
      );
      owned = true;
    } else {
      // An injected client whose session is gone cannot be replaced by us.
      const dead = new Session({
        client: client!,
        owned: false,
        requestedTimeoutMs,
        operationTimeoutMs,
        logger,
        onLost: () => undefined,
      });
      dead.markLost();
      return dead;
    }
    return new Session({
      client: instance,
      owned,
      requestedTimeoutMs,
      operationTimeoutMs,
      ...(connectString !== undefined && { servers: connectString }),
      logger,
      onLost: (reason) => this.onLost(reason),
      onHeartbeatFailed: (error) => {
        if (!this.closed) this.events$.next({ type: 'heartbeat-failed', error });
      },
      onRecovered: () => {
        if (!this.closed) this.events$.next({ type: 'recovered' });
      },
      onEstablished: (sessionId, password) => this.onEstablished(instance, sessionId, password),
      onDisconnected: () => {
        if (instance === this.session.client) this.election?.entriesDisconnected();
      },
    });
  }

  /** Remember the session (with `stateFile`), and say whether it is the one a previous process left. */
  private onEstablished(client: Client, sessionId: string, password: Buffer) {
    const { stateFile, connectString, logger } = this.options;
    if (this.resuming !== undefined && client === this.session?.client) {
      if (sessionId === this.resuming.sessionId) {
        logger.info(
          { sessionId },
          this.resuming.from === 'leader'
            ? 'zookeeper session taken over from the previous leader: nodes kept as they are'
            : 'zookeeper session resumed from the state file: nodes kept as they are',
        );
      }
      this.resuming = undefined;
    }
    if (client !== this.session?.client) return;
    this.established = { client, credentials: { sessionId, password: password.toString('hex') } };
    this.election?.entriesEstablished();
    // In an election the leader's session is published in ZooKeeper itself; a state file would only let a
    // restarted process take back a session its successor holds now.
    if (!stateFile || !connectString || this.election) return;
    try {
      writeStateFile(stateFile, { connectString, sessionId, password: password.toString('hex') });
    } catch (error) {
      logger.warn(
        { err: error, stateFile },
        'cannot write the zookeeper state file; a restart will re-create every node',
      );
    }
  }

  private onLost(reason: string) {
    if (this.closed) return;
    this.options.logger.warn(
      { reason },
      'zookeeper session lost; opening a new one, every entry must be re-created',
    );
    this.options.forget(true);
    this.session = this.open(false);
    this.events$.next({ type: 'liveness-lost', reason });
    this.lost$.next({ reason });
  }

  /** An election joined: it is told of the session, which it publishes instead of the state file. */
  electing(election: ElectionHooks): void {
    this.election = election;
  }

  /** The current session's id and password, once established (what a successor needs to take it over). */
  credentials(): PublishedSession | undefined {
    return this.established?.client === this.session.client ? this.established.credentials : undefined;
  }

  /**
   * Let go of the current session without closeSession and without a reconnect: its nodes stay for
   * whoever resumes it. Then open a fresh one (`reopen`), resume `takeOver`, or keep none (closing).
   */
  abandon(reopen: boolean, takeOver?: PublishedSession): void {
    const previous = this.session;
    this.options.forget(false);
    this.established = undefined;
    void previous.close(false);
    if (this.closed || (!reopen && !takeOver)) return;
    this.session = this.open(false, takeOver);
  }

  /** No event, loss or new session from now on; `close` then ends the session itself. */
  stop(): void {
    this.closed = true;
  }

  /**
   * `graceful` closes the session (the server deletes its nodes) and forgets the state file; otherwise it is
   * abandoned, its nodes outliving us by the session timeout.
   */
  async close(graceful: boolean): Promise<void> {
    this.closed = true;
    await this.session.close(graceful);
    // Closed for good: nothing is left to resume.
    if (graceful && this.options.stateFile) removeStateFile(this.options.stateFile);
    this.lost$.complete();
    this.events$.complete();
  }
}
