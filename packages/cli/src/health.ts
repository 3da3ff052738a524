import type {
  BridgeStatus,
  ExplainLookup,
  ExplainSummary,
  Registry,
  RegistryFailing,
  RegistryEvent,
} from '@registrar/core';
import { oneLine } from '@registrar/core';
import type { DockerProblem } from './docker.js';

/** What health reads of a bridge: the container bridge and the Swarm bridge both have it. */
export interface StatusSource {
  status(): BridgeStatus;
  /** Per container, where its services stand in each registry (the container bridge; Swarm gives none). */
  explainAll?(): readonly ExplainSummary[];
  explain?(ref: string): ExplainLookup;
}

/** Where one registry's services stand, by state, with one example id and error for the states that hurt. */
export interface RegistrationCounts {
  readonly backend: string;
  readonly target: string;
  readonly states: Readonly<Record<RegistrationStateName, number>>;
  readonly example?: {
    readonly state: 'rejected' | 'retrying';
    readonly id: string;
    readonly error?: string;
  };
}

export const REGISTRATION_STATES = ['registered', 'pending', 'retrying', 'rejected', 'withheld'] as const;
export type RegistrationStateName = (typeof REGISTRATION_STATES)[number];

/** One registry as health sees it: whether its last call succeeded, and the failure if not. */
interface RegistryHealth {
  readonly backend: string;
  up?: boolean;
  since?: number;
  error?: string;
}

/** `/readyz`: `ready`, the booleans of each dependency, and a reason for each one that is not ready. */
export interface Readiness {
  readonly ok: boolean;
  readonly detail: {
    readonly docker: boolean;
    readonly inventory: boolean;
    readonly backends: Readonly<Record<string, boolean>>;
    readonly reasons: Readonly<Record<string, string>>;
  };
}

const errorText = (error: unknown) => oneLine(error instanceof Error ? error.message : String(error), 300);

/** Counts are derived from every container's explain report: at most once a second. */
const COUNTS_TTL_MS = 1_000;

/**
 * The process's health from its first second: Docker while the bridge waits for it, then the bridge's status,
 * each registry's last call and heartbeat, and the services the registries refused or keep failing. `/readyz`,
 * `registrar_docker_up`, `registrar_registry_up` and `registrar_registrations` all read it.
 */
export class Health {
  /** The URIs as given: the registries' names until the adapters exist (they wait for Docker's info). */
  private pendingUris: readonly string[];
  private dockerProblem: DockerProblem | undefined = {
    cause: 'starting',
    sentence: 'asking Docker for its info (GET /info)',
  };
  private readonly registries = new Map<string, RegistryHealth>();
  private source: StatusSource | undefined;
  private counts: { at: number; value: readonly RegistrationCounts[] | undefined } | undefined;

  constructor(uris: readonly string[]) {
    this.pendingUris = uris;
  }

  /** While waiting for Docker: the problem it has (undefined once it answered). */
  docker(problem: DockerProblem | undefined): void {
    this.dockerProblem = problem;
  }

  /** The adapters exist: their targets replace the URIs; each is unknown until its first call. */
  attachRegistries(registries: readonly Registry[]): void {
    this.pendingUris = [];
    for (const r of registries) this.registries.set(r.target, { backend: r.backend });
  }

  attachBridge(source: StatusSource): void {
    this.source = source;
  }

  /** The reconciler's view: its last pass succeeded, or fails (with the streak). */
  reachable(registry: Registry, up: boolean, failing?: RegistryFailing): void {
    const entry = this.registryOf(registry);
    if (up) {
      entry.up = true;
      entry.since = undefined;
      entry.error = undefined;
      return;
    }
    if (entry.up !== false) entry.since = failing?.since ?? Date.now();
    entry.up = false;
    if (failing) entry.error = `${failing.stage} failing (${failing.passes} passes): ${failing.error}`;
  }

  /** The adapter's view: a failed heartbeat or a lost lease/session also means unreachable for now. */
  registryEvent(registry: Registry, event: RegistryEvent): void {
    const entry = this.registryOf(registry);
    if (event.type === 'recovered') {
      entry.up = true;
      entry.since = undefined;
      entry.error = undefined;
      return;
    }
    if (entry.up !== false) entry.since = Date.now();
    entry.up = false;
    entry.error =
      event.type === 'heartbeat-failed'
        ? `heartbeat failing: ${errorText(event.error)}`
        : `liveness lost: ${oneLine(event.reason, 300)}`;
  }

  /** 1/0 per registry target, for `registrar_registry_up`. */
  registryUp(): { backend: string; target: string; up: boolean }[] {
    return [...this.registries].map(([target, r]) => ({ backend: r.backend, target, up: r.up === true }));
  }

  /** Whether Docker answers: its info while starting, then the event stream. */
  dockerUp(): boolean {
    const status = this.source?.status();
    return status !== undefined ? status.dockerConnected : this.dockerProblem === undefined;
  }

  status(): BridgeStatus | undefined {
    return this.source?.status();
  }

  /**
   * Per registry, services by state. Today derived from every container's explain report (the reconcilers'
   * `stateOf`); undefined where the bridge explains nothing (Swarm mode).
   */
  registrations(now = Date.now()): readonly RegistrationCounts[] | undefined {
    if (this.counts !== undefined && now - this.counts.at < COUNTS_TTL_MS) return this.counts.value;
    const value = this.source ? registrationCounts(this.source) : undefined;
    this.counts = { at: now, value };
    return value;
  }

  readiness(): Readiness {
    const reasons: Record<string, string> = {};
    const status = this.source?.status();
    const docker = status?.dockerConnected ?? false;
    if (status === undefined) {
      reasons.docker = this.dockerProblem?.sentence ?? 'starting the bridge';
    } else if (!docker) {
      reasons.docker = 'the Docker event stream is not connected; reconnecting with backoff';
    }
    const inventory = status?.inventoryComplete ?? false;
    if (!inventory) {
      reasons.inventory =
        status === undefined
          ? 'not started: waiting for Docker'
          : 'the first inventory of running containers is not complete';
    }
    const backends: Record<string, boolean> = {};
    for (const uri of this.pendingUris) {
      backends[uri] = false;
      reasons[uri] = 'not connected yet: waiting for Docker (the node id and engine id come from it)';
    }
    for (const [target, r] of this.registries) {
      backends[target] = r.up === true;
      if (r.up === undefined) reasons[target] = 'no answer yet (first pass in progress)';
      else if (!r.up) {
        const since = r.since === undefined ? '' : ` since ${new Date(r.since).toISOString()}`;
        reasons[target] = `unreachable${since}: ${r.error ?? 'the last call failed'}`;
      }
    }
    const troubled = (this.registrations() ?? []).flatMap((c) => {
      const parts = (['rejected', 'retrying'] as const)
        .filter((s) => c.states[s] > 0)
        .map((s) => `${c.states[s]} ${s}`);
      if (parts.length === 0) return [];
      const example = c.example
        ? ` (e.g. ${c.example.id}${c.example.error ? `: ${oneLine(c.example.error, 200)}` : ''})`
        : '';
      return [`${parts.join(', ')} in ${c.target}${example}`];
    });
    if (troubled.length > 0) reasons.services = troubled.join('; ');
    return {
      ok: Object.keys(reasons).length === 0,
      detail: { docker, inventory, backends, reasons },
    };
  }

  private registryOf(registry: Registry): RegistryHealth {
    let entry = this.registries.get(registry.target);
    if (entry === undefined) {
      entry = { backend: registry.backend };
      this.registries.set(registry.target, entry);
    }
    return entry;
  }
}

/**
 * Services by state per registry, from each tracked container's explain report (which reads every
 * reconciler's `stateOf`). Undefined when the source explains nothing although it wants services (Swarm).
 */
export function registrationCounts(source: StatusSource): RegistrationCounts[] | undefined {
  const summaries = source.explainAll?.() ?? [];
  if (source.explain === undefined || (summaries.length === 0 && source.status().services > 0))
    return undefined;
  const byTarget = new Map<
    string,
    {
      backend: string;
      states: Record<RegistrationStateName, number>;
      example?: RegistrationCounts['example'];
    }
  >();
  for (const summary of summaries) {
    const lookup = source.explain(summary.id);
    if (lookup.kind !== 'found') continue;
    for (const registry of lookup.report.registries) {
      if (!byTarget.has(registry.target)) {
        byTarget.set(registry.target, { backend: registry.backend, states: zeroStates() });
      }
    }
    for (const port of lookup.report.ports) {
      for (const service of port.services) {
        for (const registration of service.registrations) {
          let entry = byTarget.get(registration.target);
          if (entry === undefined) {
            entry = { backend: registration.backend, states: zeroStates() };
            byTarget.set(registration.target, entry);
          }
          entry.states[registration.state] += 1;
          if (
            (registration.state === 'rejected' || registration.state === 'retrying') &&
            entry.example === undefined
          ) {
            entry.example = {
              state: registration.state,
              id: service.id,
              ...(registration.error !== undefined && { error: registration.error }),
            };
          }
        }
      }
    }
  }
  return [...byTarget].map(([target, e]) => ({
    backend: e.backend,
    target,
    states: e.states,
    ...(e.example && { example: e.example }),
  }));
}

function zeroStates(): Record<RegistrationStateName, number> {
  return { registered: 0, pending: 0, retrying: 0, rejected: 0, withheld: 0 };
}
