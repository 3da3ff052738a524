import type { Instance, Service, ServiceProblem } from '@registrar/core';
import { familyAddresses, formatHostPort, instanceLabels, isPort, parseHostPort } from '@registrar/core/kit';

/**
 * How services are laid out in etcd:
 * - `json` (default): `<prefix>/<name>/<id>` = the JSON record (docs/layouts.md);
 * - `hostport`: `<prefix>/<name>/<id>` = `ip:port` (registrator's etcd layout);
 * - `skydns`: `<prefix>/<reversed domain>/<name>/<label(id)>` = `{"host","port","ttl"}`, read by CoreDNS.
 */
export type EtcdLayout = 'json' | 'hostport' | 'skydns';

export const layouts: readonly EtcdLayout[] = ['json', 'hostport', 'skydns'];

/** A stored key this node owns, parsed back into the id and name it was written for. */
export interface ParsedEntry {
  readonly id: string;
  readonly name: string;
  /** The writing Docker engine's ID, where the layout records one (json) and the record has it. */
  readonly engine?: string;
}

/** Pure encoding and parsing of one layout: no I/O, so it is tested without a server. */
export interface LayoutCodec {
  /** Root every key of this layout lives under, without a trailing slash (`''` for the key space root). */
  readonly root: string;
  key(service: Service): string;
  /** Why the service's name or id cannot be stored in this layout, if it cannot. */
  check(service: Service): ServiceProblem | undefined;
  value(service: Service): string;
  /**
   * Whether a key can hold an entry of `nodeId`, judged from the key alone (its id segment): the filter
   * that spares reading the values of other nodes' entries under a shared prefix.
   */
  owns(key: string): boolean;
  /** The id and name a stored key/value belongs to, or undefined when it is not owned by `nodeId`. */
  parse(key: string, value: string): ParsedEntry | undefined;
}

export interface LayoutOptions {
  readonly layout: EtcdLayout;
  /** Normalised prefix: leading slash, no trailing slash, `''` for the root. */
  readonly prefix: string;
  readonly nodeId: string;
  /**
   * json only: the Docker engine ID recorded as `"engine"` beside `"node"`. The other layouts have no room for
   * it (their values are what registrator and CoreDNS read), so they record none.
   */
  readonly engineId?: string;
  /** skydns only. */
  readonly domain: string;
  /** skydns only: the record TTL in seconds (the lease TTL). */
  readonly ttl: number;
}

/** The prefix a layout uses when none is given: CoreDNS's `path` for skydns, `/services` otherwise. */
export function defaultPrefix(layout: EtcdLayout): string {
  return layout === 'skydns' ? '/skydns' : '/services';
}

/** `services/`, `/services/` and `/services` all become `/services`; `/` becomes the root `''`. */
export function normalisePrefix(prefix: string): string {
  const trimmed = prefix.replace(/\/+$/, '');
  if (trimmed === '') return '';
  return trimmed.startsWith('/') ? trimmed : `/${trimmed}`;
}

/** Ids are `<node-id>:...`; the exact `node:` prefix keeps node `a` away from node `ab`'s entries. */
export function ownedId(id: string, nodeId: string): boolean {
  return id.startsWith(`${nodeId}:`) && id.length > nodeId.length + 1;
}

/**
 * The JSON record, keys in a fixed order and metadata sorted, so equal services give equal bytes; `engine`
 * (the writing Docker engine's ID) follows `node` when known, `container` comes next when there is one, and
 * `addresses` ends a dual-stack service's record.
 */
export function jsonRecord(service: Service, engineId?: string): string {
  const meta: Record<string, string> = {};
  for (const key of Object.keys(service.meta).sort()) meta[key] = service.meta[key]!;
  return JSON.stringify({
    id: service.id,
    name: service.name,
    address: service.address,
    port: service.port,
    protocol: service.protocol,
    tags: [...service.tags],
    meta,
    node: service.node,
    ...(engineId !== undefined && { engine: engineId }),
    // Only a service the bridge derived from a container has one; `registerService`'s records stop at `node`.
    ...(service.container && { container: { id: service.container.id, name: service.container.name } }),
    // Only on dual-stack services, last: records of single-stack services stay byte for byte as before.
    ...(service.dualStack !== undefined && { addresses: familyAddresses(service.dualStack) }),
  });
}

const labelSafe = /^[a-z0-9]$/;

/**
 * Encodes an id as one DNS-label-safe key segment (`[a-z0-9-]` only, so CoreDNS can turn the key into a
 * SRV target name and answer lookups of it): `a-z` and `0-9` stay, `:` becomes `--`, and every other
 * character becomes `-` plus two lower-case hex digits per UTF-8 byte (`-` → `-2d`, `.` → `-2e`,
 * `_` → `-5f`, `A` → `-41`). `host1:web-1:80` → `host1--web-2d1--80`. The code is prefix-free, so decoding
 * is exact and `<node>:` can never be confused with a longer node id.
 */
export function encodeLabel(id: string): string {
  let out = '';
  for (const char of id) {
    if (labelSafe.test(char)) out += char;
    else if (char === ':') out += '--';
    else for (const byte of Buffer.from(char, 'utf8')) out += `-${byte.toString(16).padStart(2, '0')}`;
  }
  return out;
}

/** Inverse of `encodeLabel`; undefined for anything `encodeLabel` would not have produced. */
export function decodeLabel(label: string): string | undefined {
  const bytes: number[] = [];
  for (let i = 0; i < label.length;) {
    const char = label[i];
    if (labelSafe.test(char)) {
      bytes.push(char.charCodeAt(0));
      i += 1;
    } else if (char === '-' && label[i + 1] === '-') {
      bytes.push(0x3a);
      i += 2;
    } else if (char === '-' && /^[0-9a-f]{2}$/.test(label.slice(i + 1, i + 3))) {
      bytes.push(parseInt(label.slice(i + 1, i + 3), 16));
      i += 3;
    } else {
      return undefined;
    }
  }
  const id = Buffer.from(bytes).toString('utf8');
  // Canonical form only: `-61` for `a`, or invalid UTF-8, would make two segments decode to one id.
  return encodeLabel(id) === label ? id : undefined;
}

/** `skydns.local` → `/local/skydns` (CoreDNS reads domains right to left). */
export function domainPath(domain: string): string {
  return domain
    .split('.')
    .filter((label) => label !== '')
    .reverse()
    .map((label) => `/${label.toLowerCase()}`)
    .join('');
}

export function createCodec(options: LayoutOptions): LayoutCodec {
  const { prefix, nodeId } = options;
  if (options.layout === 'skydns') return skydnsCodec(options);
  const root = prefix;
  const check = (service: Service): ServiceProblem | undefined =>
    service.id.includes('/')
      ? { field: 'id', message: `id ${JSON.stringify(service.id)} must not contain "/"` }
      : service.name === ''
        ? { field: 'name', message: 'the name is empty' }
        : undefined;
  const key = (service: Service) => `${root}/${service.name}/${service.id}`;
  /** `<root>/<name...>/<id>`: ids never contain `/`, so the last segment is the id, the rest the name. */
  const split = (storedKey: string): ParsedEntry | undefined => {
    if (!storedKey.startsWith(`${root}/`)) return undefined;
    const rest = storedKey.slice(root.length + 1);
    const slash = rest.lastIndexOf('/');
    if (slash <= 0) return undefined;
    return { name: rest.slice(0, slash), id: rest.slice(slash + 1) };
  };
  /** Keys whose last segment is one of our ids: the only keys this node ever writes. */
  const owned = (storedKey: string) => {
    const entry = split(storedKey);
    return entry && ownedId(entry.id, nodeId) ? entry : undefined;
  };
  if (options.layout === 'hostport') {
    return {
      root,
      key,
      check,
      value: (service) => formatHostPort({ host: service.address, port: service.port }),
      owns: (storedKey) => owned(storedKey) !== undefined,
      parse: (storedKey) => owned(storedKey),
    };
  }
  return {
    root,
    key,
    check,
    value: (service) => jsonRecord(service, options.engineId),
    owns: (storedKey) => owned(storedKey) !== undefined,
    parse: (storedKey, value) => {
      const entry = owned(storedKey);
      if (!entry) return undefined;
      // Ours when the record's `node` says so too; anything unparsable is someone else's and left alone.
      let record: unknown;
      try {
        record = JSON.parse(value);
      } catch {
        return undefined;
      }
      if (typeof record !== 'object' || record === null) return undefined;
      const { node, id, engine } = record as { node?: unknown; id?: unknown; engine?: unknown };
      if (node !== nodeId || typeof id !== 'string') return undefined;
      // Records of older versions have no `engine`: adopted as before.
      return typeof engine === 'string' ? { id, name: entry.name, engine } : { id, name: entry.name };
    },
  };
}

function skydnsCodec(options: LayoutOptions): LayoutCodec {
  const root = `${options.prefix}${domainPath(options.domain)}`;
  /** The key alone says whose it is: the value is CoreDNS's record. */
  const parse = (storedKey: string): ParsedEntry | undefined => {
    if (!storedKey.startsWith(`${root}/`)) return undefined;
    const segments = storedKey.slice(root.length + 1).split('/');
    if (segments.length < 2) return undefined;
    const id = decodeLabel(segments.pop()!);
    if (id === undefined || !ownedId(id, options.nodeId)) return undefined;
    return { id, name: segments.reverse().join('.') };
  };
  /** Dotted names nest like domains: `api.v1` is `<root>/v1/api`, queried as `api.v1.<domain>`. */
  const namePath = (name: string) =>
    name
      .toLowerCase()
      .split('.')
      .reverse()
      .map((label) => `/${label}`)
      .join('');
  return {
    root,
    check: (service) =>
      service.name.includes('/') || service.name.split('.').some((label) => label === '')
        ? {
            field: 'name',
            message: `name ${JSON.stringify(service.name)} must be dot-separated DNS labels without "/" in the skydns layout`,
          }
        : undefined,
    key: (service) => `${root}${namePath(service.name)}/${encodeLabel(service.id)}`,
    value: (service) => JSON.stringify({ host: service.address, port: service.port, ttl: options.ttl }),
    owns: (storedKey) => parse(storedKey) !== undefined,
    parse,
  };
}

/** The read side of a layout, for followers: every node's entries of one service, not just ours. */
export interface LayoutReader {
  /** Where the layout's keys live (the skydns domain path included), for logs. */
  readonly root: string;
  /**
   * The key prefix (ending in `/`) under which every entry of `name` lives; keys below it that hold another
   * name (`web/x` under `web`) are told apart by `read`. Undefined when the layout cannot hold the name.
   */
  dir(name: string): string | undefined;
  /**
   * The instance a key under `dir` holds: undefined for keys of a longer name, a string saying why the value
   * is not an instance (the caller warns and skips it).
   */
  read(dir: string, key: string, value: string): Instance | string | undefined;
}

export type ReaderOptions = Pick<LayoutOptions, 'layout' | 'prefix' | 'domain'>;

function parseJson(value: string): Record<string, unknown> | undefined {
  try {
    const parsed: unknown = JSON.parse(value);
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Reads what any bridge (or another writer of the same layout) stored. The id is the key's last segment
 * (skydns: decoded back from its DNS label when it is one of ours); the value gives address and port.
 */
export function createReader(options: ReaderOptions): LayoutReader {
  /** The single segment after `dir`, or undefined for a key nested deeper (another name's entry). */
  const leaf = (dir: string, key: string) => {
    const rest = key.slice(dir.length);
    return rest === '' || rest.includes('/') ? undefined : rest;
  };
  if (options.layout === 'skydns') {
    const root = `${options.prefix}${domainPath(options.domain)}`;
    return {
      root,
      // The registry's own rule (codec.check): dot-separated labels, read right to left, lower case.
      dir: (name) =>
        name === '' || name.includes('/') || name.split('.').some((label) => label === '')
          ? undefined
          : `${root}${name
              .toLowerCase()
              .split('.')
              .reverse()
              .map((label) => `/${label}`)
              .join('')}/`,
      read(dir, key, value) {
        const segment = leaf(dir, key);
        if (segment === undefined) return undefined;
        const record = parseJson(value);
        if (!record) return 'not a JSON object';
        if (typeof record.host !== 'string' || record.host === '') return 'no "host"';
        if (!isPort(record.port)) return 'no "port" from 1 to 65535';
        return { id: decodeLabel(segment) ?? segment, address: record.host, port: record.port };
      },
    };
  }
  const parse =
    options.layout === 'hostport'
      ? (value: string) => parseHostPort(value) ?? 'not "ip:port"'
      : (value: string) => {
          const record = parseJson(value);
          if (!record) return 'not a JSON object';
          if (typeof record.address !== 'string' || record.address === '') return 'no "address"';
          if (!isPort(record.port)) return 'no "port" from 1 to 65535';
          return { address: record.address, port: record.port, ...instanceLabels(record.tags, record.meta) };
        };
  return {
    root: options.prefix,
    dir: (name) => (name === '' ? undefined : `${options.prefix}/${name}/`),
    read(dir, key, value) {
      const id = leaf(dir, key);
      if (id === undefined) return undefined;
      const parsed = parse(value);
      return typeof parsed === 'string' ? parsed : { id, ...parsed };
    },
  };
}
