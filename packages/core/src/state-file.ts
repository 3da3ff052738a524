import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  fstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * Small private files that let a restarted bridge resume what it held (a ZooKeeper session, an etcd lease).
 * They are credentials: written atomically with mode 0600, in a directory created 0700, through an
 * unguessable temporary name opened exclusively, never following a symbolic link; read only when they are a
 * regular file of this user's that nobody else can read.
 */

/** One file per adapter kind and identity (servers, root, node), so bridges sharing a directory never collide. */
export function stateFilePath(dir: string, kind: string, ...identity: string[]): string {
  const key = createHash('sha256').update(identity.join('\n')).digest('hex').slice(0, 16);
  return join(dir, `${kind}-${key}.json`);
}

/**
 * The parsed JSON in `file`, or undefined when it is missing, unreadable, a symbolic link, not this user's or
 * open to others (the caller validates the shape).
 */
export function readStateFile(file: string): unknown {
  let fd: number | undefined;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW);
    const stat = fstatSync(fd);
    const uid = process.getuid?.();
    if (!stat.isFile() || (uid !== undefined && stat.uid !== uid) || (stat.mode & 0o077) !== 0)
      return undefined;
    return JSON.parse(readFileSync(fd, 'utf8')) as unknown;
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

export function writeStateFile(file: string, value: unknown): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${randomBytes(8).toString('hex')}.tmp`;
  const fd = openSync(
    tmp,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    0o600,
  );
  try {
    writeFileSync(fd, `${JSON.stringify(value)}\n`);
  } finally {
    closeSync(fd);
  }
  // rename replaces whatever is at `file` (a link included) instead of writing through it.
  renameSync(tmp, file);
}

export function removeStateFile(file: string): void {
  rmSync(file, { force: true });
}
