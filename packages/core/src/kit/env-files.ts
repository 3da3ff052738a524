/**
 * Secrets and TLS files from the environment, the one way every adapter reads them (credentials never come
 * from the URI or argv). A secret is `NAME` (the value) or `NAME_FILE` (a file holding it); setting both is an
 * error rather than one silently winning. A TLS file is `NAME` holding a path.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.js';
import { oneLine, quote } from '../text.js';

export type Environment = Readonly<Record<string, string | undefined>>;

/** `env[name]`, or undefined when it is unset or empty (an empty variable means "not set" everywhere). */
export function envValue(env: Environment, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value === '' ? undefined : value;
}

/** Contents of the file at `path`, named after the variable that gave it; a ConfigError when unreadable. */
function readNamedFile(variable: string, path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? oneLine((error as Error).message, 100);
    throw new ConfigError(
      `cannot read ${variable}=${quote(path, 120)} (${reason}); point it at a readable file containing ${what}`,
    );
  }
}

/** A secret read from the environment, and the variable it came from (for messages: never the value). */
export interface EnvSecret {
  readonly value: string;
  /** `NAME`, or `NAME_FILE="<path>"`. */
  readonly source: string;
}

/**
 * The secret in `NAME` or in the file `NAME_FILE` names; undefined when neither is set. `what` says what the
 * secret is (`the etcd password`). Both set, an unreadable file and an empty file are one-line ConfigErrors.
 * Trailing line breaks of the file are dropped (editors and `echo` add one); the value is otherwise as given.
 */
export function readSecret(env: Environment, name: string, what: string): EnvSecret | undefined {
  const fileVariable = `${name}_FILE`;
  const inline = envValue(env, name);
  const path = envValue(env, fileVariable);
  if (inline !== undefined && path !== undefined)
    throw new ConfigError(`both ${name} and ${fileVariable} are set; set only one of them`);
  if (inline !== undefined) return { value: inline, source: name };
  if (path === undefined) return undefined;
  const value = readNamedFile(fileVariable, path, what)
    .toString('utf8')
    .replace(/[\r\n]+$/, '');
  if (value === '')
    throw new ConfigError(`${fileVariable}=${quote(path, 120)} is empty; write ${what} into it`);
  return { value, source: `${fileVariable}=${quote(path, 120)}` };
}

/** The file whose path `NAME` holds (a PEM certificate or key); undefined when unset. */
export function readEnvFile(env: Environment, name: string, what: string): Buffer | undefined {
  const path = envValue(env, name);
  return path === undefined ? undefined : readNamedFile(name, path, what);
}
