import type { Service } from '@registrar/core';

/**
 * How services map onto nodes. `curator`: `<base>/<name>/<id>` holding Apache Curator's ServiceInstance JSON
 * (read by Curator service discovery and Spring Cloud Zookeeper). `registrator`: `<base>/<name>/<ip>:<port>`
 * holding registrator's JSON, for users migrating from it.
 */
export type ZookeeperLayout = 'curator' | 'registrator';

/** The payload type Spring Cloud Zookeeper registers and expects back (Jackson `@class` type info). */
export const SPRING_PAYLOAD_CLASS = 'org.springframework.cloud.zookeeper.discovery.ZookeeperInstance';

/** Metadata keys this bridge adds next to the service's own metadata (curator layout). */
export const META_NODE = 'registrar.node';
export const META_CONTAINER_ID = 'registrar.container.id';
export const META_CONTAINER_NAME = 'registrar.container.name';

/** What a stored node says about itself, enough to decide ownership and identity. */
export interface DecodedNode {
  readonly id: string;
  readonly name: string;
  readonly node: string;
  /** Curator's registration time, kept on updates so that it means "first registered in this session". */
  readonly registrationTimeUTC?: number;
}

export interface LayoutCodec {
  readonly layout: ZookeeperLayout;
  /** Path of the node for `service` below `base` (`''` for the root). */
  path(base: string, service: Service): string;
  /** The exact bytes to store. */
  encode(service: Service, owner: string, registrationTimeUTC: number): string;
  /** Parse stored bytes; undefined when they are not a node this layout (and this bridge) could have written. */
  decode(data: string): DecodedNode | undefined;
  /** Stored bytes with volatile fields neutralised: equal for two writes of the same service. */
  canonical(data: string): string;
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

export function curatorCodec(payloadClass: string = SPRING_PAYLOAD_CLASS): LayoutCodec {
  return {
    layout: 'curator',
    path: (base, service) => `${base}/${service.name}/${service.id}`,
    encode(service, owner, registrationTimeUTC) {
      // Field order is Jackson's for ServiceInstance (getter order), so the bytes equal what Curator writes.
      // No `enabled` field: Curator < 2.10 readers fail on unknown properties and newer ones default it to true.
      const metadata: Record<string, string> = {
        ...sortedRecord(service.meta),
        tags: service.tags.join(','),
        protocol: service.protocol,
        [META_NODE]: owner,
        [META_CONTAINER_ID]: service.container.id,
        [META_CONTAINER_NAME]: service.container.name,
      };
      return JSON.stringify({
        name: service.name,
        id: service.id,
        address: service.address,
        port: service.port,
        sslPort: null,
        payload: { '@class': payloadClass, id: service.id, name: service.name, metadata },
        registrationTimeUTC,
        serviceType: 'DYNAMIC',
        uriSpec: null,
      });
    },
    decode(data) {
      const doc = parseObject(data);
      const payload = doc?.payload as { metadata?: Record<string, unknown> } | null | undefined;
      const node = payload?.metadata?.[META_NODE];
      if (!doc || typeof doc.id !== 'string' || typeof doc.name !== 'string' || typeof node !== 'string') {
        return undefined;
      }
      const time = doc.registrationTimeUTC;
      return {
        id: doc.id,
        name: doc.name,
        node,
        ...(typeof time === 'number' ? { registrationTimeUTC: time } : {}),
      };
    },
    canonical(data) {
      const doc = parseObject(data);
      if (!doc) return data;
      if ('registrationTimeUTC' in doc) doc.registrationTimeUTC = 0;
      return JSON.stringify(doc);
    },
  };
}

export const registratorCodec: LayoutCodec = {
  layout: 'registrator',
  path: (base, service) => `${base}/${service.name}/${service.address}:${service.port}`,
  encode(service, owner) {
    // registrator's ZnodeBody in Go field order; `ID` and `Node` are additions (Go's decoder ignores unknown
    // fields) that let list() and deregister() work and record the owner.
    return JSON.stringify({
      Name: service.name,
      IP: service.address,
      PublicPort: service.port,
      PrivatePort: service.containerPort,
      // registrator stored the container's host name, which Docker defaults to the short id.
      ContainerID: service.container.id.slice(0, 12),
      Tags: [...service.tags],
      Attrs: sortedRecord(service.meta),
      ID: service.id,
      Node: owner,
    });
  },
  decode(data) {
    const doc = parseObject(data);
    if (!doc || typeof doc.ID !== 'string' || typeof doc.Name !== 'string' || typeof doc.Node !== 'string') {
      return undefined;
    }
    return { id: doc.ID, name: doc.Name, node: doc.Node };
  },
  canonical: (data) => data,
};

export function codecFor(layout: ZookeeperLayout, payloadClass?: string): LayoutCodec {
  return layout === 'registrator' ? registratorCodec : curatorCodec(payloadClass);
}
