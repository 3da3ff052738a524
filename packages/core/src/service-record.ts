import { isIP } from 'node:net';
import { ConfigError } from './errors.js';
import { formatGoDuration } from './kit/go-duration.js';
import { isValidServiceName, MAX_SERVICE_NAME_LENGTH } from './labels.js';
import type { ServiceProblem } from './registry.js';
import type { Protocol, Service } from './service.js';
import { quote } from './text.js';

/**
 * A service as a library user describes it: where it answers and how it is called. Nothing about Docker;
 * `registerService` turns it into the registry's record.
 */
export interface ServiceRecord {
  /** What consumers look it up by: `[A-Za-z0-9][A-Za-z0-9._-]*`, at most 253 characters. */
  readonly name: string;
  /** An IPv4 or IPv6 literal (IPv6 without brackets); not a host name. */
  readonly address: string;
  /** 1–65535. */
  readonly port: number;
  /** Default `<nodeId>:<name>:<port>` (`:udp` appended for UDP). A given id must start with `<nodeId>:`. */
  readonly id?: string;
  readonly tags?: readonly string[];
  readonly meta?: Readonly<Record<string, string>>;
  /** Default `tcp`. */
  readonly protocol?: Protocol;
  /** A health check the registry runs itself (Consul); etcd and ZooKeeper hold no checks and ignore it. */
  readonly check?: ServiceCheck;
}

/** A probe of the service's own address and port: `http` or `tcp`, exactly one. */
export interface ServiceCheck {
  /** HTTP GET of this path (starting with `/`); 2xx is passing. */
  readonly http?: string;
  /** A TCP connect. */
  readonly tcp?: boolean;
  /** Default 10000. */
  readonly intervalMs?: number;
  /** Default: the registry's (Consul: 10 s). */
  readonly timeoutMs?: number;
}

// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f]/;
const ID_PATTERN = /^[A-Za-z0-9._:-]+$/;
const MAX_META_KEY = 128;

/**
 * What every adapter requires of a service's endpoint: an IP literal, a port in 1–65535 and a known protocol.
 * Adapters' `check()` start with it, so a raw `register()` of `localhost:0` is refused too.
 */
export function endpointProblem(
  service: Pick<Service, 'address' | 'port' | 'protocol'>,
): ServiceProblem | undefined {
  if (typeof service.address !== 'string' || isIP(service.address) === 0) {
    return {
      field: 'address',
      message: `address ${quote(String(service.address), 60)} is not an IP address: give an IPv4 or IPv6 literal (e.g. 10.0.0.5), not a host name`,
    };
  }
  if (!Number.isInteger(service.port) || service.port < 1 || service.port > 65535) {
    return { field: 'port', message: `port ${String(service.port)} is not a whole number from 1 to 65535` };
  }
  if (service.protocol !== 'tcp' && service.protocol !== 'udp') {
    return {
      field: 'protocol',
      message: `protocol ${quote(String(service.protocol), 20)} is neither tcp nor udp`,
    };
  }
  return undefined;
}

function fail(field: string, message: string): never {
  throw new ConfigError(`invalid service ${field}: ${message}`, { field });
}

function checkProblem(check: ServiceCheck): { field: string; message: string } | undefined {
  if (typeof check !== 'object' || check === null) return { field: 'check', message: 'it must be an object' };
  const kinds = [check.http !== undefined, check.tcp === true].filter(Boolean).length;
  if (kinds !== 1) return { field: 'check', message: 'give exactly one of `http` (a path) or `tcp: true`' };
  if (check.http !== undefined && (typeof check.http !== 'string' || !/^\/[^\s]*$/.test(check.http))) {
    return { field: 'check.http', message: `${quote(String(check.http), 60)} is not a path such as /health` };
  }
  for (const key of ['intervalMs', 'timeoutMs'] as const) {
    const value = check[key];
    if (value !== undefined && !(Number.isInteger(value) && value > 0)) {
      return {
        field: `check.${key}`,
        message: `${String(value)} is not a positive whole number of milliseconds`,
      };
    }
  }
  return undefined;
}

/**
 * The registry record for `record`, owned by `nodeId`; throws a `ConfigError` naming the first field that is
 * wrong. Docker's fields stay empty: no container, health passing.
 */
export function serviceFromRecord(record: ServiceRecord, nodeId: string): Service {
  if (typeof record !== 'object' || record === null) fail('record', 'pass { name, address, port }');
  const { name, address, port } = record;
  if (typeof name !== 'string' || !isValidServiceName(name)) {
    fail(
      'name',
      `${quote(String(name), 60)} must match [A-Za-z0-9][A-Za-z0-9._-]* and be at most ${MAX_SERVICE_NAME_LENGTH} characters`,
    );
  }
  const protocol = record.protocol ?? 'tcp';
  const endpoint = endpointProblem({ address, port, protocol });
  if (endpoint) fail(endpoint.field, endpoint.message);
  const id = record.id ?? `${nodeId}:${name}:${port}${protocol === 'udp' ? ':udp' : ''}`;
  if (typeof id !== 'string' || !id.startsWith(`${nodeId}:`) || id.length === nodeId.length + 1) {
    fail(
      'id',
      `${quote(String(id), 60)} must start with "${nodeId}:" (the registry's nodeId), e.g. "${nodeId}:${name}-1"`,
    );
  }
  if (id.length > MAX_SERVICE_NAME_LENGTH || !ID_PATTERN.test(id)) {
    fail(
      'id',
      `${quote(id, 60)} may hold only A-Z a-z 0-9 . _ - : and at most ${MAX_SERVICE_NAME_LENGTH} characters`,
    );
  }
  const given: unknown = record.tags ?? [];
  if (!Array.isArray(given)) fail('tags', 'it must be an array of strings');
  const tags = given as unknown[];
  tags.forEach((tag, i) => {
    if (typeof tag !== 'string' || tag === '' || tag.includes(',') || CONTROL.test(tag)) {
      fail(
        `tags[${i}]`,
        `${quote(String(tag), 60)} must be a non-empty string without commas or control characters`,
      );
    }
  });
  const meta = record.meta ?? {};
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta))
    fail('meta', 'it must be an object of strings');
  for (const [key, value] of Object.entries(meta)) {
    if (key === '' || key.length > MAX_META_KEY || CONTROL.test(key) || /^registrar[-.]/i.test(key)) {
      fail(
        `meta.${key}`,
        `key ${quote(key, 60)} must be 1–${MAX_META_KEY} characters without control characters, not starting with "registrar-" or "registrar." (reserved)`,
      );
    }
    if (typeof value !== 'string') fail(`meta.${key}`, 'the value must be a string');
  }
  const checks: Record<string, string> = {};
  if (record.check !== undefined) {
    const problem = checkProblem(record.check);
    if (problem) fail(problem.field, problem.message);
    const { http, tcp, intervalMs, timeoutMs } = record.check;
    if (http !== undefined) checks.http = http;
    if (tcp === true) checks.tcp = 'true';
    checks.interval = formatGoDuration(intervalMs ?? 10_000);
    if (timeoutMs !== undefined) checks.timeout = formatGoDuration(timeoutMs);
  }
  return {
    id,
    name,
    address,
    port,
    protocol,
    containerPort: port,
    tags: [...(tags as string[])],
    meta: { ...meta },
    node: nodeId,
    health: 'passing',
    healthOutput: '',
    checks,
  };
}
