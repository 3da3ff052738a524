import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * Small private files that let a restarted bridge resume what it held (a ZooKeeper session, an etcd lease).
 * They are credentials: written atomically with mode 0600, in a directory created 0700.
 */

/** One file per adapter kind and identity (servers, root, node), so bridges sharing a directory never collide. */
export function stateFilePath(dir: string, kind: string, ...identity: string[]): string {
  const key = createHash('sha256').update(identity.join('\n')).digest('hex').slice(0, 16);
  return join(dir, `${kind}-${key}.json`);
}

/** The parsed JSON in `file`, or undefined when it is missing or unreadable (the caller validates the shape). */
export function readStateFile(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as unknown;
  } catch {
    return undefined;
  }
}

export function writeStateFile(file: string, value: unknown): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(value)}\n`, { mode: 0o600 });
  renameSync(tmp, file);
}

export function removeStateFile(file: string): void {
  rmSync(file, { force: true });
}
