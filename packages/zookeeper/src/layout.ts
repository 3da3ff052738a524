import type { Instance, Service } from '@registrar/core';
import { familyAddresses, instanceLabels, isPort } from '@registrar/core/kit';

/**
 * How services map onto nodes. `curator`: `<base>/<name>/<id>` holding Apache Curator's ServiceInstance JSON
 * (read by Curator service discovery and Spring Cloud Zookeeper). `registrator`: `<base>/<name>/<ip>:<port>`
 * holding registrator's JSON, for users migrating from it.
 */
export type ZookeeperLayout = 'curator' | 'registrator';

/**
 * The `payload` of a curator-layout node, which decides which Curator consumers can read it (each measured
 * against Curator 5.4 in `test/interop/curator.test.ts`). Curator's `ServiceInstance.payload` carries
 * `@JsonTypeInfo(use = CLASS, defaultImpl = Object.class)` and `JsonInstanceSerializer` casts the result to the
 * reader's payload type, so a payload of the wrong class makes the reader's whole query throw:
 * - `spring`: Spring Cloud Zookeeper's `ZookeeperInstance` (`@class`, id, name, metadata). Readers without that
 *   class (a generic `ServiceDiscovery<Map>`) throw `InvalidTypeIdException`.
 * - `plain`: the metadata as a `java.util.LinkedHashMap`, byte for byte what a Curator application with a `Map`
 *   payload writes. Spring readers throw `ClassCastException`.
 * - `none` (default): `"payload":null`, which every payload type accepts; no metadata for consumers. The owner
 *   is kept in extra top-level fields, which Curator's `JsonInstanceSerializer` ignores.
 */
export type ZookeeperPayload = 'spring' | 'plain' | 'none';

export const ZOOKEEPER_PAYLOADS: readonly ZookeeperPayload[] = ['spring', 'plain', 'none'];

/** The payload type Spring Cloud Zookeeper registers and expects back (Jackson `@class` type info). */
export const SPRING_PAYLOAD_CLASS = 'org.springframework.cloud.zookeeper.discovery.ZookeeperInstance';

/** The Jackson type id Curator writes for a `Map` payload (its `LinkedHashMap`, as Jackson deserializes one). */
export const MAP_PAYLOAD_CLASS = 'java.util.LinkedHashMap';

/** Metadata keys this bridge adds next to the service's own metadata (curator layout). */
export const META_NODE = 'registrar.node';
/** The writing Docker engine's ID, beside the owner node; absent in nodes written by older versions. */
export const META_ENGINE = 'registrar.engine';
export const META_CONTAINER_ID = 'registrar.container.id';
export const META_CONTAINER_NAME = 'registrar.container.name';

/** What a stored node says about itself, enough to decide ownership and identity. */
export interface DecodedNode {
  readonly id: string;
  readonly name: string;
  readonly node: string;
  /** The writing Docker engine's ID, when the node records one. */
  readonly engine?: string;
  /** Curator's registration time, kept on updates so that it means "first registered in this session". */
  readonly registrationTimeUTC?: number;
}

export interface LayoutCodec {
  readonly layout: ZookeeperLayout;
  /** Path of the node for `service` below `base` (`''` for the root). */
  path(base: string, service: Service): string;
  /** The exact bytes to store; `engine` (the writing Docker engine's ID) is recorded beside the owner. */
  encode(service: Service, owner: string, registrationTimeUTC: number, engine?: string): string;
  /** Parse stored bytes; undefined when they are not a node this layout (and this bridge) could have written. */
  decode(data: string): DecodedNode | undefined;
  /**
   * Whether the node named `child` can be one `nodeId` wrote, from its name alone: listing reads only those,
   * not every other node's under a shared base.
   */
  mayOwn(child: string, nodeId: string): boolean;
  /** Stored bytes with volatile fields neutralised: equal for two writes of the same service. */
  canonical(data: string): string;
  /**
   * The read side, for followers: the instance any writer's node `child` holds (not only ours), or why its
   * data is not one.
   */
  instance(child: string, data: string): Instance | string;
}

function sortedRecord(record: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of Object.keys(record).sort()) out[key] = record[key]!;
  return out;
}

function parseObject(data: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(data);
    return value !== null && typeof value === 'object' && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Where the owner node (or another ownership field) is recorded: top level (payload `none`), in Spring's
 * metadata, or in a `Map` payload.
 */
function ownershipField(doc: Record<string, unknown>, field: string): string | undefined {
  const payload = doc.payload;
  const record =
    payload !== null && typeof payload === 'object' && !Array.isArray(payload)
      ? (payload as Record<string, unknown>)
      : undefined;
  const metadata = record?.metadata;
  const candidates = [
    doc[field],
    metadata !== null && typeof metadata === 'object'
      ? (metadata as Record<string, unknown>)[field]
      : undefined,
    record?.[field],
  ];
  return candidates.find((value): value is string => typeof value === 'string');
}

/** Keys of a curator payload's metadata that are not the service's own: the bridge's and Jackson's. */
const isBookkeeping = (key: string) =>
  key === 'tags' || key === 'protocol' || key === '@class' || key.startsWith('registrar.');

/**
 * Tags and metadata of a curator-layout node, from its payload: Spring's `metadata`, or a `Map` payload itself
 * (payload `none` carries neither). Tags are the comma-joined `tags` entry the bridge writes.
 */
function curatorLabels(payload: unknown): Pick<Instance, 'tags' | 'meta'> {
  if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) return {};
  const record = payload as Record<string, unknown>;
  const metadata =
    record['@class'] === SPRING_PAYLOAD_CLASS
      ? record.metadata
      : record['@class'] === MAP_PAYLOAD_CLASS
        ? record
        : undefined;
  if (metadata === null || typeof metadata !== 'object') return {};
  const tags = (metadata as Record<string, unknown>).tags;
  return instanceLabels(
    typeof tags === 'string' ? tags.split(',').filter((tag) => tag !== '') : undefined,
    metadata,
    isBookkeeping,
  );
}

export function curatorCodec(payloadMode: ZookeeperPayload = 'none'): LayoutCodec {
  if (!ZOOKEEPER_PAYLOADS.includes(payloadMode)) {
    throw new TypeError(`unknown zookeeper payload ${JSON.stringify(payloadMode)}`);
  }
  return {
    layout: 'curator',
    path: (base, service) => `${base}/${service.name}/${service.id}`,
    // The node is named by the id, `<node-id>:...`.
    mayOwn: (child, nodeId) => child.startsWith(`${nodeId}:`),
    encode(service, owner, registrationTimeUTC, engine) {
      // Field order and the absent `enabled` are what Curator's JsonInstanceSerializer writes by default
      // (its compatible mode); readers take `enabled` as true. With payload=plain the bytes are Curator's own.
      const ownership: Record<string, string> = {
        [META_NODE]: owner,
        ...(engine !== undefined && { [META_ENGINE]: engine }),
        // Only a service the bridge derived from a container has one; `registerService`'s records do not.
        ...(service.container && {
          [META_CONTAINER_ID]: service.container.id,
          [META_CONTAINER_NAME]: service.container.name,
        }),
      };
      const metadata: Record<string, string> = {
        ...sortedRecord(service.meta),
        tags: service.tags.join(','),
        protocol: service.protocol,
        ...ownership,
      };
      // A service's own `registrar.engine` metadata must not pass for the writer's engine.
      if (engine === undefined) delete metadata[META_ENGINE];
      let payload: Record<string, unknown> | null = null;
      if (payloadMode === 'spring') {
        payload = { '@class': SPRING_PAYLOAD_CLASS, id: service.id, name: service.name, metadata };
      } else if (payloadMode === 'plain') {
        // Jackson reads the type id from the first field, as Curator writes it; a metadata key "@class" must
        // not replace it (assigning keeps the key's position).
        payload = { '@class': MAP_PAYLOAD_CLASS, ...metadata };
        payload['@class'] = MAP_PAYLOAD_CLASS;
      }
      return JSON.stringify({
        name: service.name,
        id: service.id,
        address: service.address,
        port: service.port,
        sslPort: null,
        payload,
        registrationTimeUTC,
        serviceType: 'DYNAMIC',
        uriSpec: null,
        // A dual-stack service's endpoint per family (`address`/`port` are the IPv4 one), beside Curator's
        // fields as the owner is: JsonInstanceSerializer ignores unknown ones.
        ...(service.dualStack !== undefined && { addresses: familyAddresses(service.dualStack) }),
        // Without a payload the owner goes beside Curator's fields; JsonInstanceSerializer ignores unknown ones.
        ...(payload === null ? ownership : {}),
      });
    },
    decode(data) {
      // Any payload mode is recognised, so a bridge restarted with another mode still finds its old nodes.
      const doc = parseObject(data);
      const node = doc && ownershipField(doc, META_NODE);
      if (!doc || typeof doc.id !== 'string' || typeof doc.name !== 'string' || node === undefined) {
        return undefined;
      }
      const time = doc.registrationTimeUTC;
      const engine = ownershipField(doc, META_ENGINE);
      return {
        id: doc.id,
        name: doc.name,
        node,
        ...(engine !== undefined && { engine }),
        ...(typeof time === 'number' ? { registrationTimeUTC: time } : {}),
      };
    },
    canonical(data) {
      const doc = parseObject(data);
      if (!doc) return data;
      if ('registrationTimeUTC' in doc) doc.registrationTimeUTC = 0;
      return JSON.stringify(doc);
    },
    instance(child, data) {
      // Curator's ServiceInstance: Curator and Spring applications registered next to us count too.
      const doc = parseObject(data);
      if (!doc) return 'not a JSON object';
      if (typeof doc.address !== 'string' || doc.address === '') return 'no "address"';
      if (!isPort(doc.port)) return 'no "port" from 1 to 65535';
      return {
        id: typeof doc.id === 'string' && doc.id !== '' ? doc.id : child,
        address: doc.address,
        port: doc.port,
        ...curatorLabels(doc.payload),
      };
    },
  };
}

export const registratorCodec: LayoutCodec = {
  layout: 'registrator',
  path: (base, service) => `${base}/${service.name}/${service.address}:${service.port}`,
  // `ip:port` names say nothing of the owner: only the data does.
  mayOwn: () => true,
  encode(service, owner, _registrationTimeUTC, engine) {
    // registrator's ZnodeBody in Go field order; `ID`, `Node` and `Engine` are additions (Go's decoder ignores
    // unknown fields) that let list() and deregister() work and record the owner and its Docker engine.
    return JSON.stringify({
      Name: service.name,
      IP: service.address,
      PublicPort: service.port,
      PrivatePort: service.containerPort,
      // registrator stored the container's host name, which Docker defaults to the short id.
      ...(service.container && { ContainerID: service.container.id.slice(0, 12) }),
      Tags: [...service.tags],
      Attrs: sortedRecord(service.meta),
      ID: service.id,
      Node: owner,
      ...(engine !== undefined && { Engine: engine }),
    });
  },
  decode(data) {
    const doc = parseObject(data);
    if (!doc || typeof doc.ID !== 'string' || typeof doc.Name !== 'string' || typeof doc.Node !== 'string') {
      return undefined;
    }
    const engine = typeof doc.Engine === 'string' ? { engine: doc.Engine } : {};
    return { id: doc.ID, name: doc.Name, node: doc.Node, ...engine };
  },
  canonical: (data) => data,
  instance(child, data) {
    // registrator itself writes no `ID`: the node name (`ip:port`) is the id then.
    const doc = parseObject(data);
    if (!doc) return 'not a JSON object';
    if (typeof doc.IP !== 'string' || doc.IP === '') return 'no "IP"';
    if (!isPort(doc.PublicPort)) return 'no "PublicPort" from 1 to 65535';
    return {
      id: typeof doc.ID === 'string' && doc.ID !== '' ? doc.ID : child,
      address: doc.IP,
      port: doc.PublicPort,
      ...instanceLabels(doc.Tags, doc.Attrs),
    };
  },
};

export function codecFor(layout: ZookeeperLayout, payload?: ZookeeperPayload): LayoutCodec {
  return layout === 'registrator' ? registratorCodec : curatorCodec(payload);
}
