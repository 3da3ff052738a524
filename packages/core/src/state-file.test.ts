import {
  chmodSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readStateFile, stateFilePath, writeStateFile } from './state-file.js';

const dirs: string[] = [];
const dir = () => {
  const made = mkdtempSync(join(tmpdir(), 'state-file-'));
  dirs.push(made);
  return made;
};
afterEach(() => {
  for (const made of dirs.splice(0)) rmSync(made, { recursive: true, force: true });
});

describe('state files', () => {
  it('write and read back, mode 0600, leaving no temporary file behind', () => {
    const file = stateFilePath(dir(), 'zookeeper', 'a', 'b');
    writeStateFile(file, { session: 'x' });
    expect(readStateFile(file)).toEqual({ session: 'x' });
    expect(readdirSync(join(file, '..'))).toEqual([file.split('/').pop()]);
  });

  it('a file planted where the temporary name would be is not written through: the name is not guessable', () => {
    const base = dir();
    const file = stateFilePath(base, 'etcd', 'x');
    const victim = join(dir(), 'victim');
    writeFileSync(victim, 'untouched');
    // The old temporary name was `<file>.<pid>.tmp`.
    symlinkSync(victim, `${file}.${process.pid}.tmp`);
    writeStateFile(file, { lease: '1' });
    expect(readFileSync(victim, 'utf8')).toBe('untouched');
    expect(readStateFile(file)).toEqual({ lease: '1' });
  });

  it('writing replaces a symbolic link at the file itself instead of writing through it', () => {
    const file = stateFilePath(dir(), 'etcd', 'y');
    const victim = join(dir(), 'victim');
    writeFileSync(victim, 'untouched');
    symlinkSync(victim, file);
    writeStateFile(file, { lease: '2' });
    expect(readFileSync(victim, 'utf8')).toBe('untouched');
  });

  it('does not read a symbolic link, nor a file others may read', () => {
    const base = dir();
    const target = join(base, 'real.json');
    writeFileSync(target, '{"session":"stolen"}', { mode: 0o600 });
    const link = join(base, 'link.json');
    symlinkSync(target, link);
    expect(readStateFile(link)).toBeUndefined();
    chmodSync(target, 0o644);
    expect(readStateFile(target)).toBeUndefined();
    chmodSync(target, 0o600);
    expect(readStateFile(target)).toEqual({ session: 'stolen' });
  });
});
