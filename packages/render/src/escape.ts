/**
 * How a value from the registry is written into a configuration file without changing its structure. Each
 * encoder turns any value into exactly one token of its format; none throws, so a hostile value can cost its
 * own entry some characters but never the file. Pure functions, exposed to templates as filters.
 */

/** Characters with no quoting, comment, separator or variable meaning in nginx, HAProxy, JSON strings or hosts. */
const NOT_PLAIN = /[^A-Za-z0-9._:/@+=,[\]-]/g;
/** C0 and C1 controls and the Unicode line separators: a line break ends a directive, a comment or a hosts line. */
// eslint-disable-next-line no-control-regex -- control characters are what it finds
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;

const text = (value: unknown): string =>
  value === null || value === undefined
    ? ''
    : typeof value === 'string'
      ? value
      : Array.isArray(value)
        ? value.map(text).join(',')
        : typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint'
          ? String(value)
          : '';

/**
 * The default for every `{{ }}` without a format filter: characters other than letters, digits and
 * `. _ : / @ + = , [ ] -` become `_`. Plain values (addresses, ports, ids, names) pass unchanged.
 */
export function token(value: unknown): string {
  return text(value).replace(NOT_PLAIN, '_');
}

/** Whether `token` would change the value. */
export function isPlain(value: unknown): boolean {
  return text(value).replace(NOT_PLAIN, '') === text(value);
}

/**
 * One nginx string: double-quoted, `\` and `"` escaped. nginx has no escape for `$` (a variable in every
 * directive that takes variables) nor for control characters: both become `_`. Safe in a comment too.
 */
export function nginx(value: unknown): string {
  const body = text(value)
    .replace(CONTROL, '_')
    .replace(/\$/g, '_')
    .replace(/[\\"]/g, (char) => `\\${char}`);
  return `"${body}"`;
}

/**
 * One HAProxy word: in single quotes, where HAProxy expands nothing (no `$VAR`, no `\` escape, `#` is no
 * comment); a `'` closes the quotes, is escaped, and opens them again (`'\''`), which HAProxy joins into one
 * word. Control characters become `_` (a line break would end the line whatever the quotes).
 */
export function haproxy(value: unknown): string {
  return `'${text(value).replace(CONTROL, '_').replace(/'/g, "'\\''")}'`;
}

/** A JSON value: strings quoted and escaped, numbers and booleans as they are, absent values `null`. */
export function json(value: unknown): string {
  return JSON.stringify(value ?? null) ?? 'null';
}

/**
 * A host name for an `/etc/hosts` line or a DNS record: lower case, every character but `a-z 0-9 - .` becomes
 * `-`, labels trimmed of `-` and cut to 63 characters, empty labels dropped, at most 253 characters. A value
 * with nothing left gives `invalid` (never an empty field, which would shift the line's columns).
 */
export function hostname(value: unknown): string {
  const labels = text(value)
    .toLowerCase()
    .replace(/[^a-z0-9.-]/g, '-')
    .split('.')
    .map((label) =>
      label
        .replace(/^-+|-+$/g, '')
        .slice(0, 63)
        .replace(/-+$/, ''),
    )
    .filter((label) => label !== '');
  let name = labels.join('.');
  if (name.length > 253) name = name.slice(0, 253).replace(/[.-]+$/, '');
  return name === '' ? 'invalid' : name;
}

/**
 * A decimal integer: the value when it is one (a number, or a string of digits with an optional `-`), else
 * `fallback` (itself an integer, or nothing). For numeric parameters from metadata: `weight={{ i.meta.weight
 * | integer: 1 }}`.
 */
export function integer(value: unknown, fallback?: unknown): number | string {
  const parse = (candidate: unknown): number | undefined => {
    const n =
      typeof candidate === 'number'
        ? candidate
        : typeof candidate === 'string' && /^-?\d{1,15}$/.test(candidate.trim())
          ? Number(candidate.trim())
          : undefined;
    return n !== undefined && Number.isSafeInteger(n) ? n : undefined;
  };
  return parse(value) ?? parse(fallback) ?? '';
}
