import { formatGoDuration } from '@registrar/core/kit';
import type { CheckRecord, ServiceRecord } from './agent.js';
import type { NodeIdentity } from './context.js';
import type { KvEntry, SessionRecord } from './kv.js';
import type { Scoped } from './query.js';

// The JSON Consul answers with, field for field: pure functions of the records and the node.

/** `Namespace`/`Partition`, only where the record has them (Consul OSS leaves them out). */
function scope(r: Scoped) {
  return {
    ...(r.namespace !== undefined && { Namespace: r.namespace }),
    ...(r.partition !== undefined && { Partition: r.partition }),
  };
}

/** A service's tagged addresses under `key`; Consul leaves an empty map out (omitempty). */
function taggedAddresses(s: ServiceRecord, key: 'TaggedAddresses' | 'ServiceTaggedAddresses') {
  return Object.keys(s.taggedAddresses).length > 0 ? { [key]: s.taggedAddresses } : {};
}

export function nodeJson(node: NodeIdentity) {
  return {
    ID: node.id,
    Node: node.name,
    Address: node.address,
    Datacenter: node.datacenter,
    TaggedAddresses: { lan: node.host, wan: node.host },
    Meta: { 'consul-network-segment': '' },
    CreateIndex: 5,
    ModifyIndex: 5,
  };
}

export function agentServiceJson(s: ServiceRecord, node: NodeIdentity) {
  return {
    ID: s.id,
    Service: s.name,
    Tags: s.tags,
    Meta: s.meta,
    Port: s.port,
    Address: s.address,
    ...taggedAddresses(s, 'TaggedAddresses'),
    Weights: s.weights,
    EnableTagOverride: s.enableTagOverride,
    Datacenter: node.datacenter,
    ...scope(s),
  };
}

export function checkJson(c: CheckRecord, node: NodeIdentity) {
  return {
    Node: node.name,
    CheckID: c.id,
    Name: c.name,
    Status: c.status,
    Notes: c.notes,
    Output: c.output,
    ServiceID: c.serviceId,
    ServiceName: c.serviceName,
    ServiceTags: c.serviceTags,
    Type: c.type,
    Interval: c.def.intervalMs !== undefined ? formatGoDuration(c.def.intervalMs) : '',
    Timeout: c.def.timeoutMs !== undefined ? formatGoDuration(c.def.timeoutMs) : '',
    ExposedPort: 0,
    Definition: {},
    CreateIndex: c.createIndex,
    ModifyIndex: c.modifyIndex,
    ...scope(c),
  };
}

/** The node's own check, always passing here. */
export function serfHealthJson(node: NodeIdentity) {
  return {
    Node: node.name,
    CheckID: 'serfHealth',
    Name: 'Serf Health Status',
    Status: 'passing',
    Notes: '',
    Output: 'Agent alive and reachable',
    ServiceID: '',
    ServiceName: '',
    ServiceTags: [],
    Type: '',
    Definition: {},
    CreateIndex: 5,
    ModifyIndex: 5,
  };
}

export function healthServiceJson(s: ServiceRecord) {
  return {
    Kind: '',
    ID: s.id,
    Service: s.name,
    Tags: s.tags,
    Address: s.address,
    ...taggedAddresses(s, 'TaggedAddresses'),
    Meta: s.meta,
    Port: s.port,
    Weights: s.weights,
    EnableTagOverride: s.enableTagOverride,
    CreateIndex: s.createIndex,
    ModifyIndex: s.modifyIndex,
    ...scope(s),
  };
}

export function catalogServiceJson(s: ServiceRecord, node: NodeIdentity) {
  const n = nodeJson(node);
  return {
    ID: n.ID,
    Node: n.Node,
    Address: n.Address,
    Datacenter: node.datacenter,
    TaggedAddresses: n.TaggedAddresses,
    NodeMeta: n.Meta,
    ServiceKind: '',
    ServiceID: s.id,
    ServiceName: s.name,
    ServiceTags: s.tags,
    ServiceAddress: s.address,
    ...taggedAddresses(s, 'ServiceTaggedAddresses'),
    ServiceWeights: s.weights,
    ServiceMeta: s.meta,
    ServicePort: s.port,
    ServiceEnableTagOverride: s.enableTagOverride,
    CreateIndex: s.createIndex,
    ModifyIndex: s.modifyIndex,
    ...scope(s),
  };
}

export function sessionJson(s: SessionRecord) {
  return {
    ID: s.id,
    Name: s.name,
    Node: s.node,
    // A Go time.Duration: nanoseconds.
    LockDelay: s.lockDelayMs * 1e6,
    Behavior: s.behavior,
    TTL: s.ttlMs > 0 ? formatGoDuration(s.ttlMs) : '',
    NodeChecks: s.checks,
    ServiceChecks: null,
    CreateIndex: s.createIndex,
    ModifyIndex: s.modifyIndex,
  };
}

export function kvJson(e: KvEntry) {
  return {
    LockIndex: e.lockIndex,
    Key: e.key,
    Flags: e.flags,
    // Go encodes an empty []byte as null.
    Value: e.value.length > 0 ? e.value.toString('base64') : null,
    ...(e.session !== undefined && { Session: e.session }),
    CreateIndex: e.createIndex,
    ModifyIndex: e.modifyIndex,
  };
}
