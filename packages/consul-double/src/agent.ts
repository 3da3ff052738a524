import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';

/** The three states Consul knows for a check. */
export type CheckStatus = 'passing' | 'warning' | 'critical';

export const STATUSES: readonly CheckStatus[] = ['passing', 'warning', 'critical'];

/** A check as decoded from a registration (durations in milliseconds). */
export interface CheckDefinition {
  checkId?: string;
  name?: string;
  notes?: string;
  status?: string;
  ttlMs?: number;
  intervalMs?: number;
  timeoutMs?: number;
  http?: string;
  method?: string;
  header?: Record<string, string[]>;
  body?: string;
  tlsSkipVerify?: boolean;
  tcp?: string;
  grpc?: string;
  grpcUseTls?: boolean;
  args?: string[];
  dockerContainerId?: string;
  shell?: string;
  aliasService?: string;
  aliasNode?: string;
  deregisterAfterMs?: number;
}

/** One of a service's `TaggedAddresses`. */
export interface ServiceAddress {
  Address: string;
  Port: number;
}

export interface ServiceDefinition {
  id: string;
  name: string;
  tags: string[];
  address: string;
  port: number;
  /**
   * `lan_ipv4`, `lan_ipv6`, `wan_ipv4`... As the agent stores them: what the registration gave, plus
   * `lan_ipv4`/`wan_ipv4` (or `lan_ipv6`/`wan_ipv6`) from an IP `Address` where it gave none.
   */
  taggedAddresses: Record<string, ServiceAddress>;
  meta: Record<string, string>;
  enableTagOverride: boolean;
  weights: { Passing: number; Warning: number };
  namespace?: string;
  partition?: string;
  checks: CheckDefinition[];
}

export interface ServiceRecord extends Omit<ServiceDefinition, 'checks'> {
  createIndex: number;
  modifyIndex: number;
}

export interface CheckRecord {
  id: string;
  name: string;
  status: CheckStatus;
  output: string;
  notes: string;
  serviceId: string;
  serviceName: string;
  serviceTags: string[];
  type: string;
  def: CheckDefinition;
  namespace?: string;
  partition?: string;
  createIndex: number;
  modifyIndex: number;
  /** When the check last became critical; the reaper measures from here. */
  criticalSince?: number;
  /** The clamped DeregisterCriticalServiceAfter, if any. */
  reapAfterMs?: number;
  stop: () => void;
}

export interface AgentOptions {
  nodeName: string;
  reapIntervalMs: number;
  minDeregisterAfterMs: number;
  /**
   * A check turned critical or was removed: the servers invalidate every session that lists it (Consul's state
   * store does this when the agent syncs the check).
   */
  onCheckFailed?: (checkId: string) => void;
}

/** What a check belongs to: a service, or the node (`undefined`). */
interface CheckOwner {
  id: string;
  name: string;
  tags: string[];
  namespace?: string;
  partition?: string;
}

// Consul caps check output at 4 KiB (checks.DefaultBufSize) and says how much it kept.
const OUTPUT_MAX = 4096;
// setTimeout overflows past 2^31-1 ms; long TTLs (hours, days) are re-armed in steps.
const MAX_TIMER = 2_147_483_647;

export function truncateOutput(output: string): string {
  const bytes = Buffer.from(output);
  if (bytes.length <= OUTPUT_MAX) return output;
  return `${bytes.subarray(0, OUTPUT_MAX).toString()} ... (captured ${OUTPUT_MAX} of ${bytes.length} bytes)`;
}

function longTimeout(fn: () => void, ms: number): () => void {
  const deadline = Date.now() + ms;
  let timer: NodeJS.Timeout;
  const arm = (): void => {
    const left = deadline - Date.now();
    timer = setTimeout(left > MAX_TIMER ? arm : fn, Math.min(Math.max(left, 0), MAX_TIMER));
    timer.unref();
  };
  arm();
  return () => clearTimeout(timer);
}

export function checkType(def: CheckDefinition): string {
  if (def.aliasService !== undefined || def.aliasNode !== undefined) return 'alias';
  // Consul's IsDocker: a script check with a container to run it in (the interval is validated separately).
  if (def.dockerContainerId && def.args && def.args.length > 0) return 'docker';
  if (def.args && def.args.length > 0) return 'script';
  if (def.http) return 'http';
  if (def.tcp) return 'tcp';
  if (def.grpc) return 'grpc';
  if (def.ttlMs !== undefined) return 'ttl';
  return '';
}

/**
 * The agent's local state: services, their checks, TTL timers, alias evaluation, the reaper, and a raft-like
 * index that blocking queries wait on. The catalog is this state, synced instantly (no anti-entropy delay).
 */
export class AgentState {
  readonly services = new Map<string, ServiceRecord>();
  readonly checks = new Map<string, CheckRecord>();
  /** Monotonic across restarts, like the servers' raft index an agent restart does not reset. */
  index = 10;
  private readonly nameIndex = new Map<string, number>();
  private catalogIndex = 1;
  private readonly waiters = new Set<() => void>();
  private notifyQueued = false;
  private reaper: NodeJS.Timeout | undefined;

  constructor(readonly options: AgentOptions) {
    this.startReaper();
  }

  indexForName(name: string): number {
    return this.nameIndex.get(name) ?? 1;
  }

  indexForCatalog(): number {
    return this.catalogIndex;
  }

  /** Resolves on the next state change (or never, if none comes: callers race it with their wait). */
  waitForChange(): { promise: Promise<void>; cancel: () => void } {
    let done: () => void = () => undefined;
    const promise = new Promise<void>((resolve) => {
      done = () => {
        this.waiters.delete(done);
        resolve();
      };
      this.waiters.add(done);
    });
    return { promise, cancel: done };
  }

  registerService(def: ServiceDefinition, replaceExistingChecks: boolean): void {
    const now = this.nextIndex();
    const previous = this.services.get(def.id);
    if (previous && previous.name !== def.name) this.touch(previous.name, now);
    const { checks: checkDefs, ...fields } = def;
    this.services.set(def.id, {
      ...fields,
      createIndex: previous?.createIndex ?? now,
      modifyIndex: now,
    });
    this.touch(def.name, now);
    this.catalogIndex = now;

    const keep = new Set<string>();
    checkDefs.forEach((checkDef, i) => {
      const id =
        checkDef.checkId || (checkDefs.length > 1 ? `service:${def.id}:${i + 1}` : `service:${def.id}`);
      keep.add(id);
      this.putCheck(id, checkDef, def, now);
    });
    if (replaceExistingChecks) {
      for (const check of [...this.checks.values()]) {
        if (check.serviceId === def.id && !keep.has(check.id)) this.removeCheck(check.id);
      }
    }
    this.afterChange();
  }

  /**
   * `/v1/agent/check/register`: a check of the node (no `ServiceID`), or one added to a registered service.
   * False when the service is unknown.
   */
  registerCheck(checkDef: CheckDefinition, id: string, serviceId?: string): boolean {
    const service = serviceId ? this.services.get(serviceId) : undefined;
    if (serviceId && !service) return false;
    const now = this.nextIndex();
    this.putCheck(id, checkDef, service, now);
    this.afterChange();
    return true;
  }

  /** `/v1/agent/check/deregister/:id`. False for unknown checks. */
  deregisterCheck(id: string): boolean {
    if (!this.checks.has(id)) return false;
    this.removeCheck(id);
    this.afterChange();
    return true;
  }

  private putCheck(id: string, checkDef: CheckDefinition, owner: CheckOwner | undefined, now: number): void {
    const existing = this.checks.get(id);
    existing?.stop();
    let status: CheckStatus = (checkDef.status as CheckStatus | undefined) || 'critical';
    let output = '';
    let criticalSince = status === 'critical' ? Date.now() : undefined;
    // Like the real agent, a re-registered check keeps its current status and output.
    if (existing) {
      status = existing.status;
      output = existing.output;
      criticalSince = existing.criticalSince;
    }
    const record: CheckRecord = {
      id,
      name: checkDef.name || (owner ? `Service '${owner.name}' check` : id),
      status,
      output,
      notes: checkDef.notes ?? '',
      serviceId: owner?.id ?? '',
      serviceName: owner?.name ?? '',
      serviceTags: owner ? [...owner.tags] : [],
      type: checkType(checkDef),
      def: checkDef,
      createIndex: existing?.createIndex ?? now,
      modifyIndex: now,
      stop: () => undefined,
      ...(owner?.namespace !== undefined && { namespace: owner.namespace }),
      ...(owner?.partition !== undefined && { partition: owner.partition }),
      ...(criticalSince !== undefined && { criticalSince }),
      ...(checkDef.deregisterAfterMs !== undefined &&
        checkDef.deregisterAfterMs > 0 && {
          reapAfterMs: Math.max(checkDef.deregisterAfterMs, this.options.minDeregisterAfterMs),
        }),
    };
    this.checks.set(id, record);
    this.touchCheck(record, now);
    // A check that changed hands (another service, or the node) may have been what a session relied on.
    if (existing && existing.serviceId !== record.serviceId) this.options.onCheckFailed?.(id);
    this.startRunner(record);
  }

  deregisterService(id: string): boolean {
    const service = this.services.get(id);
    if (!service) return false;
    this.services.delete(id);
    for (const check of [...this.checks.values()]) {
      if (check.serviceId === id) this.removeCheck(check.id);
    }
    const now = this.nextIndex();
    this.touch(service.name, now);
    this.catalogIndex = now;
    this.afterChange();
    return true;
  }

  /**
   * Tags written to the catalog by someone else, after anti-entropy ran: a service with `EnableTagOverride`
   * takes them over; any other service keeps its own (anti-entropy writes the agent's tags back). Returns
   * whether the agent's view changed.
   */
  adoptCatalogTags(serviceId: string, tags: readonly string[]): boolean {
    const service = this.services.get(serviceId);
    if (!service?.enableTagOverride) return false;
    const now = this.nextIndex();
    service.tags = [...tags];
    service.modifyIndex = now;
    for (const check of this.checks.values()) {
      if (check.serviceId === serviceId) check.serviceTags = [...tags];
    }
    this.touch(service.name, now);
    this.catalogIndex = now;
    this.afterChange();
    return true;
  }

  /** Status change from outside (TTL update, probe result, test hook). Returns false for unknown checks. */
  setStatus(checkId: string, status: CheckStatus, output: string): boolean {
    const check = this.checks.get(checkId);
    if (!check) return false;
    this.applyStatus(check, status, truncateOutput(output));
    this.afterChange();
    return true;
  }

  /** A TTL update: sets the status and restarts the TTL timer. */
  updateTtl(checkId: string, status: CheckStatus, output: string): 'ok' | 'unknown' | 'not-ttl' {
    const check = this.checks.get(checkId);
    if (!check) return 'unknown';
    if (check.type !== 'ttl') return 'not-ttl';
    check.stop();
    this.startRunner(check);
    this.applyStatus(check, status, truncateOutput(output));
    this.afterChange();
    return 'ok';
  }

  /** Forget everything, as an agent restarted without its data directory does. */
  clear(): void {
    for (const check of this.checks.values()) check.stop();
    const names = new Set([...this.services.values()].map((s) => s.name));
    const lost = [...this.checks.keys()];
    this.services.clear();
    this.checks.clear();
    // Anti-entropy then removes them from the catalog, which invalidates the sessions that list them.
    for (const id of lost) this.options.onCheckFailed?.(id);
    const now = this.nextIndex();
    for (const name of names) this.touch(name, now);
    this.catalogIndex = now;
    this.afterChange();
  }

  close(): void {
    clearInterval(this.reaper);
    for (const check of this.checks.values()) check.stop();
    for (const waiter of [...this.waiters]) waiter();
  }

  reap(): void {
    const now = Date.now();
    for (const check of [...this.checks.values()]) {
      if (check.reapAfterMs === undefined || check.status !== 'critical' || check.criticalSince === undefined)
        continue;
      if (now - check.criticalSince >= check.reapAfterMs && this.services.has(check.serviceId)) {
        this.deregisterService(check.serviceId);
      }
    }
  }

  private startReaper(): void {
    this.reaper = setInterval(() => this.reap(), this.options.reapIntervalMs);
    this.reaper.unref();
  }

  private removeCheck(id: string): void {
    const check = this.checks.get(id);
    if (!check) return;
    check.stop();
    this.checks.delete(id);
    this.touchCheck(check, this.nextIndex());
    // Consul deletes the sessions of a deregistered check along with it.
    this.options.onCheckFailed?.(id);
  }

  private applyStatus(check: CheckRecord, status: CheckStatus, output: string): void {
    // The real agent ignores updates that change nothing, so watches do not fire on every heartbeat.
    if (check.status === status && check.output === output) return;
    const failed = status === 'critical' && check.status !== 'critical';
    if (failed) check.criticalSince = Date.now();
    if (status !== 'critical') delete check.criticalSince;
    check.status = status;
    check.output = output;
    const now = this.nextIndex();
    check.modifyIndex = now;
    this.touchCheck(check, now);
    // The agent syncs a status change at once; the servers then invalidate the sessions listing the check.
    if (failed) this.options.onCheckFailed?.(check.id);
  }

  /** A node-level check is part of every service's health on the node. */
  private touchCheck(check: CheckRecord, index: number): void {
    if (check.serviceId !== '') return this.touch(check.serviceName, index);
    for (const service of this.services.values()) this.touch(service.name, index);
  }

  private startRunner(check: CheckRecord): void {
    const def = check.def;
    if (check.type === 'ttl' && def.ttlMs !== undefined) {
      const ttl = def.ttlMs;
      check.stop = longTimeout(() => {
        if (this.checks.get(check.id) !== check) return;
        this.applyStatus(check, 'critical', 'TTL expired');
        this.afterChange();
      }, ttl);
    } else if ((check.type === 'http' || check.type === 'tcp') && def.intervalMs !== undefined) {
      const interval = Math.max(def.intervalMs, 1000);
      const timeout = def.timeoutMs ?? 10_000;
      let stopped = false;
      let timer: NodeJS.Timeout;
      const run = (): void => {
        void probe(def, timeout).then(([status, output]) => {
          if (stopped || this.checks.get(check.id) !== check) return;
          this.applyStatus(check, status, truncateOutput(output));
          this.afterChange();
          timer = setTimeout(run, interval);
          timer.unref();
        });
      };
      // The agent staggers the first run randomly within the interval; capped so tests see results soon.
      timer = setTimeout(run, Math.random() * Math.min(interval, 1000));
      timer.unref();
      check.stop = () => {
        stopped = true;
        clearTimeout(timer);
      };
    }
  }

  /** Alias checks mirror the worst status of the aliased service's checks; critical if it is gone. */
  private evaluateAliases(): boolean {
    // One pass over all checks: worst status per service id ('' = node-level checks, which count for every alias).
    const rank = { passing: 0, warning: 1, critical: 2 } as const;
    const worst = new Map<string, { status: CheckStatus; output: string }>();
    for (const check of this.checks.values()) {
      const cur = worst.get(check.serviceId);
      if (!cur) {
        worst.set(check.serviceId, {
          status: check.status,
          output:
            check.status === 'passing'
              ? 'All checks passing.'
              : `Aliased check ${JSON.stringify(check.name)} failing: ${check.output}`,
        });
      } else if (
        rank[check.status] > rank[cur.status] ||
        (check.status === 'warning' && cur.status === 'warning')
      ) {
        cur.status = check.status;
        cur.output = `Aliased check ${JSON.stringify(check.name)} failing: ${check.output}`;
      }
    }
    let changed = false;
    for (const alias of this.checks.values()) {
      if (alias.type !== 'alias') continue;
      const target = alias.def.aliasService ?? '';
      const node = alias.def.aliasNode ?? '';
      let status: CheckStatus = 'passing';
      let output = 'No checks found.';
      if (node !== '' && node !== this.options.nodeName) {
        status = 'critical';
        output = `Failure checking aliased node or service: node ${JSON.stringify(node)} not found`;
      } else {
        const candidates = [worst.get(''), target !== '' ? worst.get(target) : undefined];
        for (const c of candidates) {
          if (
            c &&
            (rank[c.status] > rank[status] || (status === 'passing' && output === 'No checks found.'))
          ) {
            status = c.status;
            output = c.output;
          }
        }
        if (target !== '' && !worst.has(target) && !this.services.has(target)) {
          status = 'critical';
          output = `Service ${target} could not be found on node ${node}`;
        }
      }
      if (alias.status !== status || alias.output !== output) {
        this.applyStatus(alias, status, output);
        changed = true;
      }
    }
    return changed;
  }

  private afterChange(): void {
    // Aliases can alias aliases; settle them (bounded, in case of cycles).
    for (let i = 0; i < 10 && this.evaluateAliases(); i++);
    this.notify();
  }

  /** Wake blocking queries (once per tick, however many changes it made). */
  notify(): void {
    if (this.notifyQueued) return;
    this.notifyQueued = true;
    queueMicrotask(() => {
      this.notifyQueued = false;
      for (const waiter of [...this.waiters]) waiter();
    });
  }

  /** The next raft index; the KV store and sessions share it with services and checks. */
  nextIndex(): number {
    return ++this.index;
  }

  private touch(name: string, index: number): void {
    this.nameIndex.set(name, index);
  }
}

function probe(def: CheckDefinition, timeoutMs: number): Promise<[CheckStatus, string]> {
  if (def.tcp) {
    const target = def.tcp;
    const at = target.lastIndexOf(':');
    const host = target.slice(0, at).replace(/^\[|\]$/g, '');
    const port = Number(target.slice(at + 1));
    return new Promise((resolve) => {
      const socket = connect({ host, port, timeout: timeoutMs });
      socket.once('connect', () => {
        socket.destroy();
        resolve(['passing', `TCP connect ${target}: Success`]);
      });
      socket.once('timeout', () => {
        socket.destroy();
        resolve(['critical', `dial tcp ${target}: i/o timeout`]);
      });
      socket.once('error', (err: NodeJS.ErrnoException) => {
        resolve([
          'critical',
          `dial tcp ${target}: ${err.code === 'ECONNREFUSED' ? 'connect: connection refused' : err.message}`,
        ]);
      });
    });
  }
  const url = def.http ?? '';
  const method = def.method || 'GET';
  return new Promise((resolve) => {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      resolve(['critical', `${method} ${url}: invalid URL`]);
      return;
    }
    const headers: Record<string, string[]> = { 'User-Agent': ['Consul Health Check'], ...def.header };
    const req = (parsed.protocol === 'https:' ? httpsRequest : httpRequest)(
      parsed,
      { method, headers, timeout: timeoutMs, rejectUnauthorized: !def.tlsSkipVerify },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (body.length < OUTPUT_MAX) body += chunk;
        });
        res.on('end', () => {
          const code = res.statusCode ?? 0;
          const output = `HTTP ${method} ${url}: ${code} ${res.statusMessage ?? ''} Output: ${body}`;
          resolve([code >= 200 && code < 300 ? 'passing' : code === 429 ? 'warning' : 'critical', output]);
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('context deadline exceeded')));
    req.on('error', (err) => resolve(['critical', `${method} ${url}: ${err.message}`]));
    req.end(def.body);
  });
}
