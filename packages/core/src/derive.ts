/**
 * Service derivation: from one `docker inspect` to the services the container offers (DESIGN §2).
 *
 * Pure and total. The inspect is read as untrusted data (any field may be missing, null or of the wrong type),
 * and anything unexpected becomes a warning rather than an exception.
 *
 * Decisions beyond the design notes:
 * - Published ports bound to a wildcard (`0.0.0.0`, `::` or empty) are advertised at `--ip`. Without `--ip`
 *   they are skipped with one warning per container: the container's bridge IP with the host port would be a
 *   wrong endpoint, and advertising `0.0.0.0` (registrator) is useless to clients. Ports bound to a specific
 *   host IP are advertised at that IP unless `--ip` overrides it.
 * - Docker 20.10 publishes one binding for IPv4 and one for IPv6 (`0.0.0.0` and `::`), sometimes on different
 *   host ports. They are one publish request: when both exist, only the one matching `--ip`'s address family
 *   is kept. Remaining bindings become one service per distinct (address, host port).
 * - Network choice (`--internal`, host-less fallbacks): `SERVICE_NETWORK` > `--network` > the network the
 *   container was started on (`HostConfig.NetworkMode`, `default` meaning `bridge`) > the only network >
 *   user-defined networks by name, then `bridge`. Only networks with an address count; IPv4 is preferred,
 *   `GlobalIPv6Address` is used on IPv6-only networks. Never random.
 * - IDs are `<node-id>:<segment>:<port>[:<hostPort>][:udp]`. The segment is the container name, or the value of
 *   `SERVICE_<port>_ID` / `SERVICE_ID` (registrator compatibility) which replaces the container name but keeps
 *   the node prefix (ownership) and the port suffix (uniqueness inside the container). `:<hostPort>` is
 *   appended only for the second and later bindings of the same container port.
 * - `--explicit` is applied per port (as registrator does): a port is registered only when `SERVICE_NAME` or a
 *   `SERVICE_<port>[_<proto>]_NAME` names it, so a container naming nothing is skipped entirely.
 */
import { isIP } from 'node:net';
import type { ContainerInspectInfo } from 'dockerode';
import type { PortSettings, ServiceLabels } from './labels.js';
import {
  MAX_SERVICE_NAME_LENGTH,
  capWarnings,
  isValidServiceName,
  labelWarning,
  parseServiceLabels,
  settingsFor,
} from './labels.js';
import { quote } from './text.js';
import type { HealthStatus, LabelWarning, Protocol, Service } from './service.js';

/** Bridge-wide options that shape derivation (the CLI flags of DESIGN §2). */
export interface DeriveOptions {
  readonly nodeId: string;
  /** `--ip`: address advertised for published ports instead of the binding's host IP. */
  readonly hostIp?: string;
  /** `--internal`: advertise the container's own IP and exposed port. */
  readonly internal: boolean;
  /** `--network`: which container network's IP to use (`SERVICE_NETWORK` on the container wins). */
  readonly network?: string;
  /** `--tags`: added to every service. */
  readonly tags: readonly string[];
  /** `--explicit`: only containers that name a service (`SERVICE_NAME` or `SERVICE_<port>_NAME`). */
  readonly explicit: boolean;
}

export interface Derivation {
  readonly services: Service[];
  readonly warnings: LabelWarning[];
}

/** Compose v1 and v2 both set this label on every service container. */
export const COMPOSE_SERVICE_LABEL = 'com.docker.compose.service';

/** Probe output kept for a failing health check; Docker keeps up to 4 KiB per probe. */
const MAX_HEALTH_OUTPUT = 1024;

type Obj = Record<string, unknown>;

function obj(value: unknown): Obj {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Obj) : {};
}

function str(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

interface PortKey {
  readonly port: number;
  readonly protocol: Protocol;
}

interface Endpoint {
  readonly address: string;
  readonly hostPort: number;
}

interface Target extends PortKey {
  readonly endpoints: readonly Endpoint[];
  readonly settings: PortSettings;
}

interface NetworkAddress {
  readonly name: string;
  readonly address: string;
}

interface Liveness {
  readonly health: HealthStatus;
  readonly output: string;
}

/** Docker's own rule for container names (daemon/names.RestrictedNamePattern). */
const CONTAINER_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,252}$/;

/**
 * Container name without Docker's leading slash; the short id when the name is missing or not one Docker
 * would give (it becomes part of service IDs and log lines); `unknown` when neither is usable.
 */
export function containerName(container: ContainerInspectInfo): string {
  const c = obj(container);
  const name = str(c['Name']).replace(/^\/+/, '');
  if (CONTAINER_NAME.test(name)) return name;
  const id = str(c['Id']).slice(0, 12);
  return /^[0-9a-f]{12}$/i.test(id) ? id : 'unknown';
}

/**
 * The image's base name: no registry, path, tag or digest, lower-cased (`registry:5000/team/App:1.2@sha256:…`
 * → `app`). Undefined when the reference is an image id (`sha256:…`, or a hex prefix of `imageId`, which is
 * what `docker run <id>` leaves in `Config.Image`) or yields no usable service name.
 */
export function imageBaseName(image: string, imageId = ''): string | undefined {
  let ref = image.trim();
  if (/^[a-z0-9]+:[0-9a-f]{32,}$/i.test(ref)) return undefined;
  const at = ref.indexOf('@');
  if (at >= 0) ref = ref.slice(0, at);
  ref = ref.slice(ref.lastIndexOf('/') + 1);
  const colon = ref.indexOf(':');
  if (colon >= 0) ref = ref.slice(0, colon);
  ref = ref.toLowerCase();
  const idHex = imageId.replace(/^[a-z0-9]+:/i, '').toLowerCase();
  if (/^[0-9a-f]{12,64}$/.test(ref) && idHex.startsWith(ref)) return undefined;
  return isValidServiceName(ref) ? ref : undefined;
}

function cap(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 3)}...`;
}

/** How the container's state maps onto service health; undefined when it offers no services at all. */
function containerLiveness(state: Obj): Liveness | undefined {
  if (state['Paused'] === true) return { health: 'critical', output: 'container paused' };
  if (state['Running'] !== true || state['Restarting'] === true) return undefined;
  if (state['Health'] === undefined || state['Health'] === null) return { health: 'passing', output: '' };
  const health = obj(state['Health']);
  const log = Array.isArray(health['Log']) ? (health['Log'] as unknown[]) : [];
  const last = log.length > 0 ? obj(log[log.length - 1]) : {};
  const output = cap(str(last['Output']).trim(), MAX_HEALTH_OUTPUT);
  const status = str(health['Status']);
  switch (status) {
    case 'healthy':
    case 'none':
      return { health: 'passing', output: '' };
    case 'starting':
      return { health: 'warning', output: output || 'health check has not passed yet' };
    case 'unhealthy':
      return { health: 'critical', output: output || 'health check failing' };
    default:
      return { health: 'warning', output: `unknown health status ${JSON.stringify(cap(status, 40))}` };
  }
}

function parsePortNumber(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const n = Number(text);
  return n >= 1 && n <= 65535 ? n : undefined;
}

/** `"80/tcp"` → {80, tcp}. Protocols other than tcp/udp (sctp) are not registrable. */
function parsePortKey(key: string): PortKey | undefined {
  const m = /^(\d+)(?:\/(tcp|udp))?$/i.exec(key);
  if (m === null) return undefined;
  const port = parsePortNumber(m[1]);
  if (port === undefined) return undefined;
  return { port, protocol: m[2]?.toLowerCase() === 'udp' ? 'udp' : 'tcp' };
}

function portKeys(...maps: Obj[]): PortKey[] {
  const seen = new Map<string, PortKey>();
  for (const map of maps) {
    for (const key of Object.keys(map)) {
      const pk = parsePortKey(key);
      if (pk !== undefined) seen.set(`${pk.port}/${pk.protocol}`, pk);
    }
  }
  return [...seen.values()].sort(comparePorts);
}

function comparePorts(a: PortKey, b: PortKey): number {
  return a.port - b.port || (a.protocol === b.protocol ? 0 : a.protocol === 'tcp' ? -1 : 1);
}

function isWildcard(ip: string): boolean {
  return ip === '' || ip === '0.0.0.0' || ip === '::';
}

/**
 * Deduplicated and sorted by (address, host port): the engine's binding order is not the `-p` order and may
 * change between inspects, and the first endpoint is the one that gets the plain id.
 */
function distinctEndpoints(endpoints: Endpoint[]): Endpoint[] {
  const seen = new Set<string>();
  const sorted = [...endpoints].sort((a, b) =>
    a.address < b.address ? -1 : a.address > b.address ? 1 : a.hostPort - b.hostPort,
  );
  return sorted.filter((e) => {
    const key = `${e.address}|${e.hostPort}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/**
 * Endpoints of one published container port. Returns `wildcardSkipped` when a wildcard binding had to be
 * dropped for want of `--ip`.
 */
function publishedEndpoints(
  bindings: unknown[],
  hostIp: string | undefined,
): { endpoints: Endpoint[]; wildcardSkipped: boolean; invalid: string[] } {
  const invalid: string[] = [];
  let parsed = bindings.flatMap((b) => {
    const binding = obj(b);
    const hostPort = parsePortNumber(str(binding['HostPort']));
    if (hostPort === undefined) return [];
    const ip = str(binding['HostIp']);
    if (!isWildcard(ip) && isIP(ip) === 0) {
      invalid.push(ip);
      return [];
    }
    return [{ ip, hostPort }];
  });
  if (hostIp === undefined) {
    const specific = parsed.filter((b) => !isWildcard(b.ip));
    return {
      endpoints: distinctEndpoints(specific.map((b) => ({ address: b.ip, hostPort: b.hostPort }))),
      wildcardSkipped: specific.length < parsed.length,
      invalid,
    };
  }
  // The IPv4 and IPv6 wildcard bindings of one `-p` are a pair: keep the one --ip's family reaches.
  const hasV6Wildcard = parsed.some((b) => b.ip === '::');
  const hasV4Wildcard = parsed.some((b) => b.ip === '0.0.0.0' || b.ip === '');
  if (hasV4Wildcard && hasV6Wildcard) {
    const drop =
      isIP(hostIp) === 6 ? (ip: string) => ip === '0.0.0.0' || ip === '' : (ip: string) => ip === '::';
    parsed = parsed.filter((b) => !drop(b.ip));
  }
  return {
    endpoints: distinctEndpoints(parsed.map((b) => ({ address: hostIp, hostPort: b.hostPort }))),
    wildcardSkipped: false,
    invalid,
  };
}

function networkAddresses(networks: Obj): NetworkAddress[] {
  return Object.entries(networks).flatMap(([name, value]) => {
    const net = obj(value);
    const address = [str(net['IPAddress']), str(net['GlobalIPv6Address'])].find((a) => isIP(a) !== 0);
    return address === undefined ? [] : [{ name, address }];
  });
}

/** The deterministic network choice documented at the top of this file. */
function chooseNetwork(
  networks: readonly NetworkAddress[],
  networkMode: string,
  labelNetwork: string | undefined,
  optionNetwork: string | undefined,
  warn: (key: string, message: string) => void,
): NetworkAddress | undefined {
  const byName = (name: string | undefined): NetworkAddress | undefined =>
    name === undefined ? undefined : networks.find((n) => n.name === name);
  if (labelNetwork !== undefined) {
    const chosen = byName(labelNetwork);
    if (chosen !== undefined) return chosen;
    const names = networks.map((n) => n.name);
    const attached =
      names.length === 0
        ? 'none with an address'
        : names.length > 5
          ? `${names.slice(0, 5).join(', ')} and ${names.length - 5} more`
          : names.join(', ');
    warn(
      'SERVICE_NETWORK',
      `container has no address on network ${quote(labelNetwork, 60)} (attached: ${attached}); using the default choice`,
    );
  }
  const fromOption = byName(optionNetwork);
  if (fromOption !== undefined) return fromOption;
  const primary = byName(networkMode === 'default' ? 'bridge' : networkMode);
  if (primary !== undefined) return primary;
  return [...networks].sort((a, b) => {
    if ((a.name === 'bridge') !== (b.name === 'bridge')) return a.name === 'bridge' ? 1 : -1;
    return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
  })[0];
}

function defaultServiceName(c: Obj, config: Obj, name: string): string {
  const compose = str(obj(config['Labels'])[COMPOSE_SERVICE_LABEL]).trim();
  if (compose !== '' && isValidServiceName(compose)) return compose;
  // containerName() only returns names Docker would give, which are valid service names.
  return imageBaseName(str(config['Image']), str(c['Image'])) ?? name;
}

function dedupe(values: readonly string[]): string[] {
  return [...new Set(values.filter((v) => v !== ''))];
}

function serviceName(target: Target, targets: readonly Target[], fallback: string): string {
  const base = target.settings.name ?? fallback;
  if (target.settings.nameIsPortSpecific || targets.length < 2) return base;
  const tcpTwin =
    target.protocol === 'udp' && targets.some((t) => t.protocol === 'tcp' && t.port === target.port);
  const suffix = `-${target.port}${tcpTwin ? '-udp' : ''}`;
  // A name at the length limit loses its tail, not its validity.
  return `${base.slice(0, MAX_SERVICE_NAME_LENGTH - suffix.length)}${suffix}`;
}

/**
 * `<base>[:udp]` for a port's first endpoint; later endpoints of the same port get `:<hostPort>` (and an index
 * if even that repeats, e.g. the same host port on two host IPs).
 */
function uniqueId(used: Set<string>, base: string, index: number, hostPort: number, udp: boolean): string {
  const proto = udp ? ':udp' : '';
  const candidates = index === 0 ? [`${base}${proto}`] : [`${base}:${hostPort}${proto}`];
  candidates.push(`${base}:${hostPort}-${index}${proto}`);
  const id =
    candidates.find((candidate) => !used.has(candidate)) ??
    `${base}:${hostPort}-${index}-${used.size}${proto}`;
  used.add(id);
  return id;
}

interface Context {
  readonly c: Obj;
  readonly name: string;
  readonly options: DeriveOptions;
  readonly labels: ServiceLabels;
  readonly warn: (key: string, message: string) => void;
}

/** Container ports with the endpoints they are advertised at, before ignore/explicit filtering. */
function candidateTargets(ctx: Context): { port: PortKey; endpoints: Endpoint[] }[] {
  const { c, options, warn } = ctx;
  const config = obj(c['Config']);
  const settings = obj(c['NetworkSettings']);
  const published = obj(settings['Ports']);
  const exposed = obj(config['ExposedPorts']);
  const networkMode = str(obj(c['HostConfig'])['NetworkMode']);
  const network = chooseNetwork(
    networkAddresses(obj(settings['Networks'])),
    networkMode,
    ctx.labels.network,
    options.network,
    warn,
  );

  if (networkMode === 'host') {
    // No port mapping exists: the exposed ports are the host's ports.
    const ports = portKeys(exposed, published);
    if (options.hostIp === undefined) {
      if (ports.length > 0) warn('--ip', 'host-network container needs --ip to be advertised; skipped');
      return [];
    }
    const address = options.hostIp;
    return ports.map((port) => ({ port, endpoints: [{ address, hostPort: port.port }] }));
  }

  if (options.internal) {
    const ports = portKeys(exposed, published);
    if (network === undefined) {
      if (ports.length > 0) warn('--internal', 'container has no network address to advertise; skipped');
      return [];
    }
    return ports.map((port) => ({ port, endpoints: [{ address: network.address, hostPort: port.port }] }));
  }

  let wildcardSkipped = false;
  const targets = portKeys(published).flatMap((port) => {
    const bindings = published[`${port.port}/${port.protocol}`] ?? published[String(port.port)];
    if (!Array.isArray(bindings)) return [];
    const result = publishedEndpoints(bindings, options.hostIp);
    wildcardSkipped ||= result.wildcardSkipped;
    if (result.invalid.length > 0) {
      warn(
        `${port.port}/${port.protocol}`,
        `port binding host IP ${quote(result.invalid[0] ?? '', 60)} is not an IP address; binding skipped`,
      );
    }
    return result.endpoints.length > 0 ? [{ port, endpoints: result.endpoints }] : [];
  });
  if (wildcardSkipped) {
    warn('--ip', 'port published on all interfaces (0.0.0.0/::) cannot be advertised without --ip; skipped');
  }
  return targets;
}

function derive(container: ContainerInspectInfo, options: DeriveOptions, name: string): Derivation {
  const c = obj(container);
  const liveness = containerLiveness(obj(c['State']));
  if (liveness === undefined) return { services: [], warnings: [] };

  const config = obj(c['Config']);
  const parsed = parseServiceLabels(config['Labels'], config['Env'], name);
  const warnings = parsed.warnings;
  const warn = (key: string, message: string): void => {
    warnings.push(labelWarning(name, key, message));
  };
  const ctx: Context = { c, name, options, labels: parsed.labels, warn };

  const targets: Target[] = candidateTargets(ctx)
    .map(({ port, endpoints }) => ({
      ...port,
      endpoints,
      settings: settingsFor(parsed.labels, port.port, port.protocol),
    }))
    .filter((t) => !t.settings.ignore && (!options.explicit || t.settings.name !== undefined));

  const fallbackName = defaultServiceName(c, config, name);
  const containerRef = { id: str(c['Id']), name };
  const usedIds = new Set<string>();
  const services = targets.flatMap((target) => {
    const serviceNameValue = serviceName(target, targets, fallbackName);
    const udp = target.protocol === 'udp';
    const tags = dedupe([...options.tags, ...target.settings.tags, ...(udp ? ['udp'] : [])]);
    const base = `${options.nodeId}:${target.settings.id ?? name}:${target.port}`;
    return target.endpoints.map((endpoint, index): Service => ({
      id: uniqueId(usedIds, base, index, endpoint.hostPort, udp),
      name: serviceNameValue,
      address: endpoint.address,
      port: endpoint.hostPort,
      protocol: target.protocol,
      containerPort: target.port,
      tags,
      meta: target.settings.meta,
      node: options.nodeId,
      container: containerRef,
      health: liveness.health,
      healthOutput: liveness.output,
      checks: target.settings.checks,
    }));
  });
  return { services, warnings: capWarnings(warnings, name) };
}

/**
 * The services a container offers, with warnings about what it asked for. Never throws: an inspect that
 * cannot be read yields no services and one warning.
 */
export function deriveServices(container: ContainerInspectInfo, options: DeriveOptions): Derivation {
  let name = 'unknown';
  try {
    name = containerName(container);
    return derive(container, options, name);
  } catch (err) {
    const reason = describeError(err);
    return {
      services: [],
      warnings: [labelWarning(name, '(inspect)', `cannot derive services from inspect data: ${reason}`)],
    };
  }
}

function describeError(err: unknown): string {
  try {
    return err instanceof Error ? err.message : String(err);
  } catch {
    return 'unreadable error';
  }
}
