import type { Service } from '../../service.js';
import { stepBuilder, type SourceInput, type Step, type StepBuilder } from '../../source.js';
import {
  deriveSwarmService,
  isTaskServed,
  swarmContext,
  swarmServiceId,
  taskServiceId,
  type SwarmContext,
  type SwarmDeriveOptions,
  type SwarmSnapshot,
} from './derive.js';
import type { SwarmFetch, SwarmHint, SwarmLook } from './events.js';

export type SwarmInput = SourceInput<SwarmHint, SwarmLook, SwarmFetch>;

export interface SwarmTrackOptions extends SwarmDeriveOptions {
  /** How often the whole cluster is listed (ms; 0: never): the ceiling of a settling service's backoff. */
  readonly pollMs?: number;
}

/** One Swarm service as last listed, and the sequence number of the fetch that listed it. */
interface TrackedService {
  readonly spec: unknown;
  readonly tasks: readonly unknown[];
  readonly seq: number;
  /** As derived from spec and tasks; the registries get these (unchanged ones keep their identity). */
  readonly services: readonly Service[];
  /** Signature of the warnings last logged, so a re-list does not repeat them. */
  readonly warned: string;
}

/** A service being looked at again until it settles. */
interface Settling {
  readonly delay: number;
  /** When the service was first seen unsettled in this run of looks (ms since the epoch). */
  readonly since: number;
  /** A look is scheduled (under the key `settle:<id>`). */
  readonly scheduled: boolean;
  /** Asked for by an event: not cancelled when a look finds the service settled. */
  readonly pinned: boolean;
}

/** The Swarm source's state: what it knows of each service, and of the cluster's nodes. */
export interface SwarmSourceState {
  readonly services: Map<string, TrackedService>;
  readonly settling: Map<string, Settling>;
  context: SwarmContext;
  connected: boolean;
  /** The last list failed: further failures are logged at debug level until one succeeds. */
  listFailing: boolean;
  inventoryComplete: boolean;
  /** The sequence number of the last inventory applied; older per-service fetches are stale. */
  inventorySeq: number;
}

export const initialSwarmState = (): SwarmSourceState => ({
  services: new Map(),
  settling: new Map(),
  context: swarmContext([]),
  connected: false,
  listFailing: false,
  inventoryComplete: false,
  inventorySeq: 0,
});

/** First delay between looks at a service whose tasks are still starting or updating. */
const SETTLE_FIRST_MS = 500;
/**
 * For this long after a service turned unsettled it is listed every SETTLE_FIRST_MS, not backing off: Swarm
 * sends no task events, so a task that starts on another node is seen at the next look only, and a scale-up
 * should be visible within about half a second of its last task running. A service that stays unsettled
 * longer (an image that never pulls) backs off to the poll interval.
 */
const SETTLE_BRISK_MS = 30_000;

const settleKey = (id: string) => `settle:${id}`;

interface Context {
  readonly state: SwarmSourceState;
  readonly step: StepBuilder<SwarmLook>;
  readonly now: number;
  readonly options: SwarmTrackOptions;
}

/**
 * The Swarm source's reducer: a manager's services, tasks and nodes → `deriveSwarmService` per service.
 * Level-triggered: events only say which service to list again, a periodic inventory catches what no event
 * reports (tasks on other nodes), and a service whose tasks are still starting or updating is listed again,
 * backing off, until it has settled.
 */
export function trackSwarm(
  state: SwarmSourceState,
  input: SwarmInput,
  now: number,
  options: SwarmTrackOptions,
): Step<SwarmLook> {
  const step = stepBuilder<SwarmLook>();
  const c: Context = { state, step, now, options };
  switch (input.kind) {
    case 'hint': {
      const { hint } = input;
      if (hint.kind === 'connection') {
        state.connected = hint.connected;
        break;
      }
      // Swarm acts on a changed spec (scales, starts an update) just after the event: look once more then.
      if (hint.kind === 'service') lookAgainSoon(c, hint.id);
      step.look(hint);
      break;
    }
    case 'fetched':
      onFetch(c, input.fetched);
      break;
    case 'due': {
      const { look } = input;
      if (look.kind === 'service') {
        const entry = state.settling.get(look.id);
        if (entry !== undefined) state.settling.set(look.id, { ...entry, scheduled: false, pinned: false });
      }
      step.look(look);
    }
  }
  return step.step();
}

function onFetch(c: Context, fetched: SwarmFetch) {
  const { state, step } = c;
  if (fetched.kind !== 'error' && state.listFailing) {
    state.listFailing = false;
    step.info({}, 'swarm lists answer again');
  }
  switch (fetched.kind) {
    case 'error': {
      // The manager did not answer (lost quorum, restarting): keep what we know; the poll looks again.
      const fields = { err: fetched.error, look: fetched.look.kind };
      if (state.listFailing) step.debug(fields, 'swarm list failed; keeping the last state');
      else step.warn(fields, 'swarm list failed; keeping the last state');
      state.listFailing = true;
      if (fetched.look.kind === 'service') settleLater(c, fetched.look.id);
      return;
    }
    case 'nodes':
      setNodes(c, fetched.nodes);
      return;
    case 'service':
      // An inventory that began later already has newer data.
      if (fetched.seq < state.inventorySeq) return;
      track(c, fetched.id, fetched.service, fetched.tasks, fetched.seq);
      return;
    case 'inventory':
      applyInventory(c, fetched.seq, fetched.snapshot);
  }
}

function applyInventory(c: Context, seq: number, snapshot: SwarmSnapshot) {
  const { state, step } = c;
  state.inventorySeq = seq;
  setNodes(c, snapshot.nodes, false);
  const tasksOf = new Map<string, unknown[]>();
  for (const task of snapshot.tasks) {
    const id = taskServiceId(task);
    tasksOf.set(id, [...(tasksOf.get(id) ?? []), task]);
  }
  const listed = new Set<string>();
  for (const spec of snapshot.services) {
    const id = swarmServiceId(spec);
    if (id === '') continue;
    listed.add(id);
    // A service listed again after this inventory began is newer than what the inventory saw.
    if ((state.services.get(id)?.seq ?? 0) > seq) continue;
    track(c, id, spec, tasksOf.get(id) ?? [], seq);
  }
  for (const [id, tracked] of state.services) {
    if (!listed.has(id) && tracked.seq < seq) track(c, id, undefined, [], seq);
  }
  if (!state.inventoryComplete) {
    state.inventoryComplete = true;
    step.flags.inventoryComplete = true;
    let entries = 0;
    for (const tracked of state.services.values()) entries += tracked.services.length;
    step.info({ services: state.services.size, entries }, 'swarm inventory complete');
  }
}

/** New nodes: every service is derived again (node addresses, ready nodes). */
function setNodes(c: Context, nodes: readonly unknown[], rederive = true) {
  c.state.context = swarmContext(nodes);
  if (!rederive) return;
  for (const [id, tracked] of c.state.services) track(c, id, tracked.spec, tracked.tasks, tracked.seq);
}

/**
 * The one place a Swarm service's state changes: derives its entries, keeps the unchanged ones' identity, and
 * says what it offers now, so a pass costs O(this service).
 */
function track(c: Context, id: string, spec: unknown, tasks: readonly unknown[], seq: number) {
  const { state, step, options } = c;
  const previous = state.services.get(id);
  let next: TrackedService | undefined;
  if (spec !== undefined) {
    const derivation = deriveSwarmService(spec, tasks, state.context, options);
    const warned = derivation.warnings.map((w) => `${w.key}:${w.message}`).join('\n');
    if (warned !== '' && warned !== previous?.warned) {
      for (const w of derivation.warnings) step.warn({ service: w.container, label: w.key }, w.message);
    }
    next = {
      spec,
      tasks,
      seq,
      services: keepIdentity(previous?.services ?? [], derivation.services),
      warned,
    };
    state.services.set(id, next);
  } else state.services.delete(id);
  if (previous !== undefined || next !== undefined) step.owner(id, next?.services ?? []);
  if (next !== undefined && !settled(next)) settleLater(c, id);
  else stopSettling(c, id);
}

/** Look at a service again soon: its tasks are starting, stopping or being updated. */
function settleLater(c: Context, id: string) {
  const current = c.state.settling.get(id);
  if (current?.scheduled === true) return;
  const since = current?.since ?? c.now;
  const delay =
    current === undefined || c.now - since < SETTLE_BRISK_MS
      ? SETTLE_FIRST_MS
      : Math.min(current.delay * 2, maxSettleMs(c.options));
  schedule(c, id, delay, false, since);
}

function stopSettling(c: Context, id: string) {
  const entry = c.state.settling.get(id);
  // A look asked for by an event still happens, settled or not.
  if (entry?.pinned === true && entry.scheduled) return;
  if (entry?.scheduled === true) c.step.cancel(settleKey(id));
  c.state.settling.delete(id);
}

/** One more look at a service shortly, however settled the look in flight finds it. */
function lookAgainSoon(c: Context, id: string) {
  const current = c.state.settling.get(id);
  if (current?.scheduled === true) {
    c.state.settling.set(id, { ...current, pinned: true });
    return;
  }
  schedule(c, id, SETTLE_FIRST_MS, true, current?.since ?? c.now);
}

function schedule(c: Context, id: string, delay: number, pinned: boolean, since: number) {
  c.state.settling.set(id, { delay, pinned, since, scheduled: true });
  c.step.later({ kind: 'service', id }, delay, settleKey(id));
}

function maxSettleMs(options: SwarmTrackOptions) {
  const poll = options.pollMs ?? 15_000;
  return poll > 0 ? Math.max(SETTLE_FIRST_MS, poll) : 15_000;
}

/**
 * Whether a service has nothing in flight: every task Swarm wants running runs, and no rolling update is under
 * way (Swarm starts the next batch of an update without an event).
 */
function settled(tracked: TrackedService): boolean {
  const update = (tracked.spec as { UpdateStatus?: { State?: unknown } } | null)?.UpdateStatus?.State;
  if (update === 'updating' || update === 'rollback_started') return false;
  // Scaled, and Swarm has not yet started or stopped tasks to match.
  const replicas = (tracked.spec as { Spec?: { Mode?: { Replicated?: { Replicas?: unknown } } } } | null)
    ?.Spec?.Mode?.Replicated?.Replicas;
  const wanted = tracked.tasks.filter(
    (task) => (task as { DesiredState?: unknown } | null)?.DesiredState === 'running',
  );
  if (typeof replicas === 'number' && wanted.length !== replicas) return false;
  return tracked.tasks.every((task) => {
    const t = task as { DesiredState?: unknown; Status?: { State?: unknown } } | null;
    return t?.DesiredState !== 'running' || t.Status?.State === 'running';
  });
}

/** `next`, with each service equal to the previous one of its id replaced by that previous object. */
function keepIdentity(previous: readonly Service[], next: readonly Service[]): readonly Service[] {
  if (previous.length === 0) return next;
  const byId = new Map(previous.map((s) => [s.id, s]));
  let same = previous.length === next.length;
  const kept = next.map((service) => {
    const old = byId.get(service.id);
    if (old !== undefined && JSON.stringify(old) === JSON.stringify(service)) return old;
    same = false;
    return service;
  });
  return same ? previous : kept;
}

/** Tasks served: what `status()` counts as containers in Swarm mode. */
export function tasksServed(state: SwarmSourceState): number {
  let tasks = 0;
  for (const tracked of state.services.values()) tasks += tracked.tasks.filter(isTaskServed).length;
  return tasks;
}
