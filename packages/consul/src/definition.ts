import { createHash } from 'node:crypto';
import type { HealthStatus, Service } from '@registrar/core';
import { formatGoDuration, formatHostPort, oneLine, parseGoDuration, quote } from '@registrar/core/kit';

/** A check block of `/v1/agent/service/register`, in Consul's field names. */
export interface ConsulCheck {
  Name: string;
  Notes?: string;
  Status?: HealthStatus;
  TTL?: string;
  Interval?: string;
  Timeout?: string;
  HTTP?: string;
  Method?: string;
  TLSSkipVerify?: boolean;
  TCP?: string;
  GRPC?: string;
  GRPCUseTLS?: boolean;
  Args?: string[];
  DockerContainerID?: string;
  Shell?: string;
  AliasService?: string;
  DeregisterCriticalServiceAfter?: string;
}

export interface ConsulWeights {
  Passing: number;
  Warning: number;
}

/** A service's address in one role (`lan_ipv4`, `lan_ipv6`...), as Consul's `TaggedAddresses` holds it. */
export interface ConsulServiceAddress {
  Address: string;
  Port: number;
}

export interface ConsulRegistration {
  ID: string;
  Name: string;
  Address: string;
  Port: number;
  /** A dual-stack service's `lan_ipv4` and `lan_ipv6` (Consul adds the rest from `Address`). */
  TaggedAddresses?: Record<string, ConsulServiceAddress>;
  Tags: string[];
  Meta: Record<string, string>;
  EnableTagOverride?: boolean;
  Weights?: ConsulWeights;
  Checks: ConsulCheck[];
}

/** What the agent stores when a registration carries no Weights. */
export const DEFAULT_WEIGHTS: Readonly<ConsulWeights> = { Passing: 1, Warning: 1 };
/** Consul's ValidateWeights bound (DNS SRV weights are 16-bit). */
const WEIGHT_MAX = 65535;

/**
 * `SERVICE_<key>` values the adapter reads as service options: they become registration fields, not Meta. etcd
 * and ZooKeeper keep them as ordinary metadata, as they keep any other `SERVICE_<key>`.
 */
const OPTION_KEYS = new Set(['enable_tag_override', 'weights_passing', 'weights_warning']);

export interface DefinitionWarning {
  /** The label at fault, e.g. `SERVICE_CHECK_INTERVAL`. */
  readonly key: string;
  readonly message: string;
  /** The same, as a field of a `registerService` record: `meta.<key>` or `check`. */
  readonly field: string;
}

/** Meta keys the adapter owns; a service's own metadata cannot override them. */
export const META_NODE = 'registrar-node';
/** The writing Docker engine's ID, beside the owner node; absent in services registered by older versions. */
export const META_ENGINE = 'registrar-engine';
export const META_CONTAINER_ID = 'registrar-container-id';
export const META_CONTAINER_NAME = 'registrar-container-name';
/** Hash of the check definitions, which the agent API does not return, so `list()` can compare them. */
export const META_DEF = 'registrar-def';
export const META_ROLE = 'registrar-role';

// Consul's limits (structs.validateMetaPair): 64 pairs, keys [A-Za-z0-9_-]{1,128} not `consul-`, values ≤ 512.
const META_MAX_PAIRS = 64;
const META_KEY_MAX = 128;
const META_VALUE_MAX = 512;
// Health output is capped well below Consul's 4 KiB so what we send is exactly what the agent stores.
export const OUTPUT_MAX = 1000;

export interface DefinitionSettings {
  nodeId: string;
  /** Recorded as `registrar-engine` when known. */
  engineId?: string | undefined;
  bridgeId: string;
  /** Seconds. */
  deregisterAfter: number;
  /** Seconds: TTL of the health-mirroring check, refreshed long before it runs out. */
  healthTtl: number;
}

export interface BuiltDefinition {
  registration: ConsulRegistration;
  /** Canonical form of everything but health: equal means re-registering would change nothing. */
  defKey: string;
  health: { status: HealthStatus; output: string };
  warnings: DefinitionWarning[];
}

export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export function normalizeOutput(output: string): string {
  return output.length > OUTPUT_MAX ? `${output.slice(0, OUTPUT_MAX - 3)}...` : output;
}

/**
 * The identity part both `fingerprint()` and `list()` compute: from a Service, or from the agent's answer.
 * Default weights and `EnableTagOverride: false` are left out, so a registration without them and the agent's
 * answer (which always has them) agree. With `EnableTagOverride` the tags are left out too: the catalog owns them
 * then (anti-entropy copies catalog edits into the agent), and a resync must not undo such an edit.
 */
export function defKeyOf(s: {
  id: string;
  name: string;
  address: string;
  port: number;
  dualStack?: Service['dualStack'];
  tags: readonly string[];
  meta: Readonly<Record<string, string>>;
  weights?: Readonly<ConsulWeights> | null | undefined;
  enableTagOverride?: boolean | null | undefined;
}): string {
  const override = s.enableTagOverride === true;
  const weights = s.weights ?? DEFAULT_WEIGHTS;
  const defaultWeights =
    weights.Passing === DEFAULT_WEIGHTS.Passing && weights.Warning === DEFAULT_WEIGHTS.Warning;
  return canonicalJson({
    id: s.id,
    name: s.name,
    address: s.address,
    port: s.port,
    dualStack: s.dualStack,
    tags: override ? undefined : s.tags,
    meta: s.meta,
    weights: defaultWeights ? undefined : { passing: weights.Passing, warning: weights.Warning },
    enableTagOverride: override || undefined,
  });
}

export function fingerprintOf(defKey: string, health: { status: string; output: string }): string {
  return `${defKey}|${canonicalJson(health)}`;
}

/** Everything `register()` sends for one service, plus the warnings its labels deserve. */
export function buildDefinition(service: Service, settings: DefinitionSettings): BuiltDefinition {
  const warnings: DefinitionWarning[] = [];
  const extra = buildExtraChecks(service, warnings);
  const checks: ConsulCheck[] = [
    {
      // Mirrors the bridge's heartbeat: one pass per interval keeps every service of this node alive.
      Name: 'registrar liveness',
      Notes: `Alias of ${settings.bridgeId}, the TTL check the registrar bridge on this node heartbeats`,
      AliasService: settings.bridgeId,
      DeregisterCriticalServiceAfter: formatGoDuration(settings.deregisterAfter * 1000),
    },
    {
      // Docker health, set through /v1/agent/check/update on each transition only.
      Name: service.container ? 'container health' : 'registrar health',
      Notes: service.container
        ? `Docker health of container ${service.container.name}, set by registrar`
        : 'Passing while registrar keeps the service registered',
      TTL: formatGoDuration(settings.healthTtl * 1000),
      Status: service.health,
    },
    ...extra,
  ];
  const options = buildOptions(service, warnings);
  const meta = buildMeta(service, settings.nodeId, settings.engineId, warnings);
  // The hash covers the check definitions without the health status, which lives in the agent's state.
  meta[META_DEF] = createHash('sha256')
    .update(canonicalJson(checks.map((c) => ({ ...c, Status: c === checks[1] ? undefined : c.Status }))))
    .digest('base64url')
    .slice(0, 16);
  const registration: ConsulRegistration = {
    ID: service.id,
    Name: service.name,
    Address: service.address,
    Port: service.port,
    ...(service.dualStack !== undefined && { TaggedAddresses: taggedAddresses(service.dualStack) }),
    Tags: [...service.tags],
    Meta: meta,
    ...options,
    Checks: checks,
  };
  return {
    registration,
    defKey: defKeyOf({
      ...service,
      meta,
      weights: options.Weights,
      enableTagOverride: options.EnableTagOverride,
    }),
    health: {
      status: service.health,
      output: normalizeOutput(service.health === 'passing' ? '' : service.healthOutput),
    },
    warnings,
  };
}

/**
 * Consul's own names for a service's address per family: clients that want one family read
 * `TaggedAddresses.lan_ipv4` or `lan_ipv6` (Consul fills `wan_*` and the `Address` family's `lan_*` itself).
 */
export function taggedAddresses(
  dualStack: NonNullable<Service['dualStack']>,
): Record<string, ConsulServiceAddress> {
  return {
    lan_ipv4: { Address: dualStack.ipv4.address, Port: dualStack.ipv4.port },
    lan_ipv6: { Address: dualStack.ipv6.address, Port: dualStack.ipv6.port },
  };
}

/** A dual-stack service as the agent answers it: both `lan_ipv4` and `lan_ipv6` are there. */
export function dualStackOf(
  tagged: Record<string, Partial<ConsulServiceAddress> | null | undefined> | null | undefined,
): Service['dualStack'] {
  const v4 = tagged?.['lan_ipv4'];
  const v6 = tagged?.['lan_ipv6'];
  if (typeof v4?.Address !== 'string' || typeof v6?.Address !== 'string') return undefined;
  return {
    ipv4: { address: v4.Address, port: v4.Port ?? 0 },
    ipv6: { address: v6.Address, port: v6.Port ?? 0 },
  };
}

function buildMeta(
  service: Service,
  nodeId: string,
  engineId: string | undefined,
  warnings: DefinitionWarning[],
): Record<string, string> {
  const meta: Record<string, string> = {
    [META_NODE]: nodeId,
    ...(engineId !== undefined && { [META_ENGINE]: engineId }),
    // Only a service the bridge derived from a container has one; `registerService`'s records do not.
    ...(service.container && {
      [META_CONTAINER_ID]: service.container.id,
      [META_CONTAINER_NAME]: service.container.name,
    }),
  };
  for (const [rawKey, rawValue] of Object.entries(service.meta)) {
    if (OPTION_KEYS.has(rawKey)) continue;
    const label = oneLine(`SERVICE_${rawKey.toUpperCase()}`, 120);
    let key = rawKey.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, META_KEY_MAX);
    if (key.startsWith('consul-')) key = `x-${key}`.slice(0, META_KEY_MAX);
    if (key === '' || key.startsWith('registrar-')) {
      warnings.push({
        key: label,
        field: `meta.${rawKey}`,
        message: `metadata key ${quote(rawKey, 60)} is reserved or empty in Consul; it was dropped`,
      });
      continue;
    }
    if (key !== rawKey) {
      warnings.push({
        key: label,
        field: `meta.${rawKey}`,
        message: `metadata key ${quote(rawKey, 60)} is not valid in Consul (allowed: A-Z a-z 0-9 _ -, ≤ ${META_KEY_MAX}); registered as ${quote(key, 60)}`,
      });
    }
    // One pair stays free for META_DEF.
    if (Object.keys(meta).length + 1 >= META_MAX_PAIRS) {
      warnings.push({
        key: label,
        field: `meta.${rawKey}`,
        message: `Consul allows at most ${META_MAX_PAIRS} metadata pairs; ${quote(rawKey, 60)} was dropped`,
      });
      continue;
    }
    let value = rawValue;
    if (value.length > META_VALUE_MAX) {
      warnings.push({
        key: label,
        field: `meta.${rawKey}`,
        message: `metadata value longer than ${META_VALUE_MAX} characters; it was truncated`,
      });
      value = value.slice(0, META_VALUE_MAX);
    }
    meta[key] = value;
  }
  return meta;
}

/**
 * `SERVICE_ENABLE_TAG_OVERRIDE` and `SERVICE_WEIGHTS_PASSING` / `_WARNING` (port-specific forms included: they
 * reach us as metadata). A bad value leaves out only the field it is for, with one warning.
 */
function buildOptions(
  service: Service,
  warnings: DefinitionWarning[],
): Pick<ConsulRegistration, 'EnableTagOverride' | 'Weights'> {
  const given = (key: string): string | undefined => {
    const raw = Object.hasOwn(service.meta, key) ? service.meta[key]?.trim() : undefined;
    return raw === '' ? undefined : raw;
  };
  const warn = (key: string, message: string): void =>
    void warnings.push({ key: `SERVICE_${key.toUpperCase()}`, field: `meta.${key}`, message });
  const out: Pick<ConsulRegistration, 'EnableTagOverride' | 'Weights'> = {};

  const override = given('enable_tag_override');
  if (override !== undefined) {
    const value = parseBool(override);
    if (value === undefined) {
      warn(
        'enable_tag_override',
        `${quote(override, 60)} is not a boolean; use true or false. EnableTagOverride was left out (Consul's default: false)`,
      );
    } else out.EnableTagOverride = value;
  }

  const weight = (key: string, min: number): number | null | undefined => {
    const raw = given(key);
    if (raw === undefined) return undefined;
    const n = /^\d{1,5}$/.test(raw) ? Number(raw) : NaN;
    if (n >= min && n <= WEIGHT_MAX) return n;
    warn(
      key,
      `${quote(raw, 60)} is not a whole number from ${min} to ${WEIGHT_MAX}; Weights were left out (Consul's default: passing 1, warning 1)`,
    );
    return null;
  };
  const passing = weight('weights_passing', 1);
  const warning = weight('weights_warning', 0);
  if (passing !== null && warning !== null && (passing !== undefined || warning !== undefined)) {
    // A Weights object replaces both of the agent's defaults: the one not given is sent as Consul's default.
    out.Weights = {
      Passing: passing ?? DEFAULT_WEIGHTS.Passing,
      Warning: warning ?? DEFAULT_WEIGHTS.Warning,
    };
  }
  return out;
}

/** Every `SERVICE_CHECK_<key>` the definition understands (lower case). */
export const KNOWN_OPTIONS: ReadonlySet<string> = new Set([
  'http',
  'https',
  'tcp',
  'grpc',
  'grpc_use_tls',
  'script',
  'cmd',
  'docker',
  'shell',
  'ttl',
  'interval',
  'timeout',
  'deregister_after',
  'initial_status',
  'tls_skip_verify',
  'method',
  'http_method',
]);

const label = (key: string): string => oneLine(`SERVICE_CHECK_${key.toUpperCase()}`, 120);

// `$SERVICE_IP` / `${SERVICE_IP}` and the same for PORT; `$SERVICE_IPV6` or `$SERVICE_NAME` are not ours.
const SERVICE_VAR = /\$(?:\{SERVICE_(IP|PORT)\}|SERVICE_(IP|PORT)(?![A-Za-z0-9_]))/g;
const FOLLOWED_BY_PORT = /^:(?:\d|\$\{?SERVICE_PORT)/;

/**
 * registrator's `$SERVICE_IP` and `$SERVICE_PORT` (also written `${SERVICE_IP}`), replaced by the registered
 * address and port; any other `$SERVICE_*` stays as written. An IPv6 address is bracketed where it forms a
 * host:port (`$SERVICE_IP:$SERVICE_PORT`, `$SERVICE_IP:8080`), unless the text already brackets it.
 */
export function substituteServiceVars(text: string, address: string, port: number): string {
  if (!text.includes('$')) return text;
  return text.replace(
    SERVICE_VAR,
    (match, braced: string | undefined, bare: string | undefined, at: number) => {
      if ((braced ?? bare) === 'PORT') return String(port);
      if (!address.includes(':')) return address;
      const after = text.slice(at + match.length);
      if (text[at - 1] === '[' && after.startsWith(']')) return address;
      return FOLLOWED_BY_PORT.test(after) ? `[${address}]` : address;
    },
  );
}

/** A program for SERVICE_CHECK_SHELL: one word of path characters, e.g. `/bin/bash` or `sh`. */
const SHELL_PATTERN = /^[A-Za-z0-9_./+-]{1,256}$/;

function parseBool(value: string): boolean | undefined {
  const v = value.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(v)) return true;
  if (['false', '0', 'no', 'off'].includes(v)) return false;
  return undefined;
}

/** registrator's SERVICE_CHECK_* conventions, each present kind becoming one Consul check. */
function buildExtraChecks(service: Service, warnings: DefinitionWarning[]): ConsulCheck[] {
  const opts = service.checks;
  if (Object.keys(opts).length === 0) return [];
  const warn = (key: string, message: string): void =>
    void warnings.push({ key: label(key), field: 'check', message });
  for (const key of Object.keys(opts)) {
    if (!KNOWN_OPTIONS.has(key)) {
      warn(key, `unknown check option (known: ${[...KNOWN_OPTIONS].map(label).join(', ')}); ignored`);
    }
  }

  const duration = (key: string, what: string): string | null | undefined => {
    const raw = opts[key]?.trim();
    if (raw === undefined || raw === '') return undefined;
    let ms = 0;
    try {
      ms = parseGoDuration(raw);
    } catch {
      // ms stays 0: warned about below.
    }
    if (!(ms > 0)) {
      warn(key, `${quote(raw, 60)} is not a positive Go duration such as 10s or 1m30s; ${what} skipped`);
      return null;
    }
    return raw;
  };
  const flag = (key: string, what: string): boolean | null | undefined => {
    const raw = opts[key];
    if (raw === undefined || raw.trim() === '') return undefined;
    const value = parseBool(raw);
    if (value === undefined) {
      warn(key, `${quote(raw, 60)} is not a boolean (true/false); ${what} skipped`);
      return null;
    }
    return value;
  };

  // Options shared by every kind: a bad one skips all the checks it applies to.
  const deregister = duration('deregister_after', 'the container checks were');
  const initialRaw = opts.initial_status?.trim();
  let initial: HealthStatus | null | undefined;
  if (initialRaw) {
    if (['passing', 'warning', 'critical'].includes(initialRaw)) initial = initialRaw as HealthStatus;
    else {
      warn(
        'initial_status',
        `${quote(initialRaw, 60)} is not one of passing, warning, critical; the container checks were skipped`,
      );
      initial = null;
    }
  }
  if (deregister === null || initial === null) return [];
  const interval = duration('interval', 'the interval checks were');
  const timeout = duration('timeout', 'the interval checks were');
  const intervalOk = interval !== null && timeout !== null;

  const hostPort = formatHostPort({ host: service.address, port: service.port });
  const common = (kind: string): ConsulCheck => ({
    Name: `${service.name} ${kind} check`,
    Notes: service.container
      ? `From ${label(kind)} on container ${service.container.name}`
      : `From the ${kind} check registrar was given`,
    ...(initial && { Status: initial }),
    ...(deregister && { DeregisterCriticalServiceAfter: deregister }),
  });
  const timed = (kind: string, check: Partial<ConsulCheck>): ConsulCheck => ({
    ...common(kind),
    ...check,
    Interval: interval ?? '10s',
    ...(timeout && { Timeout: timeout }),
  });
  const checks: ConsulCheck[] = [];
  // The interval/timeout warning already said these were skipped.
  const needsInterval = (_kind: string): boolean => intervalOk;

  const sub = (text: string): string => substituteServiceVars(text, service.address, service.port);
  for (const scheme of ['http', 'https'] as const) {
    const raw = opts[scheme]?.trim();
    if (!raw) continue;
    const path = sub(raw);
    const method = (opts.method ?? opts.http_method)?.trim();
    const methodKey = opts.method !== undefined ? 'method' : 'http_method';
    const skipVerify = flag('tls_skip_verify', `the ${scheme} check was`);
    if (method !== undefined && method !== '' && !/^[A-Za-z]+$/.test(method)) {
      warn(methodKey, `${quote(method, 60)} is not an HTTP method; the ${scheme} check was skipped`);
      continue;
    }
    if (skipVerify === null) continue;
    let url: string;
    try {
      url = new URL(`${scheme}://${hostPort}${path.startsWith('/') ? path : `/${path}`}`).toString();
    } catch {
      warn(scheme, `${quote(raw, 60)} is not a URL path; the ${scheme} check was skipped`);
      continue;
    }
    if (!needsInterval(scheme)) continue;
    checks.push(
      timed(scheme, {
        HTTP: url,
        ...(method && { Method: method.toUpperCase() }),
        ...(skipVerify !== undefined && { TLSSkipVerify: skipVerify }),
      }),
    );
  }

  const target = (key: 'tcp' | 'grpc', pattern: RegExp): string | undefined => {
    const raw = opts[key]?.trim();
    if (!raw) return undefined;
    const on = parseBool(raw);
    if (on === true) return hostPort;
    if (on === false) return undefined;
    const value = sub(raw);
    if (pattern.test(value)) return value;
    warn(key, `${quote(raw, 60)} is neither true/false nor host:port; the ${key} check was skipped`);
    return undefined;
  };
  const tcp = target('tcp', /^(\[[0-9a-fA-F:.]+\]|[^\s:/[\]]+):\d{1,5}$/);
  if (tcp && needsInterval('tcp')) checks.push(timed('tcp', { TCP: tcp }));
  const grpc = target('grpc', /^(\[[0-9a-fA-F:.]+\]|[^\s:/[\]]+):\d{1,5}(\/\S+)?$/);
  const grpcTls = flag('grpc_use_tls', 'the grpc check was');
  if (grpc && grpcTls !== null && needsInterval('grpc')) {
    checks.push(timed('grpc', { GRPC: grpc, ...(grpcTls !== undefined && { GRPCUseTLS: grpcTls }) }));
  }

  const script = opts.script?.trim();
  if (script && needsInterval('script')) {
    checks.push(timed('script', { Args: ['/bin/sh', '-c', sub(script)] }));
  }
  // Consul's Docker check runs its Args inside the container (and ignores Shell when Args are given, so a
  // shell is put in front of the command instead).
  const cmd = opts.cmd?.trim();
  const docker = opts.docker?.trim();
  let shell: string | null | undefined;
  const shellRaw = opts.shell?.trim();
  if ((cmd || docker) && shellRaw) {
    if (SHELL_PATTERN.test(shellRaw)) shell = shellRaw;
    else {
      const skipped =
        cmd && docker ? 'the cmd and docker checks were' : `the ${cmd ? 'cmd' : 'docker'} check was`;
      warn('shell', `${quote(shellRaw, 60)} is not one program path such as /bin/bash; ${skipped} skipped`);
      shell = null;
    }
  }
  const container = service.container;
  if (cmd && shell !== null && container && needsInterval('cmd')) {
    // What registrator's check_cmd meant: the command, through a shell, in the container.
    const sh = shell ?? '/bin/sh';
    checks.push(timed('cmd', { DockerContainerID: container.id, Shell: sh, Args: [sh, '-c', sub(cmd)] }));
  }
  if (docker && shell !== null && container && needsInterval('docker')) {
    const command = sub(docker);
    const words = command.split(/\s+/).filter((w) => w !== '');
    if (words.length > 0) {
      checks.push(
        timed('docker', {
          DockerContainerID: container.id,
          ...(shell ? { Shell: shell, Args: [shell, '-c', command] } : { Args: words }),
        }),
      );
    }
  }
  const ttl = duration('ttl', 'the ttl check was');
  if (ttl) checks.push({ ...common('ttl'), TTL: ttl });
  return checks;
}
