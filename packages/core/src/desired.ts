import type { Service } from './service.js';

/**
 * The services this node wants registered, by id, kept up to date one owner (a container, a Swarm service) at
 * a time: a change costs O(that owner's services), never a rebuild. When two owners claim one id (e.g. the
 * same SERVICE_ID) the first claim holds it, and the next takes over when it goes.
 *
 * A state object and a function over it, updated in place: only the bridge's runner holds one, and copying
 * maps of 10,000 services per event would make every event O(all services).
 */
export interface DesiredSet {
  /** By service id, the service its holder offers: read it, do not copy it per call. */
  readonly services: Map<string, Service>;
  /** Per service id, the claiming owners' services in claim order (a Map keeps insertion order). */
  readonly claims: Map<string, Map<string, Service>>;
  /** Per owner, the services it offers now. */
  readonly owners: Map<string, readonly Service[]>;
  /** Ids already warned about as claimed twice. */
  readonly warned: Set<string>;
}

export const desiredSet = (): DesiredSet => ({
  services: new Map(),
  claims: new Map(),
  owners: new Map(),
  warned: new Set(),
});

/**
 * Owner `owner` now offers `next` (empty: nothing). Returns the ids whose desired service changed (compared
 * by identity: an unchanged service object is no change). `onDuplicate` is called once per id while more
 * than one owner claims it.
 */
export function updateDesired(
  set: DesiredSet,
  owner: string,
  next: readonly Service[],
  onDuplicate: (holder: Service, other: Service) => void = () => undefined,
): Set<string> {
  const previous = set.owners.get(owner) ?? [];
  if (next.length === 0) set.owners.delete(owner);
  else set.owners.set(owner, next);
  const touched = new Set<string>();
  const nextIds = new Set(next.map((service) => service.id));
  for (const service of previous) {
    if (nextIds.has(service.id)) continue;
    const claims = set.claims.get(service.id);
    claims?.delete(owner);
    if (claims?.size === 0) set.claims.delete(service.id);
    touched.add(service.id);
  }
  for (const service of next) {
    let claims = set.claims.get(service.id);
    if (claims === undefined) set.claims.set(service.id, (claims = new Map<string, Service>()));
    claims.set(owner, service);
    touched.add(service.id);
  }
  const changed = new Set<string>();
  for (const id of touched) {
    const before = set.services.get(id);
    const claims = set.claims.get(id);
    const holder = claims?.values().next().value;
    if (holder === undefined) {
      set.services.delete(id);
      set.warned.delete(id);
    } else {
      set.services.set(id, holder);
      if (claims !== undefined && claims.size > 1 && !set.warned.has(id)) {
        set.warned.add(id);
        onDuplicate(holder, [...claims.values()].at(-1) ?? holder);
      }
    }
    if (before !== holder) changed.add(id);
  }
  return changed;
}
