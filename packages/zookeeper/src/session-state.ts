import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

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
  let saved: Partial<SavedSession>;
  try {
    saved = JSON.parse(readFileSync(file, 'utf8')) as Partial<SavedSession>;
  } catch {
    return undefined;
  }
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

/** Write atomically with mode 0600 (the directory is created 0700 if missing). */
export function saveSession(file: string, session: SavedSession): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(session)}\n`, { mode: 0o600 });
  renameSync(tmp, file);
}

export function forgetSession(file: string): void {
  rmSync(file, { force: true });
}
