import type { Logger, Registry, RegistryOp, Service } from '@registrar/core';
import { formatHostPort } from '@registrar/core/kit';
import { thousands } from './logging.js';

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
  /** A reconcile pass that writes more changes than this is one summary line, not one line each. Default 5. */
  readonly bulk?: number;
  /** Changes logged one by one per registry and window, whatever the passes; the rest are summarised. */
  readonly linesPerWindow?: number;
  /** Default 10 s. */
  readonly windowMs?: number;
  /** A bulk pass whose writes stop coming (some failed) is summarised after this long. Default 1 s. */
  readonly quietMs?: number;
  readonly now?: () => number;
}

type Kind = 'registered' | 'updated' | 'deregistered';

/** Changes counted instead of logged: one bulk pass, or the overflow of a window. */
interface Tally {
  readonly started: number;
  last: number;
  readonly counts: Record<Kind, number>;
  /** A bulk pass: the writes it planned; the summary goes out once they are all in. */
  readonly expected?: number;
  timer?: NodeJS.Timeout;
}

interface Window {
  readonly started: number;
  lines: number;
  overflow?: Tally;
}

const total = (t: Tally) => t.counts.registered + t.counts.updated + t.counts.deregistered;

/**
 * One INFO line per change and registry, `registered <id> <address>:<port> in <registry>` / `deregistered <id>
 * from <registry> (<reason>)`, like registrator's `added:` / `removed:`. A pass that writes many changes at once
 * (a cold start, a resync, a lost lease) is one line instead, `registered 1,000 services in etcd://… in 0.9 s`,
 * and so is whatever exceeds `linesPerWindow` in a window (a storm of small changes). Fed by the reconcilers'
 * `onPass` and `onOp` hooks. The fields go under `change` (the pretty log shows the message alone).
 */
export class ChangeLog {
  private readonly bulks = new Map<string, Tally>();
  private readonly windows = new Map<string, Window>();
  /** Per registry, the ids this run registered there; removed ones leave. */
  private readonly registered = new Map<string, Set<string>>();
  /** The ids the first inventory found wanted (bounded by it: ids are never added later). */
  private readonly inventory = new Set<string>();
  private inventorySeen = false;
  private readonly bulk: number;
  private readonly linesPerWindow: number;
  private readonly windowMs: number;
  private readonly quietMs: number;
  private readonly now: () => number;

  constructor(
    private readonly log: Logger,
    private readonly context: ChangeContext,
    options: ChangeLogOptions = {},
  ) {
    this.bulk = options.bulk ?? 5;
    this.linesPerWindow = options.linesPerWindow ?? 50;
    this.windowMs = options.windowMs ?? 10_000;
    this.quietMs = options.quietMs ?? 1_000;
    this.now = options.now ?? Date.now;
  }

  /**
   * A reconcile pass begins (`onPass`) and plans `drift` writes: more than `bulk` are tallied into one line.
   * The first pass after the inventory also remembers what the inventory found.
   */
  pass(registry?: Registry, drift = 0): void {
    if (!this.inventorySeen && this.context.inventoryComplete()) {
      this.inventorySeen = true;
      for (const id of this.context.desired().keys()) this.inventory.add(id);
    }
    if (registry === undefined) return;
    this.endBulk(registry.target);
    if (drift > this.bulk) this.bulks.set(registry.target, tally(this.now(), drift));
  }

  /** A write that succeeded. */
  op(registry: Registry, op: RegistryOp): void {
    this.pass();
    const target = registry.target;
    const { kind, line, fields } = this.describe(registry, op);
    const now = this.now();
    const bulk = this.bulks.get(target);
    if (bulk !== undefined) {
      this.count(bulk, kind, now);
      if (total(bulk) >= (bulk.expected ?? Infinity)) this.endBulk(target);
      else this.quiet(bulk, () => this.endBulk(target));
      return;
    }
    let window = this.windows.get(target);
    if (window === undefined || now - window.started >= this.windowMs) {
      if (window !== undefined) this.endWindow(target, window);
      window = { started: now, lines: 0 };
      this.windows.set(target, window);
    }
    if (window.lines < this.linesPerWindow) {
      window.lines += 1;
      this.log.info(fields, line);
      return;
    }
    window.overflow ??= tally(now);
    this.count(window.overflow, kind, now);
    const current = window;
    this.quiet(window.overflow, () => this.endWindow(target, current), this.windowMs);
  }

  /** Summarise whatever is being tallied (on shutdown). */
  flush(): void {
    for (const target of [...this.bulks.keys()]) this.endBulk(target);
    for (const [target, window] of [...this.windows]) this.endWindow(target, window);
  }

  private count(t: Tally, kind: Kind, now: number) {
    t.counts[kind] += 1;
    t.last = now;
  }

  private quiet(t: Tally, end: () => void, ms = this.quietMs) {
    clearTimeout(t.timer);
    t.timer = setTimeout(end, ms);
    t.timer.unref();
  }

  private endBulk(target: string) {
    const bulk = this.bulks.get(target);
    if (bulk === undefined) return;
    this.bulks.delete(target);
    this.summarise(target, bulk);
  }

  private endWindow(target: string, window: Window) {
    if (this.windows.get(target) === window) this.windows.delete(target);
    if (window.overflow !== undefined) this.summarise(target, window.overflow);
    window.overflow = undefined;
  }

  private summarise(target: string, t: Tally) {
    clearTimeout(t.timer);
    const n = total(t);
    if (n === 0) return;
    const parts = (Object.entries(t.counts) as [Kind, number][])
      .filter(([, count]) => count > 0)
      .map(([kind, count]) => `${kind} ${thousands(count)}`);
    const what =
      parts.length === 1
        ? `${parts[0]} ${n === 1 ? 'service' : 'services'}`
        : `${parts.slice(0, -1).join(', ')} and ${parts.at(-1)} services`;
    const seconds = Math.round((t.last - t.started) / 100) / 10;
    this.log.info({ change: { target, ...t.counts, seconds } }, `${what} in ${target} in ${seconds} s`);
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
        fields: {
          change: {
            kind,
            target,
            serviceId: s.id,
            ...(s.container && { container: s.container.name }),
            address,
          },
        },
      };
    }
    const id = op.entry.id;
    const reason = deregisterReason(id, this.context, registered.has(id) || this.inventory.has(id));
    registered.delete(id);
    return {
      kind: 'deregistered' as const,
      line: `deregistered ${id} from ${target} (${reason})`,
      fields: { change: { kind: 'deregistered', target, serviceId: id, reason } },
    };
  }
}

function tally(now: number, expected?: number): Tally {
  return {
    started: now,
    last: now,
    counts: { registered: 0, updated: 0, deregistered: 0 },
    ...(expected !== undefined && { expected }),
  };
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
