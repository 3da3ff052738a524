import { readStateFile } from '@registrar/core/kit';

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
