import { ConfigError } from '../errors.js';

/**
 * The value of an option that was renamed, from whichever name the caller used. Old names stay accepted
 * for one release (marked `@deprecated` in the options' types); giving both names is refused rather than
 * guessing which one was meant.
 */
export function renamedOption<T>(
  where: string,
  options: object,
  name: string,
  deprecated: string,
): T | undefined {
  const record = options as Record<string, unknown>;
  const value = record[name] as T | undefined;
  const old = record[deprecated] as T | undefined;
  if (value !== undefined && old !== undefined) {
    throw new ConfigError(
      `${where}: \`${deprecated}\` is the deprecated name of \`${name}\`; give only \`${name}\``,
      { field: deprecated },
    );
  }
  return value ?? old;
}
