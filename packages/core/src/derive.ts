/**
 * Service derivation: from one `docker inspect` to the services the container offers (docs/layouts.md, the service model).
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
 *   `GlobalIPv6Address` is used on IPv6-only networks. Never random. On a dual-stack network the service
 *   records both (`Service.dualStack`), as it does for a port published on both wildcards with one `--ip`
 *   per family.
 * - IDs are `<node-id>:<segment>:<port>[:<hostPort>][:udp]`. The segment is the container name, or the value of
 *   `SERVICE_<port>_ID` / `SERVICE_ID` (registrator compatibility) which replaces the container name but keeps
 *   the node prefix (ownership) and the port suffix (uniqueness inside the container). `:<hostPort>` is
 *   appended only for the second and later bindings of the same container port.
 * - `--explicit` is applied per port (as registrator does): a port is registered only when `SERVICE_NAME` or a
 *   `SERVICE_<port>[_<proto>]_NAME` names it, so a container naming nothing is skipped entirely.
 * - Every port of a running container either yields services or a `skipped` entry saying why not (for
 *   `registrar explain`); a reason that concerns the whole container has no port. Label decisions
 *   (`SERVICE_IGNORE`, `--explicit`) are named before binding problems: they are what the container asked for.
 *   Health is not a skip: an unhealthy container still derives services, which each registry withholds or
 *   mirrors (see `Registry.mirrorsHealth`).
 * - Docker and Podman inspects are read alike (engine-inspect.ts says how they differ). A container that uses
 *   another's network (`--network container:<id>`, a Podman pod's member) yields no service (`shared-network`):
 *   the owner of the network publishes the ports and is registered; a pod through its infra container, named
 *   after the pod.
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
import { healthOf, podInfraName, sharedNetworkOwner } from './engine-inspect.js';
import { oneLine, quote } from './text.js';
import type { FamilyEndpoint, HealthStatus, LabelWarning, Protocol, Service } from './service.js';
import { obj, str, type Obj } from './untrusted.js';

/** Bridge-wide options that shape derivation (the CLI flags of docs/cli.md). */
export interface DeriveOptions {
  readonly nodeId: string;
  /** `--ip`: address advertised for published ports instead of the binding's host IP. */
  readonly hostIp?: string;
  /**
   * A second `--ip`, of the other family: with `hostIp` an IPv4 address, the IPv6 one. A port published on
   * both wildcards (`0.0.0.0` and `::`) is then advertised at both (`Service.dualStack`).
   */
  readonly hostIp6?: string;
  /** `--internal`: advertise the container's own IP and exposed port. */
  readonly internal: boolean;
  /** `--network`: which container network's IP to use (`SERVICE_NETWORK` on the container wins). */
  readonly network?: string;
  /** `--tags`: added to every service. */
  readonly tags: readonly string[];
  /** `--explicit`: only containers that name a service (`SERVICE_NAME` or `SERVICE_<port>_NAME`). */
  readonly explicit: boolean;
  /**
   * `--labels-only`: `SERVICE_*` settings are read from labels only, never from the environment, and a failing
   * health check's probe output is not recorded: what the container list carries, so a crowd of containers is
   * derived from one list instead of an inspect each (and alike from either).
   */
  readonly labelsOnly?: boolean;
}

/**
 * Why a port (or, without `port`, the whole container) yields no service. Stable, machine-readable codes:
 * `registrar explain` prints them and its JSON carries them.
 */
export type SkipReason =
  /** Exposed but not published (or, without `port`: the container has no port at all); not `--internal`. */
  | 'no-published-port'
  /** `--internal`, and the container exposes no port. */
  | 'no-exposed-port'
  /** Published on all interfaces (`0.0.0.0`/`::`) and no `--ip` to advertise instead. */
  | 'wildcard-without-ip'
  /** A host-network container's port: there is no binding, only `--ip` could say where it is. */
  | 'host-network-without-ip'
  /** `--internal`, and no network of the container has an address. */
  | 'no-network-address'
  /** The binding's host IP is not an IP address. */
  | 'invalid-binding'
  /** Neither tcp nor udp (sctp). */
  | 'unsupported-protocol'
  /** `SERVICE_IGNORE` or `SERVICE_<port>[_<proto>]_IGNORE`; `detail` names the key that decided. */
  | 'ignored'
  /** `--explicit`, and no `SERVICE_NAME` / `SERVICE_<port>_NAME` names this port. */
  | 'explicit-unnamed'
  /**
   * The container uses another container's network (`--network container:<id>`, or a Podman pod member): that
   * container publishes the ports, and it is the one registered (a pod: through its infra container).
   */
  | 'shared-network'
  /** The inspect document could not be read at all. */
  | 'unreadable-inspect';

/** Something derivation left out, and why. */
export interface Skip {
  /** The container port; absent when the reason concerns the whole container. */
  readonly port?: number;
  readonly protocol?: Protocol | 'sctp';
  readonly reason: SkipReason;
  /** One line saying exactly what (the key that decided, the binding that was refused). */
  readonly detail: string;
}

export interface Derivation {
  readonly services: Service[];
  readonly warnings: LabelWarning[];
  /**
   * What was left out and why: every port of the container that yields no service (a port may also appear
   * here beside its services, when one of its bindings was refused). At most `MAX_SKIPPED` entries, the rest
   * summed up per reason. Absent for a container that is not running: it offers nothing, so nothing was
   * skipped (`containerStateOf` says what it is doing).
   */
  readonly skipped?: Skip[];
}

/** `skipped` entries kept per container (a container may expose a range of thousands of ports). */
export const MAX_SKIPPED = 64;

/** Compose v1 and v2 both set this label on every service container. */
export const COMPOSE_SERVICE_LABEL = 'com.docker.compose.service';

/** Probe output kept for a failing health check; Docker keeps up to 4 KiB per probe. */
const MAX_HEALTH_OUTPUT = 1024;

interface PortKey {
  readonly port: number;
  readonly protocol: Protocol;
}

interface Endpoint {
  readonly address: string;
  readonly hostPort: number;
  /** The same service over IPv6, when `address` is its IPv4 endpoint on a dual-stack binding or network. */
  readonly ipv6?: FamilyEndpoint;
}

interface Target extends PortKey {
  readonly endpoints: readonly Endpoint[];
  readonly settings: PortSettings;
}

interface NetworkAddress {
  readonly name: string;
  /** IPv4 when the network gives one, else IPv6. */
  readonly address: string;
  /** On a dual-stack network: the IPv6 address beside the IPv4 `address`. */
  readonly ipv6?: string;
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
function containerLiveness(c: Obj, withOutput: boolean): Liveness | undefined {
  const state = obj(c['State']);
  if (state['Paused'] === true) return { health: 'critical', output: 'container paused' };
  if (state['Running'] !== true || state['Restarting'] === true) return undefined;
  const health = healthOf(c);
  if (health === undefined) return { health: 'passing', output: '' };
  const last = withOutput && health.log.length > 0 ? obj(health.log[health.log.length - 1]) : {};
  const output = cap(str(last['Output']).trim(), MAX_HEALTH_OUTPUT);
  const { status } = health;
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

/** What Docker says a container is doing, read from an inspect as untrusted data (for `registrar explain`). */
export interface ContainerState {
  /** Docker's `State.Status` (`running`, `paused`, `exited`, `restarting`, `created`, `dead`); may be empty. */
  readonly status: string;
  readonly running: boolean;
  readonly paused: boolean;
  /** `none` without a HEALTHCHECK; else Docker's `starting`, `healthy` or `unhealthy`. */
  readonly health: string;
  /** The last probe's output, trimmed and capped near 1 KiB; empty without a health check. */
  readonly healthOutput: string;
  /** Of a container that is not running. */
  readonly exitCode?: number;
}

export function containerStateOf(container: ContainerInspectInfo): ContainerState {
  try {
    const state = obj(obj(container)['State']);
    const running = state['Running'] === true && state['Restarting'] !== true;
    const paused = state['Paused'] === true;
    const health = healthOf(container);
    const log = health?.log ?? [];
    const last = log.length > 0 ? obj(log[log.length - 1]) : {};
    const exitCode = state['ExitCode'];
    return {
      status: oneLine(str(state['Status']), 40),
      running,
      paused,
      health: oneLine(health?.status ?? '', 40) || 'none',
      healthOutput: oneLine(
        cap(str(last['Output']).replace(/\s+/g, ' ').trim(), MAX_HEALTH_OUTPUT),
        2 * MAX_HEALTH_OUTPUT,
      ),
      ...(!running && typeof exitCode === 'number' && { exitCode }),
    };
  } catch {
    return { status: '', running: false, paused: false, health: 'none', healthOutput: '' };
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
    const key = `${e.address}|${e.hostPort}|${e.ipv6?.address ?? ''}|${e.ipv6?.port ?? ''}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

const isV4Wildcard = (ip: string) => ip === '0.0.0.0' || ip === '';
const byHostPort = (a: { hostPort: number }, b: { hostPort: number }) => a.hostPort - b.hostPort;

/**
 * Endpoints of one published container port. Returns `wildcardSkipped` when a wildcard binding had to be
 * dropped for want of `--ip`.
 */
function publishedEndpoints(
  bindings: unknown[],
  hostIp: string | undefined,
  hostIp6: string | undefined,
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
  if (hostIp6 !== undefined) {
    // One --ip per family: each binding is advertised at its family's, and the IPv4 and IPv6 wildcard
    // bindings of one `-p` (paired in host-port order) become one dual-stack service.
    const v4 = parsed.filter((b) => isV4Wildcard(b.ip)).sort(byHostPort);
    const v6 = parsed.filter((b) => b.ip === '::').sort(byHostPort);
    const pairs = Math.min(v4.length, v6.length);
    const endpoints: Endpoint[] = [];
    for (let i = 0; i < pairs; i++) {
      endpoints.push({
        address: hostIp,
        hostPort: v4[i].hostPort,
        ipv6: { address: hostIp6, port: v6[i].hostPort },
      });
    }
    const single = [...v4.slice(pairs), ...v6.slice(pairs), ...parsed.filter((b) => !isWildcard(b.ip))];
    for (const b of single) {
      const six = b.ip === '::' || isIP(b.ip) === 6;
      endpoints.push({ address: six ? hostIp6 : hostIp, hostPort: b.hostPort });
    }
    return { endpoints: distinctEndpoints(endpoints), wildcardSkipped: false, invalid };
  }
  // The IPv4 and IPv6 wildcard bindings of one `-p` are a pair: keep the one --ip's family reaches.
  const hasV6Wildcard = parsed.some((b) => b.ip === '::');
  const hasV4Wildcard = parsed.some((b) => isV4Wildcard(b.ip));
  if (hasV4Wildcard && hasV6Wildcard) {
    const drop = isIP(hostIp) === 6 ? isV4Wildcard : (ip: string) => ip === '::';
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
    const ipv4 = str(net['IPAddress']);
    const ipv6 = str(net['GlobalIPv6Address']);
    const has4 = isIP(ipv4) === 4;
    const has6 = isIP(ipv6) === 6;
    if (has4) return [{ name, address: ipv4, ...(has6 && { ipv6 }) }];
    return has6 ? [{ name, address: ipv6 }] : [];
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
  // A Podman pod's infra container stands for the pod: named after it, not after the pause image.
  const pod = podInfraName(c);
  if (pod !== undefined && isValidServiceName(pod)) return pod;
  // containerName() only returns names Docker would give, which are valid service names.
  return imageBaseName(str(config['Image']), str(c['Image'])) ?? name;
}

function dedupe(values: readonly string[]): string[] {
  return [...new Set(values.filter((v) => v !== ''))];
}

/** What naming a service needs of a port (the container's and Swarm mode's derivations share it). */
export interface NamedPort extends PortKey {
  readonly settings: PortSettings;
}

/**
 * The service name of one port: its own name, else the container's (or Swarm service's); with several
 * ports and no port-specific name, `<name>-<port>` (`-udp` beside a TCP twin).
 */
export function serviceName(target: NamedPort, targets: readonly NamedPort[], fallback: string): string {
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

interface Candidates {
  /** Container ports with the endpoints they are advertised at, before ignore/explicit filtering. */
  readonly targets: { port: PortKey; endpoints: Endpoint[] }[];
  /** Ports (or bindings of them) that cannot be advertised, and container-wide reasons (no `port`). */
  readonly dropped: Skip[];
}

const portText = (port: PortKey) => `${port.port}/${port.protocol}`;
const at = (port: PortKey) => ({ port: port.port, protocol: port.protocol });

/** `"132/sctp"` keys: Docker publishes them, no registry layout here has a protocol for them. */
function sctpPorts(...maps: Obj[]): number[] {
  const ports = new Set<number>();
  for (const map of maps) {
    for (const key of Object.keys(map)) {
      const m = /^(\d{1,5})\/sctp$/i.exec(key);
      const port = m === null ? undefined : parsePortNumber(m[1]);
      if (port !== undefined) ports.add(port);
    }
  }
  return [...ports].sort((a, b) => a - b);
}

function candidateTargets(ctx: Context): Candidates {
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
  const dropped: Skip[] = sctpPorts(exposed, published).map((port) => ({
    port,
    protocol: 'sctp',
    reason: 'unsupported-protocol',
    detail: `${port}/sctp: only tcp and udp ports are registered`,
  }));
  const allPorts = portKeys(exposed, published);

  const owner = sharedNetworkOwner(c);
  if (owner !== undefined) {
    const detail = `uses the network of container ${owner.slice(0, 12)} (a Podman pod's infra container, or --network container:…), which publishes the ports and is registered instead; label that container (a pod: podman pod create --label SERVICE_NAME=…)`;
    if (allPorts.length === 0) dropped.push({ reason: 'shared-network', detail });
    for (const port of allPorts)
      dropped.push({ ...at(port), reason: 'shared-network', detail: `${portText(port)}: ${detail}` });
    return { targets: [], dropped };
  }

  if (networkMode === 'host') {
    // No port mapping exists: the exposed ports are the host's ports.
    if (allPorts.length === 0) {
      dropped.push({ reason: 'no-exposed-port', detail: 'host-network container exposes no port' });
    }
    if (options.hostIp === undefined) {
      if (allPorts.length > 0) warn('--ip', 'host-network container needs --ip to be advertised; skipped');
      for (const port of allPorts) {
        dropped.push({
          ...at(port),
          reason: 'host-network-without-ip',
          detail: `host-network container: port ${portText(port)} is the host's own, and without --ip the bridge cannot say at which address`,
        });
      }
      return { targets: [], dropped };
    }
    const address = options.hostIp;
    return {
      targets: allPorts.map((port) => ({ port, endpoints: [{ address, hostPort: port.port }] })),
      dropped,
    };
  }

  if (options.internal) {
    if (allPorts.length === 0) {
      dropped.push({ reason: 'no-exposed-port', detail: '--internal: the container exposes no port' });
    }
    if (network === undefined) {
      if (allPorts.length > 0) warn('--internal', 'container has no network address to advertise; skipped');
      for (const port of allPorts) {
        dropped.push({
          ...at(port),
          reason: 'no-network-address',
          detail: `--internal: no network of the container has an address to advertise ${portText(port)} at`,
        });
      }
      return { targets: [], dropped };
    }
    return {
      targets: allPorts.map((port) => ({
        port,
        endpoints: [
          {
            address: network.address,
            hostPort: port.port,
            ...(network.ipv6 !== undefined && { ipv6: { address: network.ipv6, port: port.port } }),
          },
        ],
      })),
      dropped,
    };
  }

  if (allPorts.length === 0) {
    dropped.push({ reason: 'no-published-port', detail: 'the container exposes and publishes no port' });
  }
  let wildcardSkipped = false;
  const targets = allPorts.flatMap((port) => {
    const bindings = published[`${port.port}/${port.protocol}`] ?? published[String(port.port)];
    if (!Array.isArray(bindings) || bindings.length === 0) {
      dropped.push({
        ...at(port),
        reason: 'no-published-port',
        detail: `${portText(port)} is exposed but not published (publish it with -p, or run the bridge with --internal)`,
      });
      return [];
    }
    const result = publishedEndpoints(bindings, options.hostIp, options.hostIp6);
    wildcardSkipped ||= result.wildcardSkipped;
    const others = result.endpoints.length > 0 ? '; its other bindings are advertised' : '';
    if (result.invalid.length > 0) {
      const ip = quote(result.invalid[0] ?? '', 60);
      warn(portText(port), `port binding host IP ${ip} is not an IP address; binding skipped`);
      dropped.push({
        ...at(port),
        reason: 'invalid-binding',
        detail: `${portText(port)}: binding host IP ${ip} is not an IP address${others}`,
      });
    }
    if (result.wildcardSkipped) {
      dropped.push({
        ...at(port),
        reason: 'wildcard-without-ip',
        detail: `${portText(port)} is published on all interfaces (0.0.0.0/::) and the bridge has no --ip to advertise instead${others}`,
      });
    }
    if (result.endpoints.length === 0 && result.invalid.length === 0 && !result.wildcardSkipped) {
      dropped.push({
        ...at(port),
        reason: 'no-published-port',
        detail: `${portText(port)} has no binding with a host port`,
      });
    }
    return result.endpoints.length > 0 ? [{ port, endpoints: result.endpoints }] : [];
  });
  if (wildcardSkipped) {
    warn('--ip', 'port published on all interfaces (0.0.0.0/::) cannot be advertised without --ip; skipped');
  }
  return { targets, dropped };
}

/** The label that made `settingsFor` ignore a port: the most specific one that says anything. */
function ignoreKey(labels: ServiceLabels, port: PortKey): string {
  if (labels.ports.get(portText(port))?.ignore !== undefined)
    return `SERVICE_${port.port}_${port.protocol.toUpperCase()}_IGNORE`;
  if (labels.ports.get(String(port.port))?.ignore !== undefined) return `SERVICE_${port.port}_IGNORE`;
  return 'SERVICE_IGNORE';
}

/** Keep the first `MAX_SKIPPED - 1` entries and sum up the rest, one entry per reason. */
function capSkipped(skipped: Skip[]): Skip[] {
  if (skipped.length <= MAX_SKIPPED) return skipped;
  const kept = skipped.slice(0, MAX_SKIPPED - 1);
  const rest = new Map<SkipReason, number>();
  for (const s of skipped.slice(kept.length)) rest.set(s.reason, (rest.get(s.reason) ?? 0) + 1);
  for (const [reason, count] of rest)
    kept.push({ reason, detail: `and ${count} more ports skipped for this reason` });
  return kept;
}

function derive(container: ContainerInspectInfo, options: DeriveOptions, name: string): Derivation {
  const c = obj(container);
  const liveness = containerLiveness(c, options.labelsOnly !== true);
  if (liveness === undefined) return { services: [], warnings: [] };

  const config = obj(c['Config']);
  const parsed = parseServiceLabels(config['Labels'], options.labelsOnly ? [] : config['Env'], name);
  const warnings = parsed.warnings;
  const warn = (key: string, message: string): void => {
    warnings.push(labelWarning(name, key, message));
  };
  const ctx: Context = { c, name, options, labels: parsed.labels, warn };

  const { targets: candidates, dropped } = candidateTargets(ctx);
  const skipped: Skip[] = dropped.filter((d) => d.port === undefined);
  const ports = new Map<string, PortKey>(candidates.map((t) => [portText(t.port), t.port]));
  // Grouped by port: a container may expose thousands of ports, this stays linear.
  const dropsOf = new Map<string, Skip[]>();
  for (const d of dropped) {
    if (d.port === undefined || d.protocol === undefined || d.protocol === 'sctp') continue;
    const port = { port: d.port, protocol: d.protocol };
    ports.set(portText(port), port);
    dropsOf.set(portText(port), [...(dropsOf.get(portText(port)) ?? []), d]);
  }
  const endpointsOf = new Map(candidates.map((t) => [portText(t.port), t.endpoints]));
  const targets: Target[] = [];
  for (const port of [...ports.values()].sort(comparePorts)) {
    const settings = settingsFor(parsed.labels, port.port, port.protocol);
    if (settings.ignore) {
      skipped.push({ ...at(port), reason: 'ignored', detail: `${ignoreKey(parsed.labels, port)} is set` });
      continue;
    }
    if (options.explicit && settings.name === undefined) {
      skipped.push({
        ...at(port),
        reason: 'explicit-unnamed',
        detail: `--explicit, and neither SERVICE_NAME nor SERVICE_${port.port}_NAME names ${portText(port)}`,
      });
      continue;
    }
    skipped.push(...(dropsOf.get(portText(port)) ?? []));
    const endpoints = endpointsOf.get(portText(port));
    if (endpoints !== undefined) targets.push({ ...port, endpoints, settings });
  }
  skipped.push(...dropped.filter((d) => d.protocol === 'sctp'));

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
      ...(endpoint.ipv6 !== undefined && {
        dualStack: { ipv4: { address: endpoint.address, port: endpoint.hostPort }, ipv6: endpoint.ipv6 },
      }),
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
  return { services, warnings: capWarnings(warnings, name), skipped: capSkipped(skipped) };
}

/**
 * The services a container offers, with warnings about what it asked for and what it left out. Never throws:
 * an inspect that cannot be read yields no services and one warning.
 */
export function deriveServices(container: ContainerInspectInfo, options: DeriveOptions): Derivation {
  let name = 'unknown';
  try {
    name = containerName(container);
    return derive(container, options, name);
  } catch (err) {
    const reason = describeError(err);
    const message = `cannot derive services from inspect data: ${reason}`;
    return {
      services: [],
      warnings: [labelWarning(name, '(inspect)', message)],
      skipped: [{ reason: 'unreadable-inspect', detail: oneLine(message, 400) }],
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
