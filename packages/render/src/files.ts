import { randomBytes } from 'node:crypto';
import { type Stats } from 'node:fs';
import { chmod, chown, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** A file as it is now: its bytes and what a replacement keeps of it (mode, owner). */
export interface CurrentFile {
  readonly bytes: Buffer;
  readonly stats: Stats;
}

/** The file at `path`, or undefined when there is none. */
export async function readCurrent(path: string): Promise<CurrentFile | undefined> {
  try {
    const [bytes, stats] = await Promise.all([readFile(path), stat(path)]);
    return { bytes, stats };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * Replace `path` with `bytes` so that a reader sees the old file or the new one, never a part: a temporary
 * file beside it (same file system) written and synced, then renamed over it. The new file gets `like`'s mode
 * and owner (the file it replaces); returns false when the owner could not be kept (not permitted).
 */
export async function replaceFile(path: string, bytes: Buffer, like?: Stats): Promise<boolean> {
  // A dot file with a suffix of its own: not matched by an `include conf.d/*.conf` while it exists.
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(4).toString('hex')}.tmp`);
  let ownerKept = true;
  try {
    const handle = await open(temp, 'wx', 0o644);
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    if (like) {
      await chmod(temp, like.mode & 0o7777);
      if (like.uid !== process.getuid?.() || like.gid !== process.getgid?.()) {
        ownerKept = await chown(temp, like.uid, like.gid).then(
          () => true,
          (error: NodeJS.ErrnoException) => {
            if (error.code === 'EPERM') return false;
            throw error;
          },
        );
      }
    }
    await rename(temp, path);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw error;
  }
  return ownerKept;
}

/** Put `previous` back at `path` (or remove the file when there was none). */
export async function restoreFile(path: string, previous: CurrentFile | undefined): Promise<void> {
  if (previous) await replaceFile(path, previous.bytes, previous.stats);
  else
    await unlink(path).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
}
