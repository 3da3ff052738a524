import type { Service } from './service.js';

/**
 * The services this node wants registered, by id, kept up to date one container at a time: a change costs
 * O(that container's services), never a rebuild. When two containers claim one id (e.g. the same
 * SERVICE_ID) the first claim holds it, and the next takes over when it goes.
 */
export class DesiredServices {
  private readonly byId = new Map<string, Service>();
  /** Per service id, the claiming containers' services in claim order (a Map keeps insertion order). */
  private readonly claims = new Map<string, Map<string, Service>>();
  private readonly warned = new Set<string>();

  /** `onDuplicate` is called once per id while more than one container claims it. */
  constructor(private readonly onDuplicate: (holder: Service, other: Service) => void = () => undefined) {}

  /** The live map: read it, do not copy it per call. */
  get services(): ReadonlyMap<string, Service> {
    return this.byId;
  }

  /**
   * Container `containerId` now serves `next` instead of `previous`. Returns the ids whose desired service
   * changed (compared by identity: an unchanged service object is no change).
   */
  update(containerId: string, previous: readonly Service[], next: readonly Service[]): Set<string> {
    const touched = new Set<string>();
    const nextIds = new Set(next.map((service) => service.id));
    for (const service of previous) {
      if (nextIds.has(service.id)) continue;
      const claims = this.claims.get(service.id);
      claims?.delete(containerId);
      if (claims?.size === 0) this.claims.delete(service.id);
      touched.add(service.id);
    }
    for (const service of next) {
      let claims = this.claims.get(service.id);
      if (claims === undefined) this.claims.set(service.id, (claims = new Map<string, Service>()));
      claims.set(containerId, service);
      touched.add(service.id);
    }
    const changed = new Set<string>();
    for (const id of touched) {
      const before = this.byId.get(id);
      const claims = this.claims.get(id);
      const holder = claims?.values().next().value;
      if (holder === undefined) {
        this.byId.delete(id);
        this.warned.delete(id);
      } else {
        this.byId.set(id, holder);
        if (claims !== undefined && claims.size > 1 && !this.warned.has(id)) {
          this.warned.add(id);
          this.onDuplicate(holder, [...claims.values()].at(-1) ?? holder);
        }
      }
      if (before !== holder) changed.add(id);
    }
    return changed;
  }
}
