import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../errors.js';
import { envValue, readEnvFile, readSecret } from './env-files.js';

const dir = mkdtempSync(join(tmpdir(), 'registrar-env-files-'));
const file = (name: string, content: string): string => {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
};
const thrown = (fn: () => unknown): Error => {
  try {
    fn();
  } catch (error) {
    return error as Error;
  }
  throw new Error('did not throw');
};

describe('readSecret', () => {
  it('takes NAME as given', () => {
    expect(readSecret({ PW: ' p w ' }, 'PW', 'the password')).toEqual({ value: ' p w ', source: 'PW' });
  });

  it('reads NAME_FILE, dropping trailing line breaks only', () => {
    const path = file('pw', ' s3cret \r\n\n');
    expect(readSecret({ PW_FILE: path }, 'PW', 'the password')).toEqual({
      value: ' s3cret ',
      source: `PW_FILE="${path}"`,
    });
  });

  it('treats unset and empty variables alike', () => {
    expect(readSecret({}, 'PW', 'the password')).toBeUndefined();
    expect(readSecret({ PW: '', PW_FILE: '' }, 'PW', 'the password')).toBeUndefined();
    expect(readSecret({ PW: 'x', PW_FILE: '' }, 'PW', 'the password')?.value).toBe('x');
    expect(envValue({ A: '' }, 'A')).toBeUndefined();
    expect(envValue({ A: 'a' }, 'A')).toBe('a');
  });

  it.each([
    [{ PW: 'x', PW_FILE: '/x' }, 'both PW and PW_FILE are set; set only one of them'],
    [
      { PW_FILE: '/nonexistent/pw' },
      'cannot read PW_FILE="/nonexistent/pw" (ENOENT); point it at a readable file containing the password',
    ],
    [{ PW_FILE: '/dev/null' }, 'PW_FILE="/dev/null" is empty; write the password into it'],
    [{ PW_FILE: '/tmp\n/x' }, 'cannot read PW_FILE="/tmp\\u000a/x" (ENOENT)'],
  ])('%j → one-line ConfigError', (env, message) => {
    const error = thrown(() => readSecret(env, 'PW', 'the password'));
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toContain(message);
    expect(error.message).not.toContain('\n');
  });

  it('never echoes the secret', () => {
    const path = file('only-newlines', '\n\n');
    expect(thrown(() => readSecret({ PW_FILE: path }, 'PW', 'the password')).message).toContain('is empty');
    expect(thrown(() => readSecret({ PW: 'hunter2', PW_FILE: path }, 'PW', 'x')).message).not.toContain(
      'hunter2',
    );
  });
});

describe('readEnvFile', () => {
  it('reads the file NAME points at, or nothing when unset', () => {
    expect(readEnvFile({ CA: file('ca.pem', 'PEM\n') }, 'CA', 'a PEM CA bundle')?.toString()).toBe('PEM\n');
    expect(readEnvFile({ CA: '' }, 'CA', 'a PEM CA bundle')).toBeUndefined();
  });

  it('names the variable and the path when the file cannot be read', () => {
    expect(() => readEnvFile({ CA: dir }, 'CA', 'a PEM CA bundle')).toThrow(
      `cannot read CA="${dir}" (EISDIR); point it at a readable file containing a PEM CA bundle`,
    );
  });
});
