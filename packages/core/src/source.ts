import type { Observable } from 'rxjs';
import type { DockerCallHealth } from './docker-calls.js';
import type { ExplainRegistry, ExplainReport, ExplainSummary } from './explain.js';
import type { Service } from './service.js';

/**
 * Where a source's services come from: the engine's hints (events, inventories), a fetch stage that asks the
 * engine what is true now, and a reducer that folds both into the source's state and says what follows. The
 * container and Swarm sources implement it; `startBridge` (bridge.ts) runs any source with the same tail:
 * desired set, one reconciler per registry, resync, election, status, explain and stop.
 *
 * Hints and fetched answers are only ever folded into the state by `reduce`, one at a time, in the runner; the
 * looks and timers a step asks for are the runner's to make. So a source has no Subject, no timer and no
 * mutable field of its own, and its whole behaviour is testable by calling `reduce` with a clock of one's own.
 */
export interface Source<State, Hint, Look, Fetched> {
  /** A fresh state (empty until the first inventory). */
  initial(): State;
  /** The engine's hints; never completes or errors. */
  hints(): Observable<Hint>;
  /**
   * The fetch stage: each look answered by the engine (bounded calls); never errors. `current` reads the state
   * (e.g. to tell a tracked container from an unknown one); it must not change it.
   */
  fetch(looks$: Observable<Look>, current: () => State): Observable<Fetched>;
  /**
   * Fold one input into `state` (updated in place: only the runner holds it, and copying maps of thousands of
   * owners per event would make every event cost O(all of them)) and say what follows. `now` is the clock.
   */
  reduce(state: State, input: SourceInput<Hint, Look, Fetched>, now: number): Step<Look>;
  /** What a resync asks the engine for. */
  readonly resyncLook: Look;
  /** The source's part of the bridge's status. */
  status(state: State): SourceStatus;
  /** Entries the registries must not remove though nothing wants them (their owner could not be looked at). */
  keep?(state: State, entryId: string): boolean;
  /** `registrar explain`: a report per tracked container (the container source only). */
  explain?(state: State, ref: string, context: ExplainContext): ExplainLookup;
  explainAll?(state: State, context: ExplainContext): ExplainSummary[];
}

/** One input to a source's reducer. */
export type SourceInput<Hint, Look, Fetched> =
  | { readonly kind: 'hint'; readonly hint: Hint }
  | { readonly kind: 'fetched'; readonly fetched: Fetched }
  /** A look a step asked for later is due. */
  | { readonly kind: 'due'; readonly look: Look; readonly key?: string };

/** What one step of a reducer asks of the runner. Every field is optional: an empty step asks nothing. */
export interface Step<Look> {
  /** Owners (a container, a Swarm service) whose services changed, with what they offer now ([]: nothing). */
  readonly owners?: ReadonlyMap<string, readonly Service[]>;
  /** Ask the engine now. */
  readonly looks?: readonly Look[];
  /** Ask later: the runner feeds it back as a `due` input. A `key` replaces the timer of that key. */
  readonly later?: readonly { readonly look: Look; readonly delayMs: number; readonly key?: string }[];
  /** Drop the timers of these keys. */
  readonly cancel?: readonly string[];
  /** The first complete inventory is in: entries nothing wants may be removed from now on. */
  readonly inventoryComplete?: true;
  /** What `keep` holds back changed: every registry diffs everything again. */
  readonly rediff?: true;
  /** The engine's event stream connected (true) or went away (false). */
  readonly connected?: boolean;
  /** Log lines, in order. */
  readonly logs?: readonly StepLog[];
}

export interface StepLog {
  readonly level: 'debug' | 'info' | 'warn';
  readonly fields: Readonly<Record<string, unknown>>;
  readonly msg: string;
}

/** What `status()` says of the source. */
export interface SourceStatus {
  readonly connected: boolean;
  readonly inventoryComplete: boolean;
  /** Containers (or Swarm tasks) served. */
  readonly containers: number;
  readonly unresolved: readonly UnresolvedContainer[];
  /** The engine's bounded calls. */
  readonly docker: DockerCallHealth;
}

/** A running container whose inspect keeps failing: its services are unknown, its entries are kept. */
export interface UnresolvedContainer {
  readonly id: string;
  readonly error: string;
  readonly attempts: number;
}

/** What explaining needs from the tail: every registry's view, and who holds an id. */
export interface ExplainContext {
  readonly registries: readonly ExplainRegistry[];
  /** The container holding a service id, when it is another one than the container explained. */
  readonly holderOf: (serviceId: string, containerId: string) => string | undefined;
}

/** What `/debug/containers/<ref>` answers. */
export type ExplainLookup =
  | { readonly kind: 'found'; readonly report: ExplainReport }
  | { readonly kind: 'unknown' }
  | { readonly kind: 'ambiguous'; readonly matches: readonly { id: string; name: string }[] };

/** Collects what a reducer step asks for; the reducer returns `step()`. */
export function stepBuilder<Look>() {
  const owners = new Map<string, readonly Service[]>();
  const looks: Look[] = [];
  const later: { look: Look; delayMs: number; key?: string }[] = [];
  const cancel: string[] = [];
  const logs: StepLog[] = [];
  const flags: { inventoryComplete?: true; rediff?: true; connected?: boolean } = {};
  const log = (level: StepLog['level']) => (fields: Record<string, unknown>, msg: string) =>
    logs.push({ level, fields, msg });
  return {
    owner: (id: string, services: readonly Service[]) => owners.set(id, services),
    look: (look: Look) => looks.push(look),
    later: (look: Look, delayMs: number, key?: string) =>
      later.push({ look, delayMs, ...(key !== undefined && { key }) }),
    cancel: (key: string) => cancel.push(key),
    flags,
    debug: log('debug'),
    info: log('info'),
    warn: log('warn'),
    step: (): Step<Look> => ({
      ...(owners.size > 0 && { owners }),
      ...(looks.length > 0 && { looks }),
      ...(later.length > 0 && { later }),
      ...(cancel.length > 0 && { cancel }),
      ...(logs.length > 0 && { logs }),
      ...flags,
    }),
  };
}

export type StepBuilder<Look> = ReturnType<typeof stepBuilder<Look>>;
