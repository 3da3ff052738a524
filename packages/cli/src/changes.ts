import { formatHostPort, type Logger, type Registry, type RegistryOp, type Service } from '@registrar/core';

/** What the change log reads of the bridge to say why a service was removed. */
export interface ChangeContext {
  /** The services the bridge wants now (a drained or unhealthy one is still here, not passing). */
  desired(): ReadonlyMap<string, Service>;
  inventoryComplete(): boolean;
  /** `--cleanup`: entries of earlier runs are removed as clean-up. */
  readonly cleanup: boolean;
  /** Swarm mode: services are tasks, not containers. */
  readonly swarm: boolean;
}

export interface ChangeLogOptions {
  /** A burst ends after this long without a change. Default 1 s. */
  readonly quietMs?: number;
  /** Changes logged one by one at the start of a burst; the rest are summarised. Default 5. */
  readonly burstLines?: number;
  /** A burst that never ends is summarised this often. Default 10 s. */
  readonly maxBurstMs?: number;
  readonly now?: () => number;
}

type Kind = 'registered' | 'updated' | 'deregistered';

interface Burst {
  readonly started: number;
  last: number;
  shown: number;
  suppressed: number;
  readonly counts: Record<Kind, number>;
  timer?: NodeJS.Timeout;
}

const number = (n: number) => n.toLocaleString('en-US');

/**
 * One INFO line per change and registry, `registered <id> <address>:<port> in <registry>` / `deregistered <id>
 * (<reason>)`, like registrator's `added:` / `removed:`. A cold start or a resync would flood the log with
 * thousands of them, so each registry's burst logs its first few changes one by one and then one summary when
 * it ends: `registered 1,000 services in etcd://… in 0.9 s`. Fed by the reconcilers' `onOp` hook.
 */
export class ChangeLog {
  private readonly bursts = new Map<string, Burst>();
  /** Per registry, the ids this run registered there; removed ones leave. */
  private readonly registered = new Map<string, Set<string>>();
  /** The ids the first inventory found wanted (bounded by it: ids are never added later). */
  private readonly inventory = new Set<string>();
  private inventorySeen = false;
  private readonly quietMs: number;
  private readonly burstLines: number;
  private readonly maxBurstMs: number;
  private readonly now: () => number;

  constructor(
    private readonly log: Logger,
    private readonly context: ChangeContext,
    options: ChangeLogOptions = {},
  ) {
    this.quietMs = options.quietMs ?? 1_000;
    this.burstLines = options.burstLines ?? 5;
    this.maxBurstMs = options.maxBurstMs ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /** Before each reconcile pass (`onPass`): the first after the inventory remembers what it found. */
  pass(): void {
    if (this.inventorySeen || !this.context.inventoryComplete()) return;
    this.inventorySeen = true;
    for (const id of this.context.desired().keys()) this.inventory.add(id);
  }

  /** A write that succeeded. */
  op(registry: Registry, op: RegistryOp): void {
    this.pass();
    const now = this.now();
    let burst = this.bursts.get(registry.target);
    if (burst !== undefined && now - burst.started >= this.maxBurstMs) {
      // A storm that does not end: summarise what it did so far, and go on summarising.
      this.end(registry.target, burst);
      burst = this.startBurst(registry.target, now, this.burstLines);
    }
    burst ??= this.startBurst(registry.target, now, 0);
    burst.last = now;
    const { kind, line, fields } = this.describe(registry, op);
    burst.counts[kind] += 1;
    if (burst.shown < this.burstLines) {
      burst.shown += 1;
      this.log.info(fields, line);
    } else burst.suppressed += 1;
    clearTimeout(burst.timer);
    const current = burst;
    burst.timer = setTimeout(() => this.end(registry.target, current), this.quietMs);
    burst.timer.unref();
  }

  /** Summarise every burst in progress (on shutdown). */
  flush(): void {
    for (const [target, burst] of this.bursts) this.end(target, burst);
  }

  private startBurst(target: string, now: number, shown: number): Burst {
    const burst: Burst = {
      started: now,
      last: now,
      shown,
      suppressed: 0,
      counts: { registered: 0, updated: 0, deregistered: 0 },
    };
    this.bursts.set(target, burst);
    return burst;
  }

  private end(target: string, burst: Burst): void {
    clearTimeout(burst.timer);
    if (this.bursts.get(target) === burst) this.bursts.delete(target);
    if (burst.suppressed === 0) return;
    const parts = (Object.entries(burst.counts) as [Kind, number][])
      .filter(([, n]) => n > 0)
      .map(([kind, n]) => `${kind} ${number(n)}`);
    const total = burst.counts.registered + burst.counts.updated + burst.counts.deregistered;
    const what =
      parts.length === 1
        ? `${parts[0]} ${total === 1 ? 'service' : 'services'}`
        : `${parts.slice(0, -1).join(', ')} and ${parts.at(-1)} services`;
    const seconds = Math.round((burst.last - burst.started) / 100) / 10;
    this.log.info({ target, ...burst.counts, seconds }, `${what} in ${target} in ${seconds} s`);
  }

  private describe(registry: Registry, op: RegistryOp) {
    const target = registry.target;
    let registered = this.registered.get(target);
    if (registered === undefined) this.registered.set(target, (registered = new Set()));
    if (op.type === 'register') {
      const s = op.service;
      registered.add(s.id);
      const address = formatHostPort({ host: s.address, port: s.port });
      const kind: Kind = op.replaces ? 'updated' : 'registered';
      const health =
        s.health === 'passing' ? '' : ` (${s.health}${s.healthOutput ? `: ${s.healthOutput}` : ''})`;
      return {
        kind,
        line: `${kind} ${s.id} ${address} in ${target}${health}`,
        fields: { target, serviceId: s.id, container: s.container.name, address },
      };
    }
    const id = op.entry.id;
    const reason = deregisterReason(id, this.context, registered.has(id) || this.inventory.has(id));
    registered.delete(id);
    return {
      kind: 'deregistered' as const,
      line: `deregistered ${id} from ${target} (${reason})`,
      fields: { target, serviceId: id, reason },
    };
  }
}

/**
 * Why a service left a registry: still wanted but withdrawn (drained at its stop signal, or not healthy where
 * the registry holds only passing services), gone after this run saw it, or gone before (at the inventory, or
 * as `--cleanup`).
 */
export function deregisterReason(id: string, context: ChangeContext, seen: boolean): string {
  const wanted = context.desired().get(id);
  if (wanted !== undefined) {
    if (wanted.healthOutput.startsWith('draining')) return 'drained';
    if (wanted.healthOutput === 'container paused') return 'paused';
    return wanted.health === 'warning' ? 'health starting' : 'unhealthy';
  }
  if (seen) return context.swarm ? 'task gone' : 'container died';
  return context.cleanup ? 'cleanup' : 'gone at inventory';
}
