import type { BridgeStatus, Registry, RegistryEvent } from '@registrar/core';
import { oneLine } from '@registrar/core/kit';
import type { RegistryFailing } from '@registrar/core/internal';
import type { DockerProblem } from './docker.js';

/** What health reads of a bridge. */
export interface StatusSource {
  status(): BridgeStatus;
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

/**
 * `/readyz`: `ready`, the booleans of each dependency, each registry's services by state, and a reason for each
 * dependency that is not ready (`docker`, `inventory`, each registry by its target, `services`).
 */
export interface Readiness {
  readonly ok: boolean;
  readonly detail: {
    readonly docker: boolean;
    readonly dockerCalls?: BridgeStatus['docker'];
    readonly inventory: boolean;
    readonly unresolved?: BridgeStatus['unresolved'];
    readonly backends: Readonly<Record<string, boolean>>;
    readonly services: Readonly<Record<string, Readonly<Record<RegistrationStateName, number>>>>;
    readonly reasons: Readonly<Record<string, string>>;
  };
}

const errorText = (error: unknown) => oneLine(error instanceof Error ? error.message : String(error), 300);

/**
 * The process's health from its first second: Docker while the bridge waits for it, then the bridge's status,
 * each registry's last call and heartbeat, and the services the registries refused or keep failing. `/readyz`,
 * `registrar_docker_up`, `registrar_registry_up` and `registrar_service_states` all read it.
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
  /** `status()` of the current turn of the event loop. */
  private turn: { readonly status: BridgeStatus | undefined } | undefined;

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
    const status = this.status();
    return status !== undefined ? status.dockerConnected : this.dockerProblem === undefined;
  }

  /**
   * The bridge's status, computed once per turn of the event loop: a scrape reads it from five gauges in one
   * go, and each computation visits every service of every registry.
   */
  status(): BridgeStatus | undefined {
    if (this.turn === undefined) {
      this.turn = { status: this.source?.status() };
      setImmediate(() => (this.turn = undefined));
    }
    return this.turn.status;
  }

  readiness(): Readiness {
    const reasons: Record<string, string> = {};
    const status = this.source?.status();
    const docker = status?.dockerConnected ?? false;
    if (status === undefined) {
      reasons.docker = this.dockerProblem?.sentence ?? 'starting the bridge';
    } else if (!docker) {
      reasons.docker = 'the Docker event stream is not connected; reconnecting with backoff';
    } else if (status.docker.failing > 0) {
      const since = status.docker.since === undefined ? '' : ` since ${iso(status.docker.since)}`;
      reasons.docker = `${status.docker.failing} Docker calls failed in a row${since}: ${status.docker.lastError ?? 'no answer'}`;
    }
    const inventory = status?.inventoryComplete ?? false;
    if (!inventory) {
      reasons.inventory =
        status === undefined
          ? 'not started: waiting for Docker'
          : 'the first inventory of running containers is not complete';
    } else if (status !== undefined && status.unresolved.length > 0) {
      const [first] = status.unresolved;
      reasons.inventory = `${status.unresolved.length} containers cannot be inspected (e.g. ${first?.id.slice(0, 12)}: ${oneLine(first?.error ?? '', 200)})`;
    }
    const backends: Record<string, boolean> = {};
    for (const uri of this.pendingUris) {
      backends[uri] = false;
      reasons[uri] = 'not connected yet: waiting for Docker (the node id and engine id come from it)';
    }
    for (const [target, r] of this.registries) {
      backends[target] = r.up === true;
      if (r.up === undefined) reasons[target] = 'no answer yet (first pass in progress)';
      else if (!r.up)
        reasons[target] =
          `unreachable${r.since === undefined ? '' : ` since ${iso(r.since)}`}: ${r.error ?? 'the last call failed'}`;
    }
    const services: Record<string, Record<RegistrationStateName, number>> = {};
    const troubled: string[] = [];
    for (const r of status?.registries ?? []) {
      services[r.target] = { ...r.services };
      const parts = (['rejected', 'retrying'] as const)
        .filter((state) => r.services[state] > 0)
        .map((state) => `${r.services[state]} ${state}`);
      if (parts.length === 0) continue;
      const why = r.failing ? `: ${oneLine(r.failing.error, 200)}` : '';
      troubled.push(`${parts.join(', ')} in ${r.target}${why}`);
    }
    if (troubled.length > 0) {
      reasons.services = `${troubled.join('; ')} (registrar explain <container> gives each registry's message)`;
    }
    return {
      ok: Object.keys(reasons).length === 0,
      detail: {
        docker,
        ...(status !== undefined && status.docker.failing > 0 && { dockerCalls: status.docker }),
        inventory,
        ...(status !== undefined && status.unresolved.length > 0 && { unresolved: status.unresolved }),
        backends,
        services,
        reasons,
      },
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

const iso = (ms: number) => new Date(ms).toISOString();
