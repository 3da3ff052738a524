import type { RegistryEntry } from './registry.js';
import type { Service } from './service.js';

export interface ReconcilePlan {
  /** Services to write: missing from the registry, or stored differently. */
  readonly register: Service[];
  /** Owned entries to remove. */
  readonly deregister: RegistryEntry[];
  /** Owned entries that are not desired but may not be removed (yet). */
  readonly kept: RegistryEntry[];
}

/**
 * Compare what should be registered with what this node owns, for the given ids only: the reconciler passes
 * the ids that changed, so a pass costs O(changed). Pure. Ids in `uncertain` (a write whose outcome is
 * unknown) are written or removed again whatever the registry was last known to hold.
 */
export function planChanges(
  ids: Iterable<string>,
  wanted: (id: string) => Service | undefined,
  actual: ReadonlyMap<string, RegistryEntry>,
  fingerprint: (service: Service) => string,
  mayRemove: (entry: RegistryEntry) => boolean,
  uncertain: ReadonlySet<string> = new Set(),
): ReconcilePlan {
  const register: Service[] = [];
  const deregister: RegistryEntry[] = [];
  const kept: RegistryEntry[] = [];
  for (const id of ids) {
    const service = wanted(id);
    const entry = actual.get(id) ?? (uncertain.has(id) ? { id, name: '', fingerprint: '' } : undefined);
    if (service !== undefined) {
      if (entry === undefined || uncertain.has(id) || entry.fingerprint !== fingerprint(service)) {
        register.push(service);
      }
    } else if (entry !== undefined) {
      if (mayRemove(entry)) deregister.push(entry);
      else kept.push(entry);
    }
  }
  return { register, deregister, kept };
}

/**
 * The full diff: every desired service against every owned entry. A resync that finds the registry equal to
 * the desired set yields an empty plan, so it writes nothing.
 */
export function planReconcile(
  desired: ReadonlyMap<string, Service>,
  actual: ReadonlyMap<string, RegistryEntry>,
  fingerprint: (service: Service) => string,
  mayRemove: (entry: RegistryEntry) => boolean,
): ReconcilePlan {
  const ids = new Set([...desired.keys(), ...actual.keys()]);
  return planChanges(ids, (id) => desired.get(id), actual, fingerprint, mayRemove);
}
