import { isIP } from 'node:net';
import type { CheckDefinition, ServiceAddress, ServiceDefinition } from './agent.js';
import { parseGoDuration } from '@registrar/core/kit';

/** A 400 answer: Consul writes these as plain text. */
export class BadRequest extends Error {}

type Json = Record<string, unknown>;

// Consul decodes with Go's case-insensitive field matching and also accepts snake_case aliases.
const norm = (key: string): string => key.toLowerCase().replace(/_/g, '');

function field(obj: Json, ...names: string[]): unknown {
  const wanted = new Set(names.map(norm));
  for (const [key, value] of Object.entries(obj)) {
    if (wanted.has(norm(key))) return value;
  }
  return undefined;
}

function goType(value: unknown): string {
  if (Array.isArray(value)) return 'array';
  if (value === null) return 'null';
  return typeof value === 'object' ? 'object' : typeof value;
}

function decodeError(value: unknown, where: string, type: string): BadRequest {
  return new BadRequest(
    `Request decode failed: json: cannot unmarshal ${goType(value)} into Go struct field ${where} of type ${type}`,
  );
}

function str(obj: Json, where: string, ...names: string[]): string | undefined {
  const v = field(obj, ...names);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw decodeError(v, where, 'string');
  return v;
}

function bool(obj: Json, where: string, ...names: string[]): boolean | undefined {
  const v = field(obj, ...names);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw decodeError(v, where, 'bool');
  return v;
}

function int(obj: Json, where: string, ...names: string[]): number | undefined {
  const v = field(obj, ...names);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw decodeError(v, where, 'int');
  return v;
}

function duration(obj: Json, ...names: string[]): number | undefined {
  const v = field(obj, ...names);
  if (v === undefined || v === null || v === '') return undefined;
  // Go's api accepts either a duration string or nanoseconds.
  if (typeof v === 'number') return v / 1e6;
  if (typeof v !== 'string')
    throw new BadRequest(`Request decode failed: invalid duration: ${JSON.stringify(v)}`);
  try {
    return parseGoDuration(v);
  } catch (err) {
    throw new BadRequest(`Request decode failed: ${(err as Error).message}`);
  }
}

function stringList(obj: Json, where: string, ...names: string[]): string[] | undefined {
  const v = field(obj, ...names);
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw decodeError(v, where, '[]string');
  return v.map((item) => {
    if (typeof item !== 'string') throw decodeError(item, where, 'string');
    return item;
  });
}

function stringMap(obj: Json, where: string, ...names: string[]): Record<string, string> | undefined {
  const v = field(obj, ...names);
  if (v === undefined || v === null) return undefined;
  if (goType(v) !== 'object') throw decodeError(v, where, 'map[string]string');
  const out: Record<string, string> = {};
  for (const [k, item] of Object.entries(v as Json)) {
    if (typeof item !== 'string') throw decodeError(item, where, 'string');
    out[k] = item;
  }
  return out;
}

function decodeCheck(raw: unknown): CheckDefinition | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (goType(raw) !== 'object') throw decodeError(raw, 'ServiceDefinition.Check', 'structs.CheckType');
  const obj = raw as Json;
  const w = 'CheckType';
  const def: CheckDefinition = {};
  const set = <K extends keyof CheckDefinition>(key: K, value: CheckDefinition[K] | undefined): void => {
    if (value !== undefined) def[key] = value;
  };
  set('checkId', str(obj, `${w}.CheckID`, 'CheckID', 'ID'));
  set('name', str(obj, `${w}.Name`, 'Name'));
  set('notes', str(obj, `${w}.Notes`, 'Notes'));
  set('status', str(obj, `${w}.Status`, 'Status'));
  set('ttlMs', duration(obj, 'TTL'));
  set('intervalMs', duration(obj, 'Interval'));
  set('timeoutMs', duration(obj, 'Timeout'));
  set('deregisterAfterMs', duration(obj, 'DeregisterCriticalServiceAfter'));
  set('http', str(obj, `${w}.HTTP`, 'HTTP'));
  set('method', str(obj, `${w}.Method`, 'Method'));
  set('body', str(obj, `${w}.Body`, 'Body'));
  set('tlsSkipVerify', bool(obj, `${w}.TLSSkipVerify`, 'TLSSkipVerify'));
  set('tcp', str(obj, `${w}.TCP`, 'TCP'));
  set('grpc', str(obj, `${w}.GRPC`, 'GRPC'));
  set('grpcUseTls', bool(obj, `${w}.GRPCUseTLS`, 'GRPCUseTLS'));
  set('args', stringList(obj, `${w}.ScriptArgs`, 'Args', 'ScriptArgs'));
  set('dockerContainerId', str(obj, `${w}.DockerContainerID`, 'DockerContainerID'));
  set('shell', str(obj, `${w}.Shell`, 'Shell'));
  set('aliasService', str(obj, `${w}.AliasService`, 'AliasService'));
  set('aliasNode', str(obj, `${w}.AliasNode`, 'AliasNode'));
  const header = field(obj, 'Header');
  if (header !== undefined && header !== null) {
    if (goType(header) !== 'object') throw decodeError(header, `${w}.Header`, 'map[string][]string');
    def.header = Object.fromEntries(
      Object.entries(header as Json).map(([k, v]) => [
        k,
        Array.isArray(v) ? v.map(String) : [String(v as string)],
      ]),
    );
  }
  // An empty check block is dropped by the agent, not rejected.
  return Object.keys(def).length === 0 ? undefined : def;
}

/** Consul's CheckType.Validate, reworded from its documented rules. */
export function validateCheck(def: CheckDefinition): string | undefined {
  const intervalCheck = !!(def.args?.length || def.http || def.tcp || def.grpc);
  const alias = def.aliasService !== undefined || def.aliasNode !== undefined;
  const interval = def.intervalMs ?? 0;
  const ttl = def.ttlMs ?? 0;
  if (interval > 0 && ttl > 0) return 'Interval and TTL cannot both be specified';
  if (intervalCheck && interval <= 0)
    return 'Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks';
  if (intervalCheck && alias) return 'Interval cannot be set for Alias checks';
  if (alias && ttl > 0) return 'TTL must be not be set for Alias checks';
  if (!intervalCheck && !alias && ttl <= 0) return 'TTL must be > 0 for TTL checks';
  return undefined;
}

/** Consul's ValidateWeights, in its order and words. */
export function validateWeights(weights: { Passing: number; Warning: number }): string | undefined {
  if (weights.Passing < 1) return 'Passing must be greater than 0';
  if (weights.Warning < 0) return 'Warning must be greater or equal than 0';
  if (weights.Passing > 65535 || weights.Warning > 65535) return 'DNS Weight must be between 0 and 65535';
  return undefined;
}

const META_KEY = /^[A-Za-z0-9_-]+$/;

/** Consul's service meta rules: ≤ 64 pairs, keys [A-Za-z0-9_-]{1,128} not starting `consul-`, values ≤ 512. */
export function validateMeta(meta: Record<string, string>): string | undefined {
  const entries = Object.entries(meta);
  if (entries.length > 64) return 'Node metadata cannot contain more than 64 key/value pairs';
  for (const [key, value] of entries) {
    let problem: string | undefined;
    if (key === '') problem = 'Key cannot be blank';
    else if (!META_KEY.test(key)) problem = 'Key contains invalid characters';
    else if (key.length > 128) problem = 'Key is too long (limit: 128 characters)';
    else if (key.startsWith('consul-')) problem = "Key prefix 'consul-' is reserved for internal use";
    else if (value.length > 512) problem = 'Value is too long (limit: 512 characters)';
    if (problem) return `Couldn't load metadata pair ('${key}', '${value}'): ${problem}`;
  }
  return undefined;
}

/** Decode and validate a `/v1/agent/service/register` body the way the agent does, in its order. */
export function decodeServiceRegistration(text: string): ServiceDefinition {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new BadRequest(`Request decode failed: ${(err as Error).message}`);
  }
  if (goType(raw) !== 'object') throw decodeError(raw, 'ServiceDefinition', 'structs.ServiceDefinition');
  const obj = raw as Json;
  const w = 'ServiceDefinition';
  const name = str(obj, `${w}.Name`, 'Name') ?? '';
  const id = str(obj, `${w}.ID`, 'ID') || name;
  const tags = stringList(obj, `${w}.Tags`, 'Tags') ?? [];
  const address = str(obj, `${w}.Address`, 'Address') ?? '';
  const port = int(obj, `${w}.Port`, 'Port') ?? 0;
  const meta = stringMap(obj, `${w}.Meta`, 'Meta') ?? {};
  const tagged = taggedAddresses(field(obj, 'TaggedAddresses'));
  const enableTagOverride = bool(obj, `${w}.EnableTagOverride`, 'EnableTagOverride') ?? false;
  const weightsRaw = field(obj, 'Weights');
  // No Weights: the agent fills in its defaults. A Weights object is decoded like any Go struct, so a field it
  // leaves out is 0 (`{"Passing": 5}` is stored as Warning 0, `{"Warning": 2}` is rejected for Passing 0).
  let weights: { Passing: number; Warning: number } | undefined;
  if (weightsRaw !== undefined && weightsRaw !== null) {
    if (goType(weightsRaw) !== 'object') throw decodeError(weightsRaw, `${w}.Weights`, 'structs.Weights');
    weights = {
      Passing: int(weightsRaw as Json, 'Weights.Passing', 'Passing') ?? 0,
      Warning: int(weightsRaw as Json, 'Weights.Warning', 'Warning') ?? 0,
    };
  }
  const namespace = str(obj, `${w}.Namespace`, 'Namespace');
  const partition = str(obj, `${w}.Partition`, 'Partition');
  const checks: CheckDefinition[] = [];
  const single = decodeCheck(field(obj, 'Check'));
  if (single) checks.push(single);
  const many = field(obj, 'Checks');
  if (many !== undefined && many !== null) {
    if (!Array.isArray(many)) throw decodeError(many, `${w}.Checks`, 'structs.CheckTypes');
    for (const item of many) {
      const def = decodeCheck(item);
      if (def) checks.push(def);
    }
  }

  if (name === '') throw new BadRequest('Missing service name');
  if (address === '0.0.0.0' || address === '::' || address === '[::]')
    throw new BadRequest('Invalid service address');
  const weightsProblem = weights && validateWeights(weights);
  if (weightsProblem) throw new BadRequest(`Invalid Weights: ${weightsProblem}`);
  const metaProblem = validateMeta(meta);
  if (metaProblem) throw new BadRequest(`Invalid Service Meta: ${metaProblem}`);
  if (port < 0 || port > 65535) throw new BadRequest(`Validation failed: invalid port ${port}`);
  for (const check of checks) {
    const problem = validateCheck(check);
    if (problem) throw new BadRequest(`Invalid check: ${problem}`);
  }
  for (const check of checks) {
    if (check.status && !['passing', 'warning', 'critical'].includes(check.status)) {
      throw new BadRequest("Status for checks must 'passing', 'warning', 'critical'");
    }
  }
  return {
    id,
    name,
    tags,
    address,
    port,
    taggedAddresses: withDefaultAddresses(tagged, address, port),
    meta,
    enableTagOverride,
    weights: weights ?? { Passing: 1, Warning: 1 },
    checks,
    ...(namespace !== undefined && { namespace }),
    ...(partition !== undefined && { partition }),
  };
}

/** `TaggedAddresses`: Go's `map[string]structs.ServiceAddress`. */
function taggedAddresses(value: unknown): Record<string, ServiceAddress> {
  if (value === undefined || value === null) return {};
  const where = 'ServiceDefinition.TaggedAddresses';
  if (goType(value) !== 'object') throw decodeError(value, where, 'map[string]structs.ServiceAddress');
  const out: Record<string, ServiceAddress> = {};
  for (const [key, entry] of Object.entries(value as Json)) {
    if (goType(entry) !== 'object') throw decodeError(entry, where, 'structs.ServiceAddress');
    out[key] = {
      Address: str(entry as Json, 'ServiceAddress.Address', 'Address') ?? '',
      Port: int(entry as Json, 'ServiceAddress.Port', 'Port') ?? 0,
    };
  }
  return out;
}

/**
 * What the agent adds (consul/agent/agent.go, addServiceInternal): for an IP `Address`, its family's `lan_*`
 * and `wan_*` tagged addresses, unless the registration gave them.
 */
function withDefaultAddresses(
  given: Record<string, ServiceAddress>,
  address: string,
  port: number,
): Record<string, ServiceAddress> {
  const family = isIP(address);
  if (family === 0) return given;
  const suffix = family === 4 ? 'ipv4' : 'ipv6';
  return {
    ...given,
    [`lan_${suffix}`]: given[`lan_${suffix}`] ?? { Address: address, Port: port },
    [`wan_${suffix}`]: given[`wan_${suffix}`] ?? { Address: address, Port: port },
  };
}

/** Body of `PUT /v1/agent/check/register`: a check of the node, or of the service `serviceId`. */
export interface CheckRegistration {
  id: string;
  serviceId?: string;
  def: CheckDefinition;
}

/** Decode and validate a `/v1/agent/check/register` body the way the agent does. */
export function decodeCheckRegistration(text: string): CheckRegistration {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new BadRequest(`Request decode failed: ${(err as Error).message}`);
  }
  if (goType(raw) !== 'object') throw decodeError(raw, 'CheckDefinition', 'structs.CheckDefinition');
  const obj = raw as Json;
  const def = decodeCheck(obj) ?? {};
  const serviceId = str(obj, 'CheckDefinition.ServiceID', 'ServiceID');
  if (!def.name) throw new BadRequest('Missing check name');
  if (def.status && !['passing', 'warning', 'critical'].includes(def.status))
    throw new BadRequest('Bad check status');
  const problem = validateCheck(def);
  if (problem) throw new BadRequest(`Invalid check: ${problem}`);
  return { id: def.checkId || def.name, def, ...(serviceId && { serviceId }) };
}

/** A request body that may be empty (then `{}`, as Consul decodes it), else JSON. */
function optionalJsonBody(text: string): unknown {
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new BadRequest(`Request decode failed: ${(err as Error).message}`);
  }
}

/** Body of `/v1/agent/check/update/:id`. */
export function decodeCheckUpdate(text: string): { status: string; output: string } {
  const raw = optionalJsonBody(text);
  if (goType(raw) !== 'object') throw decodeError(raw, 'checkUpdate', 'agent.checkUpdate');
  const obj = raw as Json;
  return {
    status: str(obj, 'checkUpdate.Status', 'Status') ?? '',
    output: str(obj, 'checkUpdate.Output', 'Output') ?? '',
  };
}

/** Body of `PUT /v1/session/create` (durations in ms; an empty body is a session with every default). */
export interface SessionCreate {
  name: string;
  node?: string;
  behavior: string;
  /** The TTL as given (Consul keeps the string), '' for none. */
  ttl: string;
  ttlMs: number;
  lockDelayMs?: number;
  checks?: string[];
}

export function decodeSessionCreate(text: string): SessionCreate {
  const raw = optionalJsonBody(text);
  if (goType(raw) !== 'object') throw decodeError(raw, 'Session', 'structs.Session');
  const obj = raw as Json;
  const ttl = str(obj, 'Session.TTL', 'TTL') ?? '';
  let ttlMs = 0;
  if (ttl !== '') {
    try {
      ttlMs = parseGoDuration(ttl);
    } catch (err) {
      throw new BadRequest(`Request decode failed: ${(err as Error).message}`);
    }
  }
  // Consul's FixupLockDelay: a duration string, or a number — seconds below 1000, nanoseconds from there.
  const delayRaw = field(obj, 'LockDelay');
  let lockDelayMs: number | undefined;
  if (typeof delayRaw === 'number') lockDelayMs = delayRaw < 1000 ? delayRaw * 1000 : delayRaw / 1e6;
  else lockDelayMs = duration(obj, 'LockDelay');
  const checks = stringList(obj, 'Session.Checks', 'Checks');
  const nodeChecks = stringList(obj, 'Session.NodeChecks', 'NodeChecks');
  const serviceChecksRaw = field(obj, 'ServiceChecks');
  let serviceChecks: string[] | undefined;
  if (serviceChecksRaw !== undefined && serviceChecksRaw !== null) {
    if (!Array.isArray(serviceChecksRaw))
      throw decodeError(serviceChecksRaw, 'Session.ServiceChecks', '[]structs.ServiceCheck');
    serviceChecks = serviceChecksRaw.map((item) => {
      if (goType(item) !== 'object') throw decodeError(item, 'Session.ServiceChecks', 'structs.ServiceCheck');
      return str(item as Json, 'ServiceCheck.ID', 'ID') ?? '';
    });
  }
  const node = str(obj, 'Session.Node', 'Node');
  // Only `Checks` or `NodeChecks` replace the default serfHealth; `ServiceChecks` come on top of it.
  const listed = checks || nodeChecks ? [...(checks ?? []), ...(nodeChecks ?? [])] : undefined;
  const allChecks = serviceChecks ? [...(listed ?? ['serfHealth']), ...serviceChecks] : listed;
  return {
    name: str(obj, 'Session.Name', 'Name') ?? '',
    behavior: str(obj, 'Session.Behavior', 'Behavior') || 'release',
    ttl,
    ttlMs,
    ...(node && { node }),
    ...(lockDelayMs !== undefined && { lockDelayMs }),
    ...(allChecks && { checks: allChecks }),
  };
}
