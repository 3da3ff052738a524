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
 * Compare what should be registered with what this node owns. Pure: a resync that finds the registry equal
 * to the desired set yields an empty plan, so it writes nothing.
 */
export function planReconcile(
  desired: ReadonlyMap<string, Service>,
  actual: ReadonlyMap<string, RegistryEntry>,
  fingerprint: (service: Service) => string,
  mayRemove: (entry: RegistryEntry) => boolean,
): ReconcilePlan {
  const register: Service[] = [];
  const deregister: RegistryEntry[] = [];
  const kept: RegistryEntry[] = [];
  for (const [id, service] of desired) {
    const entry = actual.get(id);
    if (entry === undefined || entry.fingerprint !== fingerprint(service)) register.push(service);
  }
  for (const [id, entry] of actual) {
    if (desired.has(id)) continue;
    if (mayRemove(entry)) deregister.push(entry);
    else kept.push(entry);
  }
  return { register, deregister, kept };
}
