import type { FollowUpdate, Instance } from './follow.js';

/**
 * What every adapter's follower emits through, so the three agree on the contract's details: sets are sorted
 * by id and emitted only when they differ from the last one, `unreachable` is emitted once per outage, and the
 * first set after an outage is always emitted (the consumer learns that the registry is back).
 */
export interface FollowGate {
  /** The complete set now. Emitted unless it equals the last set and nothing went wrong since. */
  instances(instances: Iterable<Instance>): void;
  /** The registry cannot be reached. Emitted once, until the next `instances`; returns whether it was. */
  unreachable(error: Error): boolean;
  /** False from an `unreachable` until the next `instances`. */
  readonly reachable: boolean;
}

const byId = (a: Instance, b: Instance) =>
  a.id < b.id
    ? -1
    : a.id > b.id
      ? 1
      : a.address < b.address
        ? -1
        : a.address > b.address
          ? 1
          : a.port - b.port;

const byKey = ([a]: [string, string], [b]: [string, string]) => (a < b ? -1 : a > b ? 1 : 0);

/** An instance with only the contract's fields, tags and metadata only when there are some, metadata sorted. */
function normalise({ id, address, port, tags, meta }: Instance): Instance {
  const pairs = meta ? Object.entries(meta).sort(byKey) : [];
  return {
    id,
    address,
    port,
    ...(tags !== undefined && tags.length > 0 && { tags: [...tags] }),
    // fromEntries defines own properties, so a key such as `__proto__` stays a plain key.
    ...(pairs.length > 0 && { meta: Object.fromEntries(pairs) }),
  };
}

/**
 * Tags and metadata as an adapter's reader finds them in a stored value, for an `Instance`: only strings are
 * kept, and metadata keys for which `bookkeeping` is true (the writer's own fields) are left out.
 */
export function instanceLabels(
  tags: unknown,
  meta: unknown,
  bookkeeping: (key: string) => boolean = () => false,
): Pick<Instance, 'tags' | 'meta'> {
  const tagList = Array.isArray(tags) ? tags.filter((tag): tag is string => typeof tag === 'string') : [];
  const pairs =
    meta !== null && typeof meta === 'object' && !Array.isArray(meta)
      ? Object.entries(meta).filter(
          (pair): pair is [string, string] => typeof pair[1] === 'string' && !bookkeeping(pair[0]),
        )
      : [];
  return {
    ...(tagList.length > 0 && { tags: tagList }),
    ...(pairs.length > 0 && { meta: Object.fromEntries(pairs) }),
  };
}

export function followGate(next: (update: FollowUpdate) => void): FollowGate {
  let last: string | undefined;
  let reachable = true;
  return {
    instances(instances) {
      const sorted = [...instances].map(normalise).sort(byId);
      const key = JSON.stringify(sorted);
      if (reachable && key === last) return;
      last = key;
      reachable = true;
      next({ kind: 'instances', instances: sorted });
    },
    unreachable(error) {
      if (!reachable) return false;
      reachable = false;
      next({ kind: 'unreachable', error });
      return true;
    },
    get reachable() {
      return reachable;
    },
  };
}

/** The follows one follower has running, so that closing it ends them all (see `followLifetimes`). */
export interface FollowLifetimes {
  readonly closed: boolean;
  /**
   * Track one follow: `stop` ends its work, `begin` starts it, unless the follower is closed already, in which
   * case the follow completes at once. Returns the Observable's teardown.
   */
  run(subscriber: { complete(): void }, stop: () => void, begin: () => void): () => void;
  /** Complete every follow still running; false when already closed. */
  close(): boolean;
}

export function followLifetimes(): FollowLifetimes {
  const finishers = new Set<() => void>();
  let closed = false;
  return {
    get closed() {
      return closed;
    },
    run(subscriber, stop, begin) {
      const end = () => {
        stop();
        finishers.delete(finish);
      };
      const finish = () => {
        end();
        subscriber.complete();
      };
      finishers.add(finish);
      if (closed) finish();
      else begin();
      return end;
    },
    close() {
      if (closed) return false;
      closed = true;
      for (const finish of [...finishers]) finish();
      return true;
    },
  };
}
