/**
 * Parsing of registrator-style `SERVICE_*` container labels and environment variables (docs/layouts.md, the service model).
 *
 * Key grammar, after the literal upper-case `SERVICE_` prefix (attributes are case-insensitive):
 * - `SERVICE_<attr>`                     generic, applies to every port of the container;
 * - `SERVICE_<port>_<attr>`              that container port, tcp and udp;
 * - `SERVICE_<port>_<TCP|UDP>_<attr>`    that port and protocol only.
 * Precedence per attribute: protocol-specific > port-specific > generic (checks and meta merge key by key).
 *
 * A segment counts as a port when it starts with a digit (registrator treats `SERVICE_<digits>_X` as a port
 * key); `SERVICE_8o_NAME` or `SERVICE_99999_NAME` is then a bad port key and warned about, while
 * `SERVICE_abc_NAME` is an ordinary metadata key `abc_name`, as in registrator.
 *
 * Everything here is pure and total: malformed input yields warnings, never exceptions.
 */
import type { LabelWarning, Protocol } from './service.js';
import { oneLine, quote } from './text.js';

const PREFIX = 'SERVICE_';

/** Values larger than this are ignored with a warning, so a hostile label cannot blow up memory downstream. */
export const MAX_LABEL_VALUE_BYTES = 64 * 1024;
/** Longer `SERVICE_*` keys are ignored with a warning (Consul caps metadata keys at 128 characters). */
export const MAX_LABEL_KEY_LENGTH = 256;
/**
 * Metadata and check keys kept per container (Consul allows 64 metadata pairs), and the total size of their
 * values: beyond either, further keys (in sorted order) are ignored with a warning.
 */
export const MAX_META_KEYS = 64;
export const MAX_META_TOTAL_BYTES = MAX_LABEL_VALUE_BYTES;
/** Warnings kept per container; one more says how many were left out. */
export const MAX_WARNINGS = 50;
/** Key and message length in a warning: enough to name the problem, never a whole hostile value. */
const MAX_WARNING_KEY = 120;
const MAX_WARNING_MESSAGE = 400;

/**
 * A warning safe to log on one line: key and message escaped and cut short, whatever the container wrote.
 */
export function labelWarning(container: string, key: string, message: string): LabelWarning {
  return {
    container: oneLine(container, MAX_WARNING_KEY) || 'unknown',
    key: oneLine(key, MAX_WARNING_KEY) || '(empty key)',
    message: oneLine(message, MAX_WARNING_MESSAGE),
  };
}

/** Keep the first `MAX_WARNINGS - 1` warnings and a summary of the rest. */
export function capWarnings(warnings: LabelWarning[], container: string): LabelWarning[] {
  if (warnings.length <= MAX_WARNINGS) return warnings;
  const kept = warnings.slice(0, MAX_WARNINGS - 1);
  const rest = warnings.length - kept.length;
  const keys = [...new Set(warnings.slice(kept.length).map((w) => w.key))].slice(0, 3).join(', ');
  kept.push(labelWarning(container, 'SERVICE_*', `${rest} more problems not shown (keys ${keys}, ...)`));
  return kept;
}

/** Service names and SERVICE_ID segments: DNS-label-ish, and never ':' or '/' (they separate id/key parts). */
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
export const MAX_SERVICE_NAME_LENGTH = 253;

// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

/** What one scope (the container, a port, or a port+protocol) asks for. Only valid values are kept. */
export interface LabelScope {
  readonly name?: string;
  readonly tags?: readonly string[];
  readonly id?: string;
  readonly ignore?: boolean;
  /** `SERVICE_[<port>_]CHECK_<KIND>` keyed by lower-cased kind. */
  readonly checks: ReadonlyMap<string, string>;
  /** Any other `SERVICE_<key>`, keyed by lower-cased key. */
  readonly meta: ReadonlyMap<string, string>;
}

export interface ServiceLabels {
  readonly generic: LabelScope;
  /** `SERVICE_NETWORK`: which container network's IP to use. */
  readonly network?: string;
  /** Port scopes keyed `"<port>"` (both protocols) and `"<port>/<tcp|udp>"`. */
  readonly ports: ReadonlyMap<string, LabelScope>;
}

/** The settings that apply to one container port and protocol, precedence already applied. */
export interface PortSettings {
  readonly name?: string;
  /** Whether `name` came from a port-specific key (then no `-<port>` suffix is added). */
  readonly nameIsPortSpecific: boolean;
  readonly tags: readonly string[];
  readonly id?: string;
  readonly ignore: boolean;
  readonly checks: Readonly<Record<string, string>>;
  readonly meta: Readonly<Record<string, string>>;
}

interface MutableScope {
  name?: string;
  tags?: readonly string[];
  id?: string;
  ignore?: boolean;
  checks: Map<string, string>;
  meta: Map<string, string>;
}

type ParsedKey =
  | { readonly kind: 'generic'; readonly attr: string }
  | { readonly kind: 'port'; readonly scope: string; readonly attr: string }
  | { readonly kind: 'bad'; readonly message: string }
  | { readonly kind: 'none' };

/** Registrator's truthiness for `SERVICE_IGNORE`: any non-empty value except false/0/no. */
export function isTruthy(value: string): boolean {
  const v = value.trim().toLowerCase();
  return v !== '' && v !== 'false' && v !== '0' && v !== 'no';
}

export function isValidServiceName(name: string): boolean {
  return name.length <= MAX_SERVICE_NAME_LENGTH && NAME_PATTERN.test(name);
}

/**
 * Split a comma list; `\,` is a literal comma inside a tag. Entries are trimmed and empties dropped. An empty
 * value is an explicit "no tags"; a value that is only separators/blanks, or a tag with control characters,
 * is reported in `problems` (bad tags are dropped, good ones kept).
 */
export function parseTags(value: string): { tags: string[]; problems: string[] } {
  const raw: string[] = [];
  let current = '';
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (ch === '\\' && value[i + 1] === ',') {
      current += ',';
      i++;
    } else if (ch === ',') {
      raw.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  raw.push(current);

  const tags: string[] = [];
  const problems: string[] = [];
  for (const entry of raw) {
    const tag = entry.trim();
    if (tag === '') continue;
    if (CONTROL_CHARS.test(tag)) {
      problems.push(`tag ${quote(tag, 40)} contains control characters; dropped`);
      continue;
    }
    if (!tags.includes(tag)) tags.push(tag);
  }
  if (tags.length === 0 && problems.length === 0 && value.trim() !== '') {
    problems.push('tag list has no tags after splitting on commas');
  }
  // Thousands of bad tags in one value are one problem worth reading, not thousands.
  if (problems.length > 3) {
    const more = problems.length - 3;
    problems.splice(3, more, `and ${more} more tags with control characters dropped`);
  }
  return { tags, problems };
}

/**
 * Collect `SERVICE_*` settings from environment (`K=V`, split on the first `=`) and labels; a label wins over an
 * environment variable of the same key. Anything that is not a string is skipped.
 */
export function collectSettings(labels: unknown, env: unknown): Map<string, string> {
  const settings = new Map<string, string>();
  if (Array.isArray(env)) {
    for (const entry of env) {
      if (typeof entry !== 'string' || !entry.startsWith(PREFIX)) continue;
      const eq = entry.indexOf('=');
      // `K` without `=` means "unset" to Docker: nothing to read.
      if (eq < 0) continue;
      settings.set(entry.slice(0, eq), entry.slice(eq + 1));
    }
  }
  if (labels !== null && typeof labels === 'object' && !Array.isArray(labels)) {
    for (const [key, value] of Object.entries(labels as Record<string, unknown>)) {
      if (key.startsWith(PREFIX) && typeof value === 'string') settings.set(key, value);
    }
  }
  return settings;
}

function parseKey(key: string): ParsedKey {
  const rest = key.slice(PREFIX.length);
  if (rest === '') return { kind: 'none' };
  const m = /^(\d[^_]*)(?:_(.*))?$/.exec(rest);
  if (m === null) return { kind: 'generic', attr: rest.toLowerCase() };

  const [, segment = '', tail = ''] = m;
  if (!/^\d+$/.test(segment)) {
    return { kind: 'bad', message: `port ${quote(segment, 20)} in a port-specific key is not a number` };
  }
  const port = Number(segment);
  if (port < 1 || port > 65535) {
    return { kind: 'bad', message: `port ${segment} in a port-specific key is out of range 1-65535` };
  }
  if (tail === '') return { kind: 'bad', message: `port-specific key has no attribute after the port` };
  const proto = /^(tcp|udp)_(.+)$/i.exec(tail);
  if (proto !== null) {
    return { kind: 'port', scope: `${port}/${proto[1].toLowerCase()}`, attr: proto[2].toLowerCase() };
  }
  return { kind: 'port', scope: String(port), attr: tail.toLowerCase() };
}

function newScope(): MutableScope {
  return { checks: new Map(), meta: new Map() };
}

function byteLength(value: string): number {
  // Cheap bound first: UTF-8 needs at most 3 bytes per UTF-16 code unit.
  return value.length * 3 <= MAX_LABEL_VALUE_BYTES ? value.length : Buffer.byteLength(value, 'utf8');
}

/** Apply one attribute to a scope; returns a warning message when the value is rejected. */
function applyAttr(scope: MutableScope, attr: string, value: string): string | undefined {
  switch (attr) {
    case 'name': {
      const name = value.trim();
      if (name === '') return 'service name is empty; falling back to the default name';
      if (!isValidServiceName(name)) {
        return `service name ${quote(name, 60)} is not usable: it must match [A-Za-z0-9][A-Za-z0-9._-]* and be at most ${MAX_SERVICE_NAME_LENGTH} characters`;
      }
      scope.name = name;
      return undefined;
    }
    case 'tags': {
      const { tags, problems } = parseTags(value);
      // A list that yielded nothing usable must not silently override the generic tags with none.
      if (tags.length > 0 || problems.length === 0) scope.tags = tags;
      return problems.length > 0 ? problems.join('; ') : undefined;
    }
    case 'id': {
      const id = value.trim();
      if (!isValidServiceName(id)) {
        return `service id ${quote(id, 60)} is not usable: it must match [A-Za-z0-9][A-Za-z0-9._-]* and be at most ${MAX_SERVICE_NAME_LENGTH} characters; using the container name`;
      }
      scope.id = id;
      return undefined;
    }
    case 'ignore':
      scope.ignore = isTruthy(value);
      return undefined;
    case 'check':
      return 'check key needs a kind, e.g. SERVICE_CHECK_HTTP';
    default:
      if (attr.startsWith('check_')) {
        const kind = attr.slice('check_'.length);
        if (kind === '') return 'check key needs a kind, e.g. SERVICE_CHECK_HTTP';
        scope.checks.set(kind, value);
        return undefined;
      }
      scope.meta.set(attr, value);
      return undefined;
  }
}

/**
 * Parse a container's labels and environment into per-scope settings. `container` (name without slash) is
 * only used to label warnings.
 */
export function parseServiceLabels(
  labels: unknown,
  env: unknown,
  container: string,
): { labels: ServiceLabels; warnings: LabelWarning[] } {
  const settings = collectSettings(labels, env);
  const warnings: LabelWarning[] = [];
  const warn = (key: string, message: string): void => {
    warnings.push(labelWarning(container, key, message));
  };
  const generic = newScope();
  const ports = new Map<string, MutableScope>();
  let network: string | undefined;

  // Sorted so warnings come out in a stable order whatever the engine's map order.
  const keys = [...settings.keys()].sort();
  let metaKeys = 0;
  let metaBytes = 0;
  for (const key of keys) {
    const value = settings.get(key)!;
    if (key.length > MAX_LABEL_KEY_LENGTH) {
      warn(key, `key is longer than ${MAX_LABEL_KEY_LENGTH} characters; key ignored`);
      continue;
    }
    const parsed = parseKey(key);
    if (parsed.kind === 'none') continue;
    if (parsed.kind === 'bad') {
      warn(key, `${parsed.message}; key ignored`);
      continue;
    }
    if (byteLength(value) > MAX_LABEL_VALUE_BYTES) {
      warn(key, `value is larger than ${MAX_LABEL_VALUE_BYTES} bytes; key ignored`);
      continue;
    }
    if (parsed.attr === 'network') {
      if (parsed.kind === 'port') warn(key, 'SERVICE_NETWORK applies to the whole container; key ignored');
      else if (value.trim() === '') warn(key, 'network name is empty; using the default network choice');
      else network = value.trim();
      continue;
    }
    if (!['name', 'tags', 'id', 'ignore', 'check'].includes(parsed.attr)) {
      // Metadata and checks: bounded per container, whatever the container carries.
      metaKeys += 1;
      metaBytes += byteLength(value);
      if (metaKeys > MAX_META_KEYS || metaBytes > MAX_META_TOTAL_BYTES) {
        warn(
          key,
          `more than ${MAX_META_KEYS} metadata/check keys or ${MAX_META_TOTAL_BYTES} bytes of their values; key ignored`,
        );
        continue;
      }
    }
    let scope = generic;
    if (parsed.kind === 'port') {
      scope = ports.get(parsed.scope) ?? newScope();
      ports.set(parsed.scope, scope);
    }
    const problem = applyAttr(scope, parsed.attr, value);
    if (problem !== undefined) warn(key, problem);
  }

  const result: ServiceLabels =
    network === undefined ? { generic, ports } : { generic, ports, network: network };
  return { labels: result, warnings: capWarnings(warnings, container) };
}

function mergeMaps(...maps: (ReadonlyMap<string, string> | undefined)[]): Record<string, string> {
  const merged = new Map<string, string>();
  for (const m of maps) if (m !== undefined) for (const [k, v] of m) merged.set(k, v);
  // Object.fromEntries defines own properties, so a key like `__proto__` stays plain data.
  return Object.fromEntries(merged);
}

/** The settings for one container port and protocol: protocol-specific > port-specific > generic. */
export function settingsFor(labels: ServiceLabels, port: number, protocol: Protocol): PortSettings {
  const exact = labels.ports.get(`${port}/${protocol}`);
  const anyProto = labels.ports.get(String(port));
  const g = labels.generic;
  const portName = exact?.name ?? anyProto?.name;
  const name = portName ?? g.name;
  const id = exact?.id ?? anyProto?.id ?? g.id;
  return {
    ...(name !== undefined ? { name } : {}),
    nameIsPortSpecific: portName !== undefined,
    tags: exact?.tags ?? anyProto?.tags ?? g.tags ?? [],
    ...(id !== undefined ? { id } : {}),
    ignore: exact?.ignore ?? anyProto?.ignore ?? g.ignore ?? false,
    checks: mergeMaps(g.checks, anyProto?.checks, exact?.checks),
    meta: mergeMaps(g.meta, anyProto?.meta, exact?.meta),
  };
}
