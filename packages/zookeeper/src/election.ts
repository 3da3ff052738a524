/**
 * One writer per node id (Swarm mode: every manager runs a bridge with the same node id), elected with the
 * ZooKeeper ephemeral-sequential recipe in a session of its own:
 *
 *   /registrar-election<base>/<nodeId>             persistent; its data: the leader's entries session
 *   /registrar-election<base>/<nodeId>/n_0000000042 one EPHEMERAL_SEQUENTIAL node per candidate
 *
 * The lowest `n_` leads; every other candidate watches only the one just below it (no herd effect). The
 * entries are ephemeral nodes of ONE session, so leadership moves with that session: the leader publishes
 * its entries session id and password in the election node's data, and a successor resumes that session
 * instead of opening its own, so the entries stay as they are (same owner, same version: nothing rewritten).
 * That works after a SIGKILL only if the dead leader's election node goes before its entries do: hence the
 * election session's timeout is about half the entries session's.
 */
import type { ElectionOptions, Leadership, Logger } from '@registrar/core';
import zookeeper from 'node-zookeeper-client';
import type { ACL, Event, Stat } from 'node-zookeeper-client';
import { BehaviorSubject, distinctUntilChanged, type Observable } from 'rxjs';
import { isCode } from './errors.js';
import { createClient, Session, type DigestAuth } from './session.js';

const E = zookeeper.Exception;
/** ZooKeeper's OPEN_ACL_UNSAFE (absent from the library's types). */
const OPEN = [new zookeeper.ACL(zookeeper.Permission.ALL, new zookeeper.Id('world', 'anyone'))];
const CANDIDATE = /^n_\d{10}$/;
/** How long a failed step of the recipe waits before it is tried again. */
const RETRY_MS = 1000;

/** The entries session as the leader publishes it (hex): whoever reads it can take that session over. */
export interface PublishedSession {
  readonly sessionId: string;
  readonly password: string;
}

/** The election's persistent node for `nodeId` under a (normalised) services base. */
export function electionPath(base: string, nodeId: string): string {
  return `/registrar-election${base}/${nodeId}`;
}

/** What the election needs from the registry whose entries session it hands from leader to leader. */
export interface ElectionHost {
  readonly connectString: string;
  readonly auth: DigestAuth | undefined;
  readonly path: string;
  /**
   * For the election nodes, never world-readable: the election node's data is the entries session's
   * password, and whoever can read it can take the session (and every entry) over.
   */
  readonly acls: ACL[];
  /** The registry's session timeout as requested (the election asks for half of it). */
  readonly requestedTimeoutMs: number;
  readonly operationTimeoutMs: number;
  readonly logger: Logger;
  /** The entries session's timeout: negotiated once connected, else as requested. */
  entriesTimeoutMs(): number;
  /** The entries session's id and password, once the server gave them. */
  credentials(): PublishedSession | undefined;
  /** Elected: resume `published` as the entries session (when given and not ours already). */
  takeOver(published: PublishedSession | undefined): void;
  /**
   * No longer the leader: abandon the entries session at once, without closeSession (it would delete
   * the entries a successor adopts) and without a reconnect (it would take the session back). `reopen`: get
   * a fresh, empty session for a later term.
   */
  fence(reopen: boolean): void;
}

/** One election session with its node, and whether it made us the leader. */
interface Term {
  readonly session: Session;
  node?: string;
  leading: boolean;
  checking: boolean;
  again: boolean;
  retry?: NodeJS.Timeout;
}

export class ZookeeperElection implements Leadership {
  readonly leading$: Observable<boolean>;
  private readonly leading = new BehaviorSubject(false);
  private readonly logger: Logger;
  private term: Term;
  private closed = false;

  constructor(
    private readonly host: ElectionHost,
    private readonly options: ElectionOptions,
  ) {
    this.leading$ = this.leading.pipe(distinctUntilChanged());
    this.logger = host.logger.child({ election: host.path, candidate: options.candidate });
    this.term = this.join();
  }

  private join(): Term {
    // About half the entries' TTL: a dead leader's node goes first, and its successor is elected while
    // the entries session it resumes is still alive. The server may clamp it; see `checkTimeouts`.
    const requested = Math.max(1, Math.round(this.host.requestedTimeoutMs / 2));
    const term: Term = {
      session: new Session({
        client: createClient(this.host.connectString, requested, this.host.auth),
        owned: true,
        requestedTimeoutMs: requested,
        operationTimeoutMs: Math.min(requested, this.host.operationTimeoutMs),
        logger: this.logger,
        onLost: (reason) => this.onLost(term, reason),
        onEstablished: () => void this.enter(term),
        // A watch set before a dropped connection may have fired unseen: look again after every reconnect.
        onConnected: () => void this.check(term),
      }),
      leading: false,
      checking: false,
      again: false,
    };
    return term;
  }

  /** A new election session: create our candidate node, then see where we stand. */
  private async enter(term: Term) {
    try {
      this.checkTimeouts(term.session);
      await this.ensurePath(term.session, this.host.path);
      const data = Buffer.from(JSON.stringify({ candidate: this.options.candidate }));
      const created = await term.session.call<string>('create', (c, cb) =>
        c.create(`${this.host.path}/n_`, data, this.host.acls, zookeeper.CreateMode.EPHEMERAL_SEQUENTIAL, cb),
      );
      term.node = created.slice(created.lastIndexOf('/') + 1);
      this.logger.info({ node: term.node }, 'joined the election');
      await this.check(term);
    } catch (error) {
      // A create whose answer was lost may have left a node we do not know: only a new session is sure to
      // have none (closing this one deletes it; if the close cannot be sent, it expires within its timeout).
      if (term !== this.term || this.closed) return;
      this.logger.warn({ err: error }, 'joining the election failed; trying again with a new session');
      term.retry = setTimeout(() => {
        if (term !== this.term || this.closed) return;
        void term.session.close(true);
        this.term = this.join();
      }, RETRY_MS);
    }
  }

  private checkTimeouts(session: Session) {
    const election = session.timeoutMs;
    const entries = this.host.entriesTimeoutMs();
    if (entries - election < Math.max(1000, entries / 4)) {
      this.logger.warn(
        { electionTimeoutMs: election, entriesTimeoutMs: entries },
        "the election session does not lapse clearly before the entries session (the server clamped a timeout): a killed leader's entries may expire before its successor takes them over; raise --ttl",
      );
    }
  }

  /** Where we stand: lowest → lead; else watch the candidate just below us. One check at a time per term. */
  private async check(term: Term): Promise<void> {
    if (term !== this.term || this.closed || term.node === undefined || term.leading) return;
    if (term.checking) {
      term.again = true;
      return;
    }
    term.checking = true;
    try {
      do {
        term.again = false;
        await this.checkOnce(term);
      } while (term.again && term === this.term && !this.closed && !term.leading);
    } catch (error) {
      if (term !== this.term || this.closed) return;
      // A dropped connection is looked at again on reconnect; anything else after a pause.
      this.logger.debug({ err: error }, 'election check failed; looking again');
      clearTimeout(term.retry);
      term.retry = setTimeout(() => void this.check(term), RETRY_MS);
    } finally {
      term.checking = false;
    }
  }

  private async checkOnce(term: Term) {
    const { session } = term;
    const [children] = await session.call<[string[], Stat]>('getChildren', (c, cb) =>
      c.getChildren(this.host.path, cb),
    );
    // Fixed-width sequence numbers: the lexical order is the order of creation.
    const queue = children.filter((name) => CANDIDATE.test(name)).sort();
    const at = queue.indexOf(term.node!);
    if (at < 0) {
      // Deleted by hand: our session cannot be a candidate any more; start again with a new one.
      this.logger.warn({ node: term.node }, 'our election node is gone; joining again');
      void session.close(true);
      if (term === this.term && !this.closed) this.term = this.join();
      return;
    }
    if (at === 0) return this.elected(term);
    const predecessor = `${this.host.path}/${queue[at - 1]}`;
    const watcher = (event: Event) => {
      this.logger.debug({ event: event.getName(), predecessor }, 'election predecessor changed');
      void this.check(term);
    };
    const stat = await session.call<Stat | null>('exists', (c, cb) => c.exists(predecessor, watcher, cb));
    if (stat === null)
      term.again = true; // gone between the two reads
    else this.logger.debug({ predecessor, position: at }, 'following in the election');
  }

  private async elected(term: Term) {
    const published = await this.readPublished(term.session);
    if (term !== this.term || this.closed) return;
    term.leading = true;
    this.host.takeOver(published);
    this.logger.info(
      { node: term.node, takesOver: published?.sessionId ?? null },
      published
        ? "elected: taking over the previous leader's entries session"
        : 'elected: no entries session published yet, writing with our own',
    );
    this.leading.next(true);
    await this.publish(term);
  }

  private async readPublished(session: Session): Promise<PublishedSession | undefined> {
    const [data] = await session.call<[Buffer | undefined, Stat]>('getData', (c, cb) =>
      c.getData(this.host.path, cb),
    );
    try {
      const doc = JSON.parse(data?.toString('utf8') ?? '') as Partial<PublishedSession>;
      if (
        typeof doc.sessionId === 'string' &&
        /^[0-9a-f]{16}$/.test(doc.sessionId) &&
        typeof doc.password === 'string' &&
        /^[0-9a-f]{32}$/.test(doc.password)
      ) {
        return { sessionId: doc.sessionId, password: doc.password };
      }
    } catch {
      // Nothing published yet (empty data).
    }
    return undefined;
  }

  /** The registry's entries session is (newly) established: publish it if we lead. */
  entriesEstablished(): void {
    void this.publish(this.term);
  }

  /**
   * The leader's entries connection dropped. It may be the server handing the entries session to a
   * successor because our election session expired while we could not tell (a paused process wakes up with
   * both sockets closed, in whatever order): the client is about to reconnect and would take the session
   * back. So look at the election session now, before that reconnect goes out, and fence if it is silent
   * past its timeout.
   */
  entriesDisconnected(): void {
    if (this.term.leading && !this.closed) this.term.session.checkNow();
  }

  /**
   * Write the entries session into the election node, through the election session: while it lives, our
   * node is the lowest and nobody else leads; once it is gone, so is this write's chance (fenced by it).
   */
  private async publish(term: Term): Promise<void> {
    const credentials = this.host.credentials();
    if (!term.leading || term !== this.term || this.closed || !credentials) return;
    const data = Buffer.from(JSON.stringify({ candidate: this.options.candidate, ...credentials }));
    try {
      await term.session.call('setData', (c, cb) => c.setData(this.host.path, data, -1, cb));
      this.logger.debug({ sessionId: credentials.sessionId }, 'published the entries session');
    } catch (error) {
      if (!term.leading || term !== this.term || this.closed) return;
      this.logger.warn({ err: error }, 'publishing the entries session failed; trying again');
      clearTimeout(term.retry);
      term.retry = setTimeout(() => void this.publish(term), RETRY_MS);
    }
  }

  /** The election session is gone (expired, silent too long): fence if we led, then stand again. */
  private onLost(term: Term, reason: string) {
    if (term !== this.term || this.closed) return;
    clearTimeout(term.retry);
    if (term.leading) {
      term.leading = false;
      // Stop writing first, then let go of the entries: a successor may be taking them over right now.
      this.leading.next(false);
      this.host.fence(true);
      this.logger.warn(
        { reason },
        'election session lost while leading: stopped writing and abandoned the entries session to the successor',
      );
    } else {
      this.logger.warn({ reason }, 'election session lost; standing again');
    }
    this.term = this.join();
  }

  private async ensurePath(session: Session, path: string) {
    let current = '';
    for (const segment of path.split('/').slice(1)) {
      current += `/${segment}`;
      const node = current;
      if (await session.call<Stat | null>('exists', (c, cb) => c.exists(node, cb))) continue;
      // Only the election node itself is closed to others (it holds the session password). Its parents are
      // shared by every deployment on this ZooKeeper, with credentials or without: they stay open.
      const acls = node === path ? this.host.acls : OPEN;
      try {
        await session.call('create', (c, cb) => c.create(node, acls, zookeeper.CreateMode.PERSISTENT, cb));
      } catch (error) {
        if (!isCode(error, E.NODE_EXISTS)) throw error;
      }
    }
  }

  /**
   * Resign: a leader abandons its entries session (a successor resumes it: it lives for its timeout) and
   * closes its election session, which deletes its node at once so the next candidate is elected now.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const term = this.term;
    clearTimeout(term.retry);
    if (term.leading) {
      term.leading = false;
      this.leading.next(false);
      this.host.fence(false);
      this.logger.info('resigning: the entries session is left for the successor to take over');
    }
    await term.session.close(true);
    this.leading.complete();
  }
}
