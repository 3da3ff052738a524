import { randomUUID } from 'node:crypto';

/** A session as Consul stores it (durations in milliseconds). */
export interface SessionRecord {
  id: string;
  name: string;
  node: string;
  behavior: 'release' | 'delete';
  /** 0: no TTL. */
  ttlMs: number;
  lockDelayMs: number;
  checks: string[];
  createIndex: number;
  modifyIndex: number;
}

export interface KvEntry {
  key: string;
  value: Buffer;
  flags: number;
  session?: string;
  lockIndex: number;
  createIndex: number;
  modifyIndex: number;
}

export interface KvStoreOptions {
  /** The raft-like index shared with the agent's services and checks. */
  nextIndex(): number;
  /** Wake blocking queries. */
  notify(): void;
  /** The server's session TTL timer is TTL × this (Consul: 2). */
  sessionTtlMultiplier: number;
}

/**
 * Sessions and the KV store of the (single) server: what the agent forwards to the servers, so an agent
 * restart keeps it. Invalidation (destroy, TTL expiry, a listed check turning critical or being deregistered)
 * releases or deletes the session's locks and starts each released key's lock-delay, as Consul's state store
 * does.
 */
export class KvStore {
  readonly sessions = new Map<string, SessionRecord>();
  readonly entries = new Map<string, KvEntry>();
  /** Highest index of any KV write (tombstones included): what a read of a missing key answers. */
  kvIndex = 1;
  sessionIndex = 1;
  /** Key → time until which no session may acquire it (lock-delay after an invalidation). */
  private readonly lockDelays = new Map<string, number>();
  private readonly timers = new Map<string, NodeJS.Timeout>();

  constructor(private readonly options: KvStoreOptions) {}

  createSession(fields: Omit<SessionRecord, 'id' | 'createIndex' | 'modifyIndex'>): SessionRecord {
    const index = this.options.nextIndex();
    const session: SessionRecord = { ...fields, id: randomUUID(), createIndex: index, modifyIndex: index };
    this.sessions.set(session.id, session);
    this.sessionIndex = index;
    this.arm(session);
    this.options.notify();
    return session;
  }

  /** Restarts the TTL timer; undefined when the session is unknown (or already expired). */
  renewSession(id: string): SessionRecord | undefined {
    const session = this.sessions.get(id);
    if (session) this.arm(session);
    return session;
  }

  /** Invalidate: what destroy, TTL expiry and a failed check do alike. */
  destroySession(id: string): boolean {
    const session = this.sessions.get(id);
    if (!session) return false;
    clearTimeout(this.timers.get(id));
    this.timers.delete(id);
    this.sessions.delete(id);
    const index = this.options.nextIndex();
    this.sessionIndex = index;
    const delayUntil = Date.now() + session.lockDelayMs;
    for (const entry of [...this.entries.values()]) {
      if (entry.session !== id) continue;
      if (session.lockDelayMs > 0) this.lockDelays.set(entry.key, delayUntil);
      if (session.behavior === 'delete') {
        this.entries.delete(entry.key);
      } else {
        delete entry.session;
        entry.modifyIndex = index;
      }
      this.kvIndex = index;
    }
    this.options.notify();
    return true;
  }

  /** A check went critical or was deregistered: every session listing it is invalidated at once. */
  invalidateSessionsOf(checkId: string): number {
    const doomed = [...this.sessions.values()].filter((s) => s.checks.includes(checkId));
    for (const session of doomed) this.destroySession(session.id);
    return doomed.length;
  }

  put(key: string, value: Buffer, flags: number, cas?: number): boolean {
    const existing = this.entries.get(key);
    if (cas !== undefined && (cas === 0 ? existing !== undefined : existing?.modifyIndex !== cas))
      return false;
    // A plain write keeps the lock holder (only acquire/release change it).
    this.write(key, value, flags, existing?.session, existing?.lockIndex ?? 0);
    return true;
  }

  /** `?acquire=`: the caller must have checked the session exists. */
  acquire(key: string, value: Buffer, flags: number, sessionId: string): boolean {
    const until = this.lockDelays.get(key);
    if (until !== undefined && until > Date.now()) return false;
    const existing = this.entries.get(key);
    if (existing?.session !== undefined && existing.session !== sessionId) return false;
    // Re-acquiring one's own lock updates the value without counting a new acquisition.
    const lockIndex = (existing?.lockIndex ?? 0) + (existing?.session === sessionId ? 0 : 1);
    this.write(key, value, flags, sessionId, lockIndex);
    return true;
  }

  release(key: string, value: Buffer, flags: number, sessionId: string): boolean {
    const existing = this.entries.get(key);
    if (!existing || existing.session !== sessionId) return false;
    this.write(key, value, flags, undefined, existing.lockIndex);
    return true;
  }

  delete(key: string, recurse: boolean, cas?: number): boolean {
    const doomed = recurse
      ? [...this.entries.keys()].filter((k) => k.startsWith(key))
      : this.entries.has(key)
        ? [key]
        : [];
    if (cas !== undefined && !recurse && this.entries.get(key)?.modifyIndex !== cas) return false;
    if (doomed.length === 0) return true;
    for (const k of doomed) this.entries.delete(k);
    this.kvIndex = this.options.nextIndex();
    this.options.notify();
    return true;
  }

  close(): void {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }

  private write(key: string, value: Buffer, flags: number, session: string | undefined, lockIndex: number) {
    const index = this.options.nextIndex();
    const existing = this.entries.get(key);
    this.entries.set(key, {
      key,
      value,
      flags,
      lockIndex,
      createIndex: existing?.createIndex ?? index,
      modifyIndex: index,
      ...(session !== undefined && { session }),
    });
    this.kvIndex = index;
    this.options.notify();
  }

  private arm(session: SessionRecord): void {
    if (session.ttlMs <= 0) return;
    clearTimeout(this.timers.get(session.id));
    const timer = setTimeout(
      () => this.destroySession(session.id),
      session.ttlMs * this.options.sessionTtlMultiplier,
    );
    timer.unref();
    this.timers.set(session.id, timer);
  }
}
