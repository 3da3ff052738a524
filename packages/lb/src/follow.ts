import {
  combineLatest,
  defer,
  distinctUntilChanged,
  filter,
  map,
  merge,
  mergeMap,
  ReplaySubject,
  share,
  timer,
  type Observable,
} from 'rxjs';
import {
  silentLogger,
  type FollowUpdate,
  type Instance,
  type Logger,
  type ServiceFollower,
} from '@registrar/core';
import { coalesceWhileBusy } from '@registrar/core/internal';
import {
  commandFailures,
  describeAddress,
  isServerAddress,
  parseServersState,
  runtimeCommand,
  type RuntimeAddress,
} from './haproxy.js';
import { planSlots, type SlotPlan } from './slots.js';

/** One service followed into one HAProxy backend. */
export interface LbTarget {
  readonly service: string;
  readonly backend: string;
}

/** What following reports, for metrics and readiness. Logging is done here already. */
export type LbEvent =
  | { readonly kind: 'instances'; readonly target: LbTarget; readonly count: number }
  | { readonly kind: 'registry'; readonly target: LbTarget; readonly reachable: boolean }
  | { readonly kind: 'haproxy'; readonly reachable: boolean }
  | { readonly kind: 'synced'; readonly target: LbTarget; readonly slots: number; readonly plan: SlotPlan };

export interface HaproxyFollowOptions {
  readonly follower: ServiceFollower;
  readonly haproxy: RuntimeAddress;
  readonly targets: readonly LbTarget[];
  /**
   * HAProxy is compared with the registry this often even when nothing changed, so an HAProxy that restarted
   * with empty slots is refilled within it. Default 1000 ms.
   */
  readonly checkIntervalMs?: number;
  /** Per runtime API call. Default 5000 ms. */
  readonly commandTimeoutMs?: number;
  readonly logger?: Logger;
}

/** HAProxy accepts this much on one command line (its default bufsize is 16 KiB); longer plans are split. */
const MAX_LINE = 8_000;

function lines(commands: readonly string[]): string[] {
  const out: string[] = [];
  for (const command of commands) {
    const last = out.at(-1);
    if (last !== undefined && last.length + command.length + 2 < MAX_LINE)
      out[out.length - 1] = `${last}; ${command}`;
    else out.push(command);
  }
  return out;
}

/**
 * Keep each target backend's server slots equal to its service's live instances: registry changes are applied
 * at once, and HAProxy is re-checked every `checkIntervalMs`. Slots are changed through the runtime API
 * (`set server ... addr`, `state ready` / `maint`), so nothing reloads and open connections are left to finish.
 * Subscribe to run it; unsubscribe to stop.
 */
export function followIntoHaproxy(options: HaproxyFollowOptions): Observable<LbEvent> {
  const log = options.logger ?? silentLogger;
  const interval = options.checkIntervalMs ?? 1_000;
  const timeout = options.commandTimeoutMs ?? 5_000;
  const where = describeAddress(options.haproxy);
  let haproxyUp: boolean | undefined;

  const haproxyState = (reachable: boolean, error?: unknown): LbEvent[] => {
    if (reachable === haproxyUp) return [];
    if (!reachable) log.warn({ haproxy: where, err: error }, 'HAProxy runtime API unreachable; retrying');
    else if (haproxyUp === false) log.info({ haproxy: where }, 'HAProxy runtime API reachable again');
    haproxyUp = reachable;
    return [{ kind: 'haproxy', reachable }];
  };

  const follow = (target: LbTarget): Observable<LbEvent> => {
    const tlog = log.child({ service: target.service, backend: target.backend });
    // Replayed, so that each of the streams below sees the latest update whenever it subscribes.
    const updates$ = options.follower
      .follow(target.service)
      .pipe(share({ connector: () => new ReplaySubject<FollowUpdate>(1), resetOnRefCountZero: true }));
    let lastUnplaced = 0;
    const skipped = new Set<string>();

    const usable = (instances: readonly Instance[]): Instance[] =>
      instances.filter((instance) => {
        if (isServerAddress(instance.address) && Number.isInteger(instance.port) && instance.port > 0)
          return true;
        if (!skipped.has(instance.id)) {
          skipped.add(instance.id);
          tlog.warn(
            { instance: instance.id, address: instance.address, port: instance.port },
            'instance skipped: HAProxy needs an IP address and a port',
          );
        }
        return false;
      });

    const sync = async (instances: readonly Instance[]): Promise<LbEvent[]> => {
      const events: LbEvent[] = [];
      try {
        const slots = parseServersState(
          await runtimeCommand(options.haproxy, `show servers state ${target.backend}`, timeout),
          target.backend,
        );
        events.push(...haproxyState(true));
        const plan = planSlots(target.backend, slots, instances);
        for (const line of lines(plan.commands)) {
          const failures = commandFailures(await runtimeCommand(options.haproxy, line, timeout));
          if (failures.length > 0)
            tlog.error({ command: line, answer: failures.join('; ') }, 'HAProxy refused a command');
        }
        if (plan.enabled + plan.disabled > 0) {
          tlog.info(
            { serving: plan.serving, enabled: plan.enabled, disabled: plan.disabled },
            'backend updated',
          );
        }
        if (plan.unplaced.length !== lastUnplaced) {
          if (plan.unplaced.length > 0) {
            tlog.error(
              { slots: slots.length, instances: instances.length, unplaced: plan.unplaced.map((i) => i.id) },
              `backend ${target.backend} has ${slots.length} server slots for ${plan.serving + plan.unplaced.length} instances: ${plan.unplaced.length} get no traffic; raise its server-template count`,
            );
          } else tlog.info({ slots: slots.length }, 'every instance has a server slot again');
          lastUnplaced = plan.unplaced.length;
        }
        events.push({ kind: 'synced', target, slots: slots.length, plan });
      } catch (error) {
        if (error instanceof Error && error.name === 'HaproxyCommandError') {
          events.push(...haproxyState(true));
          tlog.error({ err: error }, 'HAProxy backend unusable');
        } else events.push(...haproxyState(false, error));
      }
      return events;
    };

    const registry$ = updates$.pipe(
      map((update) => update.kind === 'instances'),
      distinctUntilChanged(),
      mergeMap((reachable, index): LbEvent[] => {
        if (!reachable) tlog.warn('registry unreachable; keeping the last known servers');
        else if (index > 0) tlog.info('registry reachable again');
        return [{ kind: 'registry', target, reachable }];
      }),
    );
    const instances$ = updates$.pipe(
      filter((update): update is Extract<FollowUpdate, { kind: 'instances' }> => update.kind === 'instances'),
      map((update) => usable(update.instances)),
      share({ connector: () => new ReplaySubject<Instance[]>(1), resetOnRefCountZero: true }),
    );
    const synced$ = combineLatest([instances$, timer(0, interval)]).pipe(
      coalesceWhileBusy(([instances]) => defer(() => sync(instances))),
      mergeMap((events) => events),
    );
    const counts$ = instances$.pipe(
      map((instances): LbEvent => ({ kind: 'instances', target, count: instances.length })),
    );
    return merge(registry$, counts$, synced$);
  };

  return merge(...options.targets.map(follow));
}
