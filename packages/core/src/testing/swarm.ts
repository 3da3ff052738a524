// The Swarm manager half of the synthetic engine (./engine.ts serves it on the same socket): a
// cluster of nodes, an overlay network, services and their tasks, answering `/services`, `/tasks`, `/nodes` and
// `/networks` the way a manager does, and emitting the `service` / `node` events Swarm emits. Swarm emits no
// task events: a task that changes state changes only what the next `/tasks` list says (plus, for a task on the
// manager's own node, the container event its engine emits). The documents are clones of the ones captured
// from a real two-node Swarm (packages/core/src/fixtures/swarm-snapshot.json), with ids, names, slots, nodes,
// states and addresses filled in.
import snapshot from '../fixtures/swarm-snapshot.json' with { type: 'json' };

type Obj = Record<string, unknown>;

const fixture = snapshot as unknown as {
  swarm: Obj;
  services: Obj[];
  tasks: Obj[];
  nodes: Obj[];
  networks: Obj[];
};
/** A replicated service published on the routing mesh and attached to an overlay network. */
const serviceTemplate = fixture.services.find((s) => (s.Spec as Obj).Name === 'shop_web')!;
const taskTemplate = fixture.tasks.find(
  (t) => t.ServiceID === serviceTemplate.ID && (t.Status as Obj).State === 'running',
)!;
const nodeTemplate = fixture.nodes.find((n) => n.ManagerStatus !== undefined)!;
const ingressTemplate = fixture.networks.find((n) => n.Ingress === true)!;
const overlayTemplate = fixture.networks.find((n) => n.Driver === 'overlay' && n.Ingress !== true)!;
const clone = <T>(value: T): T => structuredClone(value);

export type TaskState = 'new' | 'pending' | 'assigned' | 'preparing' | 'starting' | 'running' | 'shutdown';

export interface SwarmServiceSpec {
  /** The Swarm service's name (and so the registered name, unless labels say otherwise). */
  readonly name: string;
  readonly replicas: number;
  /** The container port; default 80. Published on the routing mesh at `publishedPort` (default 30000 + n). */
  readonly targetPort?: number;
  readonly publishedPort?: number;
  /** Service labels (`SERVICE_*`). */
  readonly labels?: Record<string, string>;
}

export interface SyntheticSwarmOptions {
  /** Nodes of the cluster; default 5. The first `managers` are managers. */
  readonly nodes?: number;
  /** Default 2, so two bridges can run on two managers of one cluster. */
  readonly managers?: number;
  /** The overlay network's name (`--network`); default `bench-overlay`. */
  readonly network?: string;
}

export interface SwarmRequestCounts {
  services: number;
  tasks: number;
  nodes: number;
  networks: number;
  /** performance.now() when the first list of every task (an inventory's) had been answered; 0 before. */
  firstInventoryAt: number;
}

/** What the engine's HTTP handler asks of the cluster, and what a benchmark drives. */
export interface SyntheticSwarm {
  readonly clusterId: string;
  readonly network: string;
  /** Node ids, managers first. */
  readonly nodeIds: readonly string[];
  readonly requests: SwarmRequestCounts;
  /** A service whose tasks all run already, without events (it was there before the bridge). */
  addService(spec: SwarmServiceSpec): string;
  /**
   * `docker service scale <id>=<replicas>`: the spec changes (a `service update` event), new tasks appear in
   * state `pending` on the nodes in turn (or surplus ones are told to shut down); returns the new tasks' ids.
   */
  scale(serviceId: string, replicas: number): string[];
  /** A task reaches `state` (without a Swarm event; a task on a manager's node gets its container event). */
  setTaskState(taskId: string, state: TaskState): void;
  /** A node goes `down` or is `ready` again: its tasks stop being served; a `node update` event. */
  setNodeState(index: number, state: 'ready' | 'down'): void;
  /** Tasks of a service Swarm wants running, by state. */
  taskStates(serviceId: string): Record<string, number>;
  /** Forget every service and task (no events). */
  clear(): void;
  /** The Swarm block of `/info` as the manager on node `managerIndex` reports it. */
  info(managerIndex: number): Obj;
  /** The host name of a node (a manager engine's `Name`). */
  hostname(index: number): string;
  /** Answer a Swarm API request, or return false when `path` is not one. */
  handle(
    method: string,
    path: string,
    query: URLSearchParams,
    reply: (status: number, body: string) => void,
  ): boolean;
}

/** A Swarm event (or a task container's event) for the engine to deliver; `line` is the serialised event. */
export interface SwarmEventSink {
  /** `manager`: only that manager's engine reports it (a container event of its own node). */
  (type: 'service' | 'node' | 'container', action: string, event: Obj, manager?: number): void;
}

interface Service {
  readonly id: string;
  doc: Obj;
  json: string | undefined;
  /** Task ids, by slot order. */
  readonly tasks: string[];
  nextSlot: number;
}

interface Task {
  readonly id: string;
  readonly serviceId: string;
  readonly nodeIndex: number;
  doc: Obj;
  json: string | undefined;
}

let clusterSerial = 0;

/**
 * A 25-character lowercase id as Swarm makes them, unique within the process: the kind, then the serial in
 * base 36 left-padded with zeros (padding with a letter would collide: base 36 has every letter).
 */
function swarmId(kind: string, serial: number): string {
  const id = `${kind}${serial.toString(36).padStart(25 - kind.length, '0')}`;
  if (id.length !== 25) throw new Error(`swarm id out of range: ${kind} ${serial}`);
  return id;
}

const timestamp = () => new Date().toISOString().replace('Z', '000000Z');

/** The k-th address of a /16 (skipping .0, .1 and .255 of each /24). */
const addressIn = (prefix: string, k: number, bits = '/16') =>
  `${prefix}.${Math.floor(k / 250)}.${(k % 250) + 2}${bits}`;

/** Values of one filter key; the API takes `{"key":["a"]}` as well as `{"key":{"a":true}}`. */
function filterValues(query: URLSearchParams, key: string): string[] | undefined {
  const raw = query.get('filters');
  if (raw === null || raw === '') return undefined;
  const parsed = JSON.parse(raw) as Record<string, string[] | Record<string, boolean>>;
  const value = parsed[key];
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value : Object.keys(value).filter((k) => value[k]);
}

export function createSyntheticSwarm(options: SyntheticSwarmOptions, emit: SwarmEventSink): SyntheticSwarm {
  clusterSerial += 1;
  const clusterId = swarmId(`cluster${clusterSerial}`, Date.now() % 1e6);
  const nodeCount = options.nodes ?? 5;
  const managers = Math.min(options.managers ?? 2, nodeCount);
  const network = options.network ?? 'bench-overlay';
  const overlayId = swarmId(`net${clusterSerial}o`, 1);
  const ingressId = swarmId(`net${clusterSerial}i`, 1);
  const requests: SwarmRequestCounts = {
    services: 0,
    tasks: 0,
    nodes: 0,
    networks: 0,
    firstInventoryAt: 0,
  };
  const services = new Map<string, Service>();
  const tasks = new Map<string, Task>();
  let serial = 0;
  let version = 100;
  let taskAddress = 0;

  const hostname = (i: number) => `bench-node-${i + 1}`;
  const nodeIds = Array.from({ length: nodeCount }, (_, i) => swarmId(`c${clusterSerial}node${i}`, i));
  const nodes = nodeIds.map((id, i) => {
    const node = clone(nodeTemplate);
    node.ID = id;
    (node.Description as Obj).Hostname = hostname(i);
    const address = `10.231.0.${11 + i}`;
    node.Status = { State: 'ready', Addr: address };
    (node.Spec as Obj).Role = i < managers ? 'manager' : 'worker';
    if (i < managers)
      node.ManagerStatus = { Leader: i === 0, Reachability: 'reachable', Addr: `${address}:2377` };
    else delete node.ManagerStatus;
    return node;
  });
  let nodesJson: string | undefined;

  const overlayNetwork = clone(overlayTemplate);
  overlayNetwork.Name = network;
  overlayNetwork.Id = overlayId;
  overlayNetwork.IPAM = {
    Driver: 'default',
    Options: null,
    Config: [{ Subnet: '10.232.0.0/16', Gateway: '10.232.0.1' }],
  };
  const ingressNetwork = clone(ingressTemplate);
  ingressNetwork.Id = ingressId;
  ingressNetwork.IPAM = {
    Driver: 'default',
    Options: null,
    Config: [{ Subnet: '10.255.0.0/16', Gateway: '10.255.0.1' }],
  };
  const otherNetworks = fixture.networks.filter((n) => n.Scope !== 'swarm');
  const networksJson = JSON.stringify([overlayNetwork, ingressNetwork, ...otherNetworks]);

  const serviceEvent = (service: Service, action: 'create' | 'update' | 'remove', attributes: Obj = {}) =>
    emit('service', action, {
      Type: 'service',
      Action: action,
      Actor: { ID: service.id, Attributes: { name: (service.doc.Spec as Obj).Name, ...attributes } },
      scope: 'swarm',
    });

  const buildService = (spec: SwarmServiceSpec, id: string, published: number, vipIndex: number): Obj => {
    const doc = clone(serviceTemplate);
    const now = timestamp();
    const targetPort = spec.targetPort ?? 80;
    const ports = [
      { Protocol: 'tcp', TargetPort: targetPort, PublishedPort: published, PublishMode: 'ingress' },
    ];
    doc.ID = id;
    doc.Version = { Index: (version += 1) };
    doc.CreatedAt = now;
    doc.UpdatedAt = now;
    const s = doc.Spec as Obj;
    s.Name = spec.name;
    s.Labels = { ...spec.labels };
    const template = s.TaskTemplate as Obj;
    const containerSpec = template.ContainerSpec as Obj;
    containerSpec.Labels = {};
    containerSpec.Command = ['httpd', '-f', '-p', String(targetPort), '-h', '/'];
    template.Networks = [{ Target: overlayId }];
    s.Mode = { Replicated: { Replicas: spec.replicas } };
    s.EndpointSpec = { Mode: 'vip', Ports: ports };
    doc.Endpoint = {
      Spec: { Mode: 'vip', Ports: ports },
      Ports: ports,
      VirtualIPs: [
        { NetworkID: ingressId, Addr: addressIn('10.255', 60_000 + vipIndex) },
        { NetworkID: overlayId, Addr: addressIn('10.232', 60_000 + vipIndex) },
      ],
    };
    return doc;
  };

  const createTask = (service: Service, state: TaskState): Task => {
    serial += 1;
    const slot = service.nextSlot++;
    const nodeIndex = (slot - 1) % nodeCount;
    const id = swarmId(`c${clusterSerial}t`, serial);
    const doc = clone(taskTemplate);
    const now = timestamp();
    const spec = clone((service.doc.Spec as Obj).TaskTemplate as Obj);
    delete spec.Runtime;
    const k = taskAddress++;
    Object.assign(doc, {
      ID: id,
      Version: { Index: (version += 1) },
      CreatedAt: now,
      UpdatedAt: now,
      Labels: {},
      Spec: spec,
      ServiceID: service.id,
      Slot: slot,
      NodeID: nodeIds[nodeIndex],
      DesiredState: 'running',
      NetworksAttachments: [
        { Network: { ...ingressNetworkAttachment(), ID: ingressId }, Addresses: [addressIn('10.255', k)] },
        { Network: { ...overlayNetworkAttachment(), ID: overlayId }, Addresses: [addressIn('10.232', k)] },
      ],
    });
    const task: Task = { id, serviceId: service.id, nodeIndex, doc, json: undefined };
    setStatus(task, state);
    if (tasks.has(id)) throw new Error(`duplicate task id ${id}`);
    tasks.set(id, task);
    service.tasks.push(id);
    return task;
  };

  // The attachment's network documents as a task carries them (a copy of the network object per task).
  const attachmentTemplates = taskTemplate.NetworksAttachments as { Network: Obj }[];
  const ingressAttachment = attachmentTemplates.find(
    (a) => (a.Network.Spec as Obj).Ingress === true,
  )!.Network;
  const overlayAttachment = attachmentTemplates.find(
    (a) => (a.Network.Spec as Obj).Ingress !== true,
  )!.Network;
  function ingressNetworkAttachment(): Obj {
    return clone(ingressAttachment);
  }
  function overlayNetworkAttachment(): Obj {
    const n = clone(overlayAttachment);
    (n.Spec as Obj).Name = network;
    return n;
  }

  function setStatus(task: Task, state: TaskState) {
    const containerId = `${task.id}${'c'.repeat(64 - task.id.length)}`;
    const running = state === 'running';
    task.doc.Status = {
      Timestamp: timestamp(),
      State: state,
      Message: running ? 'started' : state === 'shutdown' ? 'shutdown' : state,
      ...((running || state === 'shutdown') && {
        ContainerStatus: {
          ContainerID: containerId,
          PID: running ? 1000 + (serial % 30000) : 0,
          ExitCode: 0,
        },
      }),
      PortStatus: {},
    };
    task.doc.UpdatedAt = timestamp();
    task.doc.Version = { Index: (version += 1) };
    task.json = undefined;
    // The manager's own engine reports its task containers; the other nodes' engines are not watched.
    if (running && task.nodeIndex < managers) {
      const service = services.get(task.serviceId);
      const name = `${String((service?.doc.Spec as Obj | undefined)?.Name)}.${String(task.doc.Slot)}.${task.id}`;
      emit(
        'container',
        'start',
        {
          status: 'start',
          id: containerId,
          from: 'registrar-test:busybox',
          Type: 'container',
          Action: 'start',
          Actor: {
            ID: containerId,
            Attributes: {
              'com.docker.swarm.node.id': nodeIds[task.nodeIndex],
              'com.docker.swarm.service.id': task.serviceId,
              'com.docker.swarm.service.name': (service?.doc.Spec as Obj | undefined)?.Name,
              'com.docker.swarm.task.id': task.id,
              'com.docker.swarm.task.name': name,
              image: 'registrar-test:busybox',
              name,
            },
          },
          scope: 'local',
        },
        task.nodeIndex,
      );
    }
  }

  const taskJson = (task: Task) => (task.json ??= JSON.stringify(task.doc));
  const serviceJson = (service: Service) => (service.json ??= JSON.stringify(service.doc));
  const lookupService = (ref: string): Service | undefined => {
    const exact = services.get(ref);
    if (exact !== undefined) return exact;
    for (const s of services.values()) if ((s.doc.Spec as Obj).Name === ref) return s;
    return undefined;
  };

  const listServices = (query: URLSearchParams): string => {
    const ids = filterValues(query, 'id');
    const names = filterValues(query, 'name');
    const picked = [...services.values()].filter(
      (s) =>
        (ids === undefined || ids.some((id) => s.id.startsWith(id))) &&
        (names === undefined || names.includes(String((s.doc.Spec as Obj).Name))),
    );
    return `[${picked.map(serviceJson).join(',')}]`;
  };

  const listTasks = (query: URLSearchParams): string => {
    const refs = filterValues(query, 'service');
    const desired = filterValues(query, 'desired-state');
    const onNodes = filterValues(query, 'node');
    const ids = filterValues(query, 'id');
    let candidates: Iterable<Task>;
    if (refs !== undefined) {
      const picked: Task[] = [];
      for (const ref of refs) {
        const service = lookupService(ref);
        for (const id of service?.tasks ?? []) picked.push(tasks.get(id)!);
      }
      candidates = picked;
    } else candidates = tasks.values();
    const out: string[] = [];
    for (const task of candidates) {
      if (desired !== undefined && !desired.includes(String(task.doc.DesiredState))) continue;
      if (onNodes !== undefined && !onNodes.includes(nodeIds[task.nodeIndex])) continue;
      if (ids !== undefined && !ids.some((id) => task.id.startsWith(id))) continue;
      out.push(taskJson(task));
    }
    return `[${out.join(',')}]`;
  };

  return {
    clusterId,
    network,
    nodeIds,
    requests,
    addService(spec) {
      serial += 1;
      const id = swarmId(`c${clusterSerial}s`, serial);
      const vipIndex = services.size;
      const published = spec.publishedPort ?? 30000 + (vipIndex % 2000);
      const service: Service = {
        id,
        doc: buildService(spec, id, published, vipIndex),
        json: undefined,
        tasks: [],
        nextSlot: 1,
      };
      services.set(id, service);
      for (let i = 0; i < spec.replicas; i++) createTask(service, 'running');
      return id;
    },
    scale(serviceId, replicas) {
      const service = services.get(serviceId);
      if (service === undefined) throw new Error(`no such service: ${serviceId}`);
      const spec = service.doc.Spec as Obj;
      const previous = spec.Mode as { Replicated: { Replicas: number } };
      const wasReplicas = previous.Replicated.Replicas;
      spec.Mode = { Replicated: { Replicas: replicas } };
      service.doc.Version = { Index: (version += 1) };
      service.doc.PreviousSpec = { ...clone(spec), Mode: { Replicated: { Replicas: wasReplicas } } };
      service.doc.UpdatedAt = timestamp();
      service.json = undefined;
      // `docker service scale` is a spec update: Swarm emits one service update event, and its
      // orchestrator creates (or shuts down) tasks without any event of their own.
      serviceEvent(service, 'update', {
        'replicas.old': String(wasReplicas),
        'replicas.new': String(replicas),
      });
      const wanted = service.tasks
        .map((id) => tasks.get(id)!)
        .filter((t) => t.doc.DesiredState === 'running');
      const created: string[] = [];
      for (let n = wanted.length; n < replicas; n++) created.push(createTask(service, 'pending').id);
      for (const surplus of wanted.slice(replicas)) {
        surplus.doc.DesiredState = 'shutdown';
        setStatus(surplus, 'shutdown');
      }
      return created;
    },
    setTaskState(taskId, state) {
      const task = tasks.get(taskId);
      if (task === undefined) throw new Error(`no such task: ${taskId}`);
      setStatus(task, state);
    },
    setNodeState(index, state) {
      const node = nodes[index];
      if (node === undefined) throw new Error(`no node ${index}`);
      (node.Status as Obj).State = state;
      node.Version = { Index: (version += 1) };
      nodesJson = undefined;
      emit('node', 'update', {
        Type: 'node',
        Action: 'update',
        Actor: { ID: node.ID, Attributes: { name: hostname(index), 'state.new': state } },
        scope: 'swarm',
      });
    },
    taskStates(serviceId) {
      const counts: Record<string, number> = {};
      for (const id of services.get(serviceId)?.tasks ?? []) {
        const doc = tasks.get(id)!.doc;
        if (doc.DesiredState !== 'running') continue;
        const state = String((doc.Status as Obj).State);
        counts[state] = (counts[state] ?? 0) + 1;
      }
      return counts;
    },
    clear() {
      services.clear();
      tasks.clear();
    },
    info(managerIndex) {
      const swarm = clone(fixture.swarm);
      Object.assign(swarm, {
        NodeID: nodeIds[managerIndex],
        NodeAddr: `10.231.0.${11 + managerIndex}`,
        LocalNodeState: 'active',
        ControlAvailable: managerIndex < managers,
        Nodes: nodeCount,
        Managers: managers,
        RemoteManagers: nodeIds
          .slice(0, managers)
          .map((id, i) => ({ NodeID: id, Addr: `10.231.0.${11 + i}:2377` })),
      });
      (swarm.Cluster as Obj).ID = clusterId;
      return swarm;
    },
    hostname,
    handle(method, path, query, reply) {
      if (method !== 'GET') return false;
      if (path === '/services') {
        requests.services += 1;
        reply(200, listServices(query));
        return true;
      }
      const one = /^\/services\/([^/]+)$/.exec(path);
      if (one) {
        requests.services += 1;
        const service = lookupService(decodeURIComponent(one[1]));
        if (service === undefined) reply(404, JSON.stringify({ message: `service ${one[1]} not found` }));
        else reply(200, serviceJson(service));
        return true;
      }
      if (path === '/tasks') {
        requests.tasks += 1;
        reply(200, listTasks(query));
        if (requests.firstInventoryAt === 0 && filterValues(query, 'service') === undefined)
          requests.firstInventoryAt = performance.now();
        return true;
      }
      const task = /^\/tasks\/([^/]+)$/.exec(path);
      if (task) {
        requests.tasks += 1;
        const found = tasks.get(decodeURIComponent(task[1]));
        if (found === undefined) reply(404, JSON.stringify({ message: `task ${task[1]} not found` }));
        else reply(200, taskJson(found));
        return true;
      }
      if (path === '/nodes') {
        requests.nodes += 1;
        reply(200, (nodesJson ??= JSON.stringify(nodes)));
        return true;
      }
      if (path === '/networks') {
        requests.networks += 1;
        reply(200, networksJson);
        return true;
      }
      return false;
    },
  };
}
