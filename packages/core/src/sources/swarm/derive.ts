/**
 * Swarm derivation: from what a manager's API lists (services, tasks, nodes, networks) to the services the
 * cluster offers, in one of three modes. Pure and total, like `deriveServices`: every document is untrusted
 * data, and anything unexpected becomes a warning or a skip, never an exception.
 *
 * Decisions (README "Swarm mode" says the same for users):
 * - Labels: `SERVICE_*` keys are read from the service (`Spec.Labels`, a stack's `deploy.labels`), from its
 *   containers (`Spec.TaskTemplate.ContainerSpec.Labels`) and their environment; for the same key the
 *   service's label wins over the container's, which wins over the environment.
 * - Ports: the service's target ports (its endpoint's published ports) and every port a `SERVICE_<port>_*`
 *   key names, so a service publishing nothing can still say which port it serves (`SERVICE_8080_NAME=api`).
 *   The image's `EXPOSE` is not visible from a manager.
 * - Name: port-specific name > `SERVICE_NAME` > the Swarm service name, without its stack's `<stack>_`
 *   prefix (`com.docker.stack.namespace`), as Compose's service label names a container's service without
 *   its project. Several ports and no port-specific name: `<name>-<port>`.
 * - IDs: `<node-id>:<base>.<slot|node-id>.<task-id>:<port>[:udp]` for a task (the name Docker gives the
 *   task's container), `<node-id>:<base>:<port>[:udp]` for a VIP, `<node-id>:<base>.<swarm-node-id>:<port>`
 *   for a node of the routing mesh; `<base>` is the full Swarm service name (unique in the cluster), or the
 *   `SERVICE_ID` label. A task's id lives as long as the task; a rolling update makes new tasks, new ids.
 * - Health: a task is served while Swarm says it is running and wants it running. Swarm sets a task with a
 *   HEALTHCHECK `running` only once the check has passed, and fails and replaces a task whose container
 *   turns unhealthy, so this is the task's health; the container's own health status lives on its node's
 *   engine, which a manager cannot ask. A task on a node that is not `ready` is not served. VIPs and mesh
 *   ports are served while at least one task is.
 * - Network (tasks, vip): `SERVICE_NETWORK` > `--network` > the service's only network > its networks by name.
 *   Swarm's `ingress` network never counts: clients outside the mesh cannot use its addresses.
 */
import { isIP } from 'node:net';
import { serviceName } from '../../derive.js';
import {
  capWarnings,
  isValidServiceName,
  labelWarning,
  parseServiceLabels,
  settingsFor,
} from '../../labels.js';
import type { PortSettings, ServiceLabels } from '../../labels.js';
import type { LabelWarning, Protocol, Service } from '../../service.js';
import { quote } from '../../text.js';
import { arr, obj, str, type Obj } from '../../untrusted.js';

export type SwarmMode = 'tasks' | 'vip' | 'ingress';
export const SWARM_MODES: readonly SwarmMode[] = ['tasks', 'vip', 'ingress'];

/** Set by `docker stack deploy` on every service of a stack. */
export const STACK_NAMESPACE_LABEL = 'com.docker.stack.namespace';

export interface SwarmDeriveOptions {
  /** Owner of every entry: the cluster's, not one host's (see the CLI's default). */
  readonly nodeId: string;
  readonly mode: SwarmMode;
  /** `--network`: which network's address to register (a service's `SERVICE_NETWORK` wins). */
  readonly network?: string;
  readonly tags: readonly string[];
  /** `--explicit`: only ports a `SERVICE_NAME` or `SERVICE_<port>_NAME` names. */
  readonly explicit: boolean;
}

/**
 * What a manager lists, as its API returns it (dockerode's `listServices`, `listTasks`, `listNodes`).
 * `networks` is optional: tasks name the networks they are attached to, which is all derivation needs, and
 * the read-only socket proxy (deploy/docker-socket-proxy) does not forward `/networks`.
 */
export interface SwarmSnapshot {
  readonly services: readonly unknown[];
  readonly tasks: readonly unknown[];
  readonly nodes: readonly unknown[];
  readonly networks?: readonly unknown[];
}

/** Why a port of a service (or, without `port`, the whole service) yields no entry. */
export type SwarmSkipReason =
  | 'no-port'
  | 'ignored'
  | 'explicit-unnamed'
  | 'no-network-address'
  | 'no-vip'
  | 'not-published'
  | 'no-running-task'
  | 'invalid-service';

export interface SwarmSkip {
  readonly port?: number;
  readonly protocol?: Protocol;
  readonly reason: SwarmSkipReason;
  readonly detail: string;
}

export interface SwarmDerivation {
  readonly services: Service[];
  readonly warnings: LabelWarning[];
  readonly skipped: SwarmSkip[];
}

/** The cluster's nodes and networks, parsed once per snapshot and shared by every service's derivation. */
export interface SwarmContext {
  /** Swarm node id → the address its routing mesh and host-mode ports answer at (ready nodes only). */
  readonly nodeAddresses: ReadonlyMap<string, string>;
  /** Network id → name. */
  readonly networkNames: ReadonlyMap<string, string>;
  /** Ids of Swarm's ingress network(s). */
  readonly ingressNetworks: ReadonlySet<string>;
}

const portNumber = (value: unknown): number | undefined =>
  typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 65535 ? value : undefined;
const protocolOf = (value: unknown): Protocol | undefined => {
  const p = str(value).toLowerCase() || 'tcp';
  return p === 'tcp' || p === 'udp' ? p : undefined;
};
/** `10.0.1.5/24` → `10.0.1.5`; undefined unless an IP address. */
const addressOf = (cidr: unknown): string | undefined => {
  const address = str(cidr).split('/')[0] ?? '';
  return isIP(address) !== 0 ? address : undefined;
};

/** Nodes and networks of a snapshot. */
export function swarmContext(nodes: readonly unknown[], networks: readonly unknown[] = []): SwarmContext {
  const nodeAddresses = new Map<string, string>();
  for (const raw of nodes) {
    const node = obj(raw);
    const status = obj(node['Status']);
    if (str(status['State']) !== 'ready') continue;
    // A manager may report 0.0.0.0 as its Status.Addr (an old engine bug); its Raft address is then the one.
    let address = addressOf(status['Addr']);
    if (address === undefined || address === '0.0.0.0') {
      const managerAddr = str(obj(node['ManagerStatus'])['Addr']);
      address = addressOf(managerAddr.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1'));
    }
    const id = str(node['ID']);
    if (id !== '' && address !== undefined && address !== '0.0.0.0') nodeAddresses.set(id, address);
  }
  const networkNames = new Map<string, string>();
  const ingressNetworks = new Set<string>();
  for (const raw of networks) {
    const network = obj(raw);
    const id = str(network['Id'] ?? network['ID']);
    if (id === '') continue;
    networkNames.set(id, str(network['Name']));
    if (network['Ingress'] === true) ingressNetworks.add(id);
  }
  return { nodeAddresses, networkNames, ingressNetworks };
}

/** The service id a task belongs to ('' when it says none). */
export const taskServiceId = (task: unknown): string => str(obj(task)['ServiceID']);
/** A Swarm service's id ('' when missing). */
export const swarmServiceId = (service: unknown): string => str(obj(service)['ID']);

/** Running, and meant to be: the only tasks that are served. */
export function isTaskServed(task: unknown): boolean {
  const t = obj(task);
  return str(t['DesiredState']) === 'running' && str(obj(t['Status'])['State']) === 'running';
}

interface PortKey {
  readonly port: number;
  readonly protocol: Protocol;
}
interface Published {
  readonly port: number;
  readonly mode: 'ingress' | 'host';
}
interface Target extends PortKey {
  readonly settings: PortSettings;
  readonly published: readonly Published[];
}

const portText = (p: PortKey) => `${p.port}/${p.protocol}`;

/** The service's ports: published ones (with how they are published) and those its labels name. */
function servicePorts(
  service: Obj,
  labels: ServiceLabels,
): Map<string, PortKey & { published: Published[] }> {
  const ports = new Map<string, PortKey & { published: Published[] }>();
  const add = (port: number, protocol: Protocol) => {
    const key = portText({ port, protocol });
    let entry = ports.get(key);
    if (entry === undefined) ports.set(key, (entry = { port, protocol, published: [] }));
    return entry;
  };
  const endpoint = obj(service['Endpoint']);
  // Endpoint.Ports is what Swarm allotted (a published port left out of the spec gets one); the spec's
  // own list stands in while the service has not been allotted yet.
  const declared = arr(endpoint['Ports']).length > 0 ? endpoint['Ports'] : obj(endpoint['Spec'])['Ports'];
  const specPorts = arr(obj(obj(service['Spec'])['EndpointSpec'])['Ports']);
  for (const raw of arr(declared).length > 0 ? arr(declared) : specPorts) {
    const p = obj(raw);
    const target = portNumber(p['TargetPort']);
    const protocol = protocolOf(p['Protocol']);
    if (target === undefined || protocol === undefined) continue;
    const entry = add(target, protocol);
    const published = portNumber(p['PublishedPort']);
    const mode = str(p['PublishMode']) === 'host' ? 'host' : 'ingress';
    if (published !== undefined && !entry.published.some((x) => x.port === published && x.mode === mode))
      entry.published.push({ port: published, mode });
  }
  for (const key of labels.ports.keys()) {
    const [portPart, protoPart] = key.split('/');
    const port = Number(portPart);
    if (protoPart === undefined) {
      // `SERVICE_80_NAME` names port 80 on tcp unless 80/udp is already known.
      if (!ports.has(`${port}/udp`)) add(port, 'tcp');
    } else add(port, protoPart as Protocol);
  }
  return ports;
}

/** `shop_web` of stack `shop` → `web`. */
function baseServiceName(name: string, spec: Obj): string {
  const stack = str(obj(spec['Labels'])[STACK_NAMESPACE_LABEL]);
  if (stack !== '' && name.startsWith(`${stack}_`) && name.length > stack.length + 1)
    return name.slice(stack.length + 1);
  return name;
}

/** The SERVICE_* settings of a service: its own labels over its containers' labels over their environment. */
function serviceLabels(spec: Obj, serviceName: string) {
  const containerSpec = obj(obj(spec['TaskTemplate'])['ContainerSpec']);
  const labels = { ...obj(containerSpec['Labels']), ...obj(spec['Labels']) };
  return parseServiceLabels(labels, containerSpec['Env'], serviceName);
}

/** The network to register addresses on, among `available` (names); never the ingress network. */
function chooseNetwork(
  available: readonly string[],
  labelNetwork: string | undefined,
  optionNetwork: string | undefined,
  warn: (key: string, message: string) => void,
): string | undefined {
  if (labelNetwork !== undefined) {
    if (available.includes(labelNetwork)) return labelNetwork;
    warn(
      'SERVICE_NETWORK',
      `service is not on network ${quote(labelNetwork, 60)} (on: ${available.join(', ') || 'none'}); using the default choice`,
    );
  }
  if (optionNetwork !== undefined && available.includes(optionNetwork)) return optionNetwork;
  return [...available].sort()[0];
}

/** Task name as Docker names its container: `<service>.<slot>.<task>` (replicated) or `.<node>.` (global). */
function taskSlot(task: Obj): string {
  const slot = task['Slot'];
  return typeof slot === 'number' && slot > 0 ? String(slot) : str(task['NodeID']) || 'unknown';
}

/** A task's address on each of its networks (ingress left out), by network name. */
function taskAddresses(task: Obj, context: SwarmContext): Map<string, string> {
  const addresses = new Map<string, string>();
  for (const raw of arr(task['NetworksAttachments'])) {
    const attachment = obj(raw);
    const network = obj(attachment['Network']);
    const id = str(network['ID']);
    if (context.ingressNetworks.has(id) || obj(network['Spec'])['Ingress'] === true) continue;
    const name = str(obj(network['Spec'])['Name']) || context.networkNames.get(id) || id;
    const address = arr(attachment['Addresses'])
      .map(addressOf)
      .find((a) => a !== undefined);
    if (name !== '' && address !== undefined && !addresses.has(name)) addresses.set(name, address);
  }
  return addresses;
}

/** The entries one Swarm service offers in `options.mode`, from its tasks (any state) and the cluster. */
export function deriveSwarmService(
  service: unknown,
  tasks: readonly unknown[],
  context: SwarmContext,
  options: SwarmDeriveOptions,
): SwarmDerivation {
  const s = obj(service);
  const spec = obj(s['Spec']);
  const serviceId = str(s['ID']);
  const swarmName = str(spec['Name']);
  const warnings: LabelWarning[] = [];
  const skipped: SwarmSkip[] = [];
  if (serviceId === '' || !isValidServiceName(swarmName)) {
    const message = `Swarm service ${quote(serviceId || '(no id)', 40)} has no usable name ${quote(swarmName, 60)}; skipped`;
    return {
      services: [],
      warnings: [labelWarning(swarmName || serviceId || 'unknown', '(service)', message)],
      skipped: [{ reason: 'invalid-service', detail: message }],
    };
  }
  const parsed = serviceLabels(spec, swarmName);
  warnings.push(...parsed.warnings);
  const warn = (key: string, message: string) => warnings.push(labelWarning(swarmName, key, message));
  const labels = parsed.labels;

  const ports = [...servicePorts(s, labels).values()].sort(
    (a, b) => a.port - b.port || (a.protocol === b.protocol ? 0 : a.protocol === 'tcp' ? -1 : 1),
  );
  if (ports.length === 0) {
    skipped.push({
      reason: 'no-port',
      detail: 'the service publishes no port and no SERVICE_<port>_* label names one (e.g. SERVICE_80_NAME)',
    });
  }
  const targets: Target[] = [];
  for (const port of ports) {
    const settings = settingsFor(labels, port.port, port.protocol);
    const at = { port: port.port, protocol: port.protocol };
    if (settings.ignore) {
      skipped.push({ ...at, reason: 'ignored', detail: `SERVICE_IGNORE applies to ${portText(port)}` });
      continue;
    }
    if (options.explicit && settings.name === undefined) {
      skipped.push({
        ...at,
        reason: 'explicit-unnamed',
        detail: `--explicit, and neither SERVICE_NAME nor SERVICE_${port.port}_NAME names ${portText(port)}`,
      });
      continue;
    }
    targets.push({ ...port, settings });
  }

  // A task on a node that is down is unreachable, though Swarm still lists it running until it reschedules.
  const running = tasks
    .map(obj)
    .filter((task) => isTaskServed(task) && context.nodeAddresses.has(str(task['NodeID'])));
  const fallbackName = baseServiceName(swarmName, spec);
  const services: Service[] = [];
  const make = (
    target: Target,
    id: string,
    address: string,
    port: number,
    container: { id: string; name: string },
  ): Service => {
    const udp = target.protocol === 'udp';
    return {
      id: `${options.nodeId}:${id}:${port}${udp ? ':udp' : ''}`,
      name: serviceName(target, targets, fallbackName),
      address,
      port,
      protocol: target.protocol,
      containerPort: target.port,
      tags: [...new Set([...options.tags, ...target.settings.tags, ...(udp ? ['udp'] : [])])].filter(
        (t) => t !== '',
      ),
      meta: target.settings.meta,
      node: options.nodeId,
      container,
      health: 'passing',
      healthOutput: '',
      checks: target.settings.checks,
    };
  };
  const idBase = (target: Target) => target.settings.id ?? swarmName;
  const taskRef = (task: Obj) => {
    const name = `${swarmName}.${taskSlot(task)}.${str(task['ID'])}`;
    return { id: str(task['ID']), name };
  };
  const noTask = (target: Target) =>
    skipped.push({
      port: target.port,
      protocol: target.protocol,
      reason: 'no-running-task',
      detail: `no task of the service is running; ${portText(target)} is registered again when one is`,
    });

  if (targets.length > 0 && options.mode === 'tasks') {
    const networksOf = running.map((task) => taskAddresses(task, context));
    const available = [...new Set(networksOf.flatMap((m) => [...m.keys()]))];
    const network = chooseNetwork(available, labels.network, options.network, warn);
    running.forEach((task, index) => {
      const address = network === undefined ? undefined : networksOf[index]?.get(network);
      if (address === undefined) return;
      const ref = taskRef(task);
      for (const target of targets) {
        const segment = `${idBase(target)}.${taskSlot(task)}.${ref.id}`;
        services.push(make(target, segment, address, target.port, ref));
      }
    });
    if (running.length > 0 && services.length === 0) {
      skipped.push({
        reason: 'no-network-address',
        detail:
          'no running task has an address on a network besides ingress: attach the service to an overlay network, or use --swarm-mode ingress',
      });
    }
    if (running.length === 0) targets.forEach(noTask);
  } else if (targets.length > 0 && options.mode === 'vip') {
    const endpoint = obj(s['Endpoint']);
    // A VIP names its network by id only; the service's running tasks say which name and whether ingress.
    const names = new Map(context.networkNames);
    const ingress = new Set(context.ingressNetworks);
    for (const task of running) {
      for (const raw of arr(task['NetworksAttachments'])) {
        const network = obj(obj(raw)['Network']);
        const id = str(network['ID']);
        const spec = obj(network['Spec']);
        if (id !== '' && str(spec['Name']) !== '') names.set(id, str(spec['Name']));
        if (id !== '' && spec['Ingress'] === true) ingress.add(id);
      }
    }
    const vips = new Map<string, string>();
    for (const raw of arr(endpoint['VirtualIPs'])) {
      const vip = obj(raw);
      const networkId = str(vip['NetworkID']);
      const address = addressOf(vip['Addr']);
      if (ingress.has(networkId) || address === undefined) continue;
      vips.set(names.get(networkId) || networkId, address);
    }
    const network = chooseNetwork([...vips.keys()], labels.network, options.network, warn);
    const address = network === undefined ? undefined : vips.get(network);
    if (address === undefined) {
      const dnsrr = str(obj(spec['EndpointSpec'])['Mode']) === 'dnsrr';
      skipped.push({
        reason: 'no-vip',
        detail: dnsrr
          ? 'the service uses DNS round robin (endpoint mode dnsrr) and has no virtual IP; use --swarm-mode tasks'
          : 'the service has no virtual IP on a network besides ingress',
      });
    } else if (running.length === 0) targets.forEach(noTask);
    else {
      for (const target of targets)
        services.push(make(target, idBase(target), address, target.port, { id: serviceId, name: swarmName }));
    }
  } else if (targets.length > 0) {
    for (const target of targets) {
      const mesh = target.published.filter((p) => p.mode === 'ingress');
      const hostMode = target.published.some((p) => p.mode === 'host');
      if (mesh.length === 0 && !hostMode) {
        skipped.push({
          port: target.port,
          protocol: target.protocol,
          reason: 'not-published',
          detail: `${portText(target)} is not published; --swarm-mode ingress registers published ports only`,
        });
        continue;
      }
      if (running.length === 0) {
        noTask(target);
        continue;
      }
      for (const published of mesh) {
        for (const [swarmNode, address] of [...context.nodeAddresses].sort(([a], [b]) => (a < b ? -1 : 1))) {
          const segment = `${idBase(target)}.${swarmNode}`;
          services.push(make(target, segment, address, published.port, { id: serviceId, name: swarmName }));
        }
      }
      if (!hostMode) continue;
      // Host mode: each task answers on its own node, at the port Swarm bound for it there.
      for (const task of running) {
        const address = context.nodeAddresses.get(str(task['NodeID']));
        if (address === undefined) continue;
        const bound = new Set<number>();
        for (const raw of arr(obj(obj(task['Status'])['PortStatus'])['Ports'])) {
          const p = obj(raw);
          const published = portNumber(p['PublishedPort']);
          if (
            str(p['PublishMode']) === 'host' &&
            portNumber(p['TargetPort']) === target.port &&
            protocolOf(p['Protocol']) === target.protocol &&
            published !== undefined
          )
            bound.add(published);
        }
        const ref = taskRef(task);
        for (const published of bound) {
          const segment = `${idBase(target)}.${taskSlot(task)}.${ref.id}`;
          services.push(make(target, segment, address, published, ref));
        }
      }
    }
  }
  return { services, warnings: capWarnings(warnings, swarmName), skipped };
}

/**
 * Every service of a snapshot, by Swarm service id, with its entries in `options.mode`. A service absent
 * from the snapshot (removed) is absent here: its entries go.
 */
export function deriveSwarmServices(
  snapshot: SwarmSnapshot,
  options: SwarmDeriveOptions,
): Map<string, SwarmDerivation> {
  const context = swarmContext(snapshot.nodes, snapshot.networks ?? []);
  const tasksOf = new Map<string, unknown[]>();
  for (const task of snapshot.tasks) {
    const id = taskServiceId(task);
    const list = tasksOf.get(id);
    if (list === undefined) tasksOf.set(id, [task]);
    else list.push(task);
  }
  const derived = new Map<string, SwarmDerivation>();
  for (const service of snapshot.services) {
    const id = swarmServiceId(service);
    derived.set(id, deriveSwarmService(service, tasksOf.get(id) ?? [], context, options));
  }
  return derived;
}
