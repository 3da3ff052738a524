/**
 * `registrar explain`: for each port of one container, where it is registered (per registry, with the record
 * as written and the registry's state for it) or exactly why not. Pure: the bridge feeds it what it keeps (the
 * last derivation, the reconcilers' states); the CLI without a bridge feeds it a fresh derivation and no
 * registries. Every reason is a stable code plus one line of text.
 */
import type { ContainerState, Derivation, DeriveOptions, Skip, SkipReason } from './derive.js';
import type { RegistrationState, RegistryFailing } from './reconciler.js';
import type { HealthStatus, LabelWarning, Protocol, Service } from './service.js';
import { oneLine } from './text.js';

/** Why a port, service or registration is not (fully) served. */
export type ExplainCode =
  | SkipReason
  /** The container is not running (exited, created, restarting, dead). */
  | 'not-running'
  | 'paused'
  /** Docker health `starting`: not served until healthy (a registry that mirrors health: check warning). */
  | 'health-starting'
  /** Docker health `unhealthy` (a registry that mirrors health: check critical), with the probe's output. */
  | 'health-unhealthy'
  | 'health-unknown'
  /** Docker sent the container its stop signal: withdrawn until it exits (or survives its stop timeout). */
  | 'draining'
  /** Another container's service holds the same id; the first one keeps it. */
  | 'duplicate-id'
  /** A label the bridge warned about (the label and the warning). */
  | 'label-warning'
  /** The registry refused the registration (non-retryable `RegistryError`), with its message. */
  | 'registry-rejected'
  /** The write keeps failing (retryable): the last error and the failed attempts in a row. */
  | 'write-retrying'
  /** The write is queued or in flight. */
  | 'write-pending'
  /** Not wanted in that registry, still stored there: its removal is pending. */
  | 'removal-pending'
  /** Registered as far as the bridge knows, but the registry's passes fail now: the last known state. */
  | 'registry-failing';

export interface ExplainReason {
  readonly code: ExplainCode;
  /** One line. */
  readonly text: string;
}

/** One registry as the bridge sees it; `stateOf` is `Reconciler.stateOf`. */
export interface ExplainRegistry {
  readonly backend: string;
  readonly target: string;
  readonly mirrorsHealth: boolean;
  readonly dryRun?: boolean;
  readonly failing?: RegistryFailing;
  stateOf(id: string, wanted: Service | undefined): RegistrationState;
}

export interface ExplainInput {
  /** `bridge`: the running bridge's own state; `docker`: derived here from Docker, registry state unknown. */
  readonly source: 'bridge' | 'docker';
  readonly container: { readonly id: string; readonly name: string };
  readonly state: ContainerState;
  readonly derivation: Derivation;
  /** The services as the registries are asked to hold them (critical while draining); default: derived. */
  readonly services?: readonly Service[];
  readonly options: DeriveOptions;
  /** Set while the bridge withdraws the container at its stop signal. */
  readonly draining?: { readonly signal: string };
  /** Registries the services go to; none when unknown. */
  readonly registries: readonly ExplainRegistry[];
  /** The name of another container that holds this service id (the first one keeps it). */
  readonly holderOf?: (serviceId: string) => string | undefined;
  /** When the derivation was made (ms since the epoch). */
  readonly derivedAt?: number;
  /** Note for a container kept registered after it stopped (`--deregister on-success`). */
  readonly keptAfterExit?: boolean;
}

export type RegistrationVerdict = 'registered' | 'pending' | 'retrying' | 'rejected' | 'withheld';

export interface ExplainRegistration {
  readonly backend: string;
  readonly target: string;
  readonly state: RegistrationVerdict;
  /** Why not; for a registered service, what consumers see (a registry that mirrors an unhealthy state). */
  readonly reasons: readonly ExplainReason[];
  /** The service as written there (or adopted unchanged), when known. */
  readonly record?: Service;
  readonly writtenAt?: string;
  readonly error?: string;
  readonly attempts?: number;
}

export interface ExplainService {
  readonly id: string;
  readonly name: string;
  readonly address: string;
  readonly port: number;
  /** Its endpoint in each IP family, when it answers over both (see `Service.dualStack`). */
  readonly dualStack?: Service['dualStack'];
  readonly health: HealthStatus;
  readonly healthOutput: string;
  /** What keeps it from being served anywhere, or from registries that do not mirror health. */
  readonly reasons: readonly ExplainReason[];
  /** One per registry; empty when the registries are unknown. */
  readonly registrations: readonly ExplainRegistration[];
}

export interface ExplainPort {
  readonly port: number;
  readonly protocol: Protocol | 'sctp';
  readonly services: readonly ExplainService[];
  /** Why this port (or one of its bindings) yields no service, and warnings about its labels. */
  readonly reasons: readonly ExplainReason[];
}

/**
 * `registered`: every service in every registry; `partial`: some; `not-registered`: none; `unknown`: services
 * derived, registry state unknown (no bridge).
 */
export type ExplainVerdict = 'registered' | 'partial' | 'not-registered' | 'unknown';

export interface ExplainReport {
  readonly source: 'bridge' | 'docker';
  readonly container: {
    readonly id: string;
    readonly name: string;
    readonly status: string;
    readonly health: string;
    readonly healthOutput?: string;
    readonly exitCode?: number;
    readonly draining?: string;
  };
  readonly verdict: ExplainVerdict;
  /** One line, e.g. `not registered: wildcard-without-ip`. */
  readonly summary: string;
  /** Reasons that concern the whole container. */
  readonly reasons: readonly ExplainReason[];
  readonly ports: readonly ExplainPort[];
  /** Every warning the derivation made, as the bridge logs them. */
  readonly warnings: readonly { readonly key: string; readonly message: string }[];
  readonly registries: readonly {
    readonly backend: string;
    readonly target: string;
    readonly mirrorsHealth: boolean;
    readonly dryRun?: boolean;
    readonly failing?: { passes: number; since: string; error: string; stage: string };
  }[];
  /** The options the derivation used (the bridge's, or those given to explain). */
  readonly options: {
    readonly nodeId: string;
    readonly ip?: string;
    readonly internal: boolean;
    readonly network?: string;
    readonly explicit: boolean;
    /** `--labels-only`; absent when off. */
    readonly labelsOnly?: boolean;
    readonly tags: readonly string[];
  };
  readonly derivedAt?: string;
}

/** The short form `/debug/containers` lists. */
export interface ExplainSummary {
  readonly id: string;
  readonly name: string;
  readonly verdict: ExplainVerdict;
  readonly summary: string;
}

const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());
const line = (text: string) => oneLine(text, 600);
const reason = (code: ExplainCode, text: string): ExplainReason => ({ code, text: line(text) });

/** `SERVICE_80_NAME` → port 80 (any protocol), `SERVICE_53_UDP_NAME` → 53/udp; otherwise undefined. */
function warningPort(key: string): { port: number; protocol?: Protocol } | undefined {
  const m = /^SERVICE_(\d{1,5})(?:_(TCP|UDP))?_/i.exec(key);
  if (m === null) return undefined;
  const protocol = m[2]?.toLowerCase() as Protocol | undefined;
  return protocol === undefined ? { port: Number(m[1]) } : { port: Number(m[1]), protocol };
}

/**
 * Warnings about bridge options (`--ip`, `--internal`) and bindings (`80/tcp`) say what a skip already says;
 * the rest are label warnings.
 */
const isLabelWarning = (w: LabelWarning) => !w.key.startsWith('--') && !/^\d+\/(tcp|udp)$/.test(w.key);

/** The conditions that keep a service from being served, registry-independent. */
function conditions(service: Service, input: ExplainInput): { code: ExplainCode; text: string }[] {
  if (service.health === 'passing') return [];
  const probe = input.state.healthOutput;
  if (input.draining) {
    return [
      {
        code: 'draining',
        text: `container stopping: Docker sent ${input.draining.signal}; withdrawn until it exits (or outlives its stop timeout)`,
      },
    ];
  }
  if (input.state.paused) return [{ code: 'paused', text: 'container paused' }];
  if (input.state.health === 'starting') {
    return [
      {
        code: 'health-starting',
        text: `health check starting${probe ? `: ${probe}` : ' (no probe has passed yet)'}`,
      },
    ];
  }
  if (input.state.health === 'unhealthy') {
    return [
      {
        code: 'health-unhealthy',
        text: `health check failing: ${probe || service.healthOutput || 'no output'}`,
      },
    ];
  }
  return [{ code: 'health-unknown', text: service.healthOutput || `health ${input.state.health}` }];
}

function registration(
  service: Service,
  registry: ExplainRegistry,
  input: ExplainInput,
  conds: readonly { code: ExplainCode; text: string }[],
): ExplainRegistration {
  const where = { backend: registry.backend, target: registry.target };
  const holder = input.holderOf?.(service.id);
  if (holder !== undefined) {
    return {
      ...where,
      state: 'withheld',
      reasons: [reason('duplicate-id', `service id ${service.id} is already taken by container ${holder}`)],
    };
  }
  const withheld = service.health !== 'passing' && !registry.mirrorsHealth;
  const view = registry.stateOf(service.id, withheld ? undefined : service);
  const written = {
    ...(view.record && { record: view.record }),
    ...(view.writtenAt !== undefined && { writtenAt: iso(view.writtenAt) }),
  };
  if (withheld) {
    const reasons = conds.map((c) =>
      reason(c.code, `${c.text}; ${registry.backend} holds only passing services, so it is left out`),
    );
    if (view.state === 'stored') {
      reasons.push(
        reason(
          'removal-pending',
          view.error === undefined
            ? 'still stored there: its removal is pending'
            : `still stored there: its removal keeps failing (attempt ${view.attempts ?? 1}): ${view.error}`,
        ),
      );
    }
    return { ...where, state: 'withheld', reasons, ...written };
  }
  switch (view.state) {
    case 'registered': {
      const reasons = conds.map((c) =>
        reason(
          c.code,
          `${c.text}; registered with its health check ${service.health === 'critical' ? 'critical' : 'warning'} (${registry.backend} mirrors Docker health)`,
        ),
      );
      const failing = registry.failing;
      if (failing) {
        reasons.push(
          reason(
            'registry-failing',
            `last known state: the registry has failed ${failing.passes} passes in a row since ${iso(failing.since)}: ${failing.error}`,
          ),
        );
      }
      return { ...where, state: 'registered', reasons, ...written };
    }
    case 'rejected':
      return {
        ...where,
        state: 'rejected',
        reasons: [
          reason(
            'registry-rejected',
            `the registry refused it: ${view.error ?? 'no message'}; offered again with a slow backoff (2 s, doubling to 60 s), on every resync and at once when the container changes`,
          ),
        ],
        ...written,
        ...(view.error !== undefined && { error: view.error }),
      };
    case 'retrying':
      return {
        ...where,
        state: 'retrying',
        reasons: [
          reason(
            'write-retrying',
            `writes failing, retried with backoff (attempt ${view.attempts ?? 1}): ${view.error ?? 'no message'}`,
          ),
        ],
        ...written,
        ...(view.error !== undefined && { error: view.error }),
        ...(view.attempts !== undefined && { attempts: view.attempts }),
      };
    default:
      return {
        ...where,
        state: 'pending',
        reasons: [reason('write-pending', 'the write is queued or in flight')],
        ...written,
      };
  }
}

const portKey = (port: number, protocol: string) => `${port}/${protocol}`;

function comparePorts(a: { port: number; protocol: string }, b: { port: number; protocol: string }) {
  return a.port - b.port || (a.protocol < b.protocol ? -1 : a.protocol > b.protocol ? 1 : 0);
}

/** Explain one container. */
export function explainContainer(input: ExplainInput): ExplainReport {
  const services = input.services ?? input.derivation.services;
  const skipped: readonly Skip[] = input.derivation.skipped ?? [];
  const containerReasons: ExplainReason[] = [];
  const { state } = input;
  if (!state.running) {
    const how = `${state.status || 'not running'}${state.exitCode === undefined ? '' : ` (exit code ${state.exitCode})`}`;
    containerReasons.push(
      reason(
        'not-running',
        input.keptAfterExit
          ? `container ${how}; its services are kept because of --deregister on-success`
          : `container ${how}: only running containers are registered`,
      ),
    );
  }
  for (const s of skipped) if (s.port === undefined) containerReasons.push(reason(s.reason, s.detail));

  const ports = new Map<
    string,
    { port: number; protocol: Protocol | 'sctp'; services: ExplainService[]; reasons: ExplainReason[] }
  >();
  const portOf = (port: number, protocol: Protocol | 'sctp') => {
    const key = portKey(port, protocol);
    let entry = ports.get(key);
    if (entry === undefined) {
      entry = { port, protocol, services: [], reasons: [] };
      ports.set(key, entry);
    }
    return entry;
  };
  for (const s of skipped) {
    if (s.port !== undefined) portOf(s.port, s.protocol ?? 'tcp').reasons.push(reason(s.reason, s.detail));
  }
  for (const service of services) {
    const conds = conditions(service, input);
    portOf(service.containerPort, service.protocol).services.push({
      id: service.id,
      name: service.name,
      address: service.address,
      port: service.port,
      ...(service.dualStack !== undefined && { dualStack: service.dualStack }),
      health: service.health,
      healthOutput: service.healthOutput,
      reasons: conds.map((c) =>
        reason(
          c.code,
          input.registries.length > 0
            ? c.text
            : `${c.text}; a registry that does not mirror health (etcd, ZooKeeper) leaves it out, Consul registers it with its check ${service.health === 'critical' ? 'critical' : 'warning'}`,
        ),
      ),
      registrations: input.registries.map((r) => registration(service, r, input, conds)),
    });
  }
  for (const w of input.derivation.warnings.filter(isLabelWarning)) {
    const at = warningPort(w.key);
    const text = `${w.key}: ${w.message}`;
    const matching =
      at === undefined
        ? []
        : [...ports.values()].filter(
            (p) => p.port === at.port && (at.protocol === undefined || p.protocol === at.protocol),
          );
    if (matching.length === 0) containerReasons.push(reason('label-warning', text));
    for (const p of matching) p.reasons.push(reason('label-warning', text));
  }

  const portList = [...ports.values()].sort(comparePorts);
  const { verdict, summary } = judge(portList, containerReasons, services.length, input);
  const o = input.options;
  return {
    source: input.source,
    container: {
      id: input.container.id,
      name: input.container.name,
      status: state.status,
      health: state.health,
      ...(state.healthOutput !== '' && { healthOutput: state.healthOutput }),
      ...(state.exitCode !== undefined && { exitCode: state.exitCode }),
      ...(input.draining && { draining: `Docker sent ${input.draining.signal}` }),
    },
    verdict,
    summary,
    reasons: containerReasons,
    ports: portList,
    warnings: input.derivation.warnings.map((w) => ({ key: w.key, message: w.message })),
    registries: input.registries.map((r) => ({
      backend: r.backend,
      target: r.target,
      mirrorsHealth: r.mirrorsHealth,
      ...(r.dryRun && { dryRun: true }),
      ...(r.failing && {
        failing: {
          passes: r.failing.passes,
          since: iso(r.failing.since) ?? '',
          error: r.failing.error,
          stage: r.failing.stage,
        },
      }),
    })),
    options: {
      nodeId: o.nodeId,
      // As `--ip` takes them: one per family, comma-separated.
      ...(o.hostIp !== undefined && { ip: [o.hostIp, o.hostIp6].filter(Boolean).join(',') }),
      internal: o.internal,
      ...(o.network !== undefined && { network: o.network }),
      explicit: o.explicit,
      ...(o.labelsOnly === true && { labelsOnly: true }),
      tags: o.tags,
    },
    ...(input.derivedAt !== undefined && { derivedAt: iso(input.derivedAt) }),
  };
}

function judge(
  ports: readonly ExplainPort[],
  containerReasons: readonly ExplainReason[],
  serviceCount: number,
  input: ExplainInput,
): { verdict: ExplainVerdict; summary: string } {
  const codes = new Set<ExplainCode>();
  for (const r of containerReasons) codes.add(r.code);
  let cells = 0;
  let registered = 0;
  for (const p of ports) {
    for (const r of p.reasons) codes.add(r.code);
    for (const s of p.services) {
      for (const r of s.reasons) codes.add(r.code);
      for (const reg of s.registrations) {
        cells += 1;
        if (reg.state === 'registered') registered += 1;
        for (const r of reg.reasons) codes.add(r.code);
      }
    }
  }
  const why = [...codes].join(', ');
  const withWhy = (text: string) => (why === '' ? text : `${text}: ${why}`);
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  if (serviceCount === 0) return { verdict: 'not-registered', summary: withWhy('not registered') };
  if (input.registries.length === 0) {
    return {
      verdict: 'unknown',
      summary: withWhy(`derives ${plural(serviceCount, 'service')}, registry state unknown`),
    };
  }
  if (registered === 0) return { verdict: 'not-registered', summary: withWhy('not registered') };
  const skipped = ports.filter((p) => p.reasons.some((r) => r.code !== 'label-warning')).length;
  const registries = input.registries.length;
  const where = `${plural(serviceCount, 'service')} in ${registries} ${registries === 1 ? 'registry' : 'registries'}`;
  if (registered === cells && skipped === 0) {
    return { verdict: 'registered', summary: withWhy(`registered: ${where}`) };
  }
  const parts = [
    ...(registered < cells ? [`${registered} of ${cells} registrations (${where})`] : [where]),
    ...(skipped > 0 ? [`${skipped} of ${ports.length} ports skipped`] : []),
  ];
  return { verdict: 'partial', summary: withWhy(`partly registered: ${parts.join(', ')}`) };
}

export type ContainerMatch<T> =
  | { readonly kind: 'found'; readonly item: T }
  | { readonly kind: 'unknown' }
  | { readonly kind: 'ambiguous'; readonly matches: readonly T[] };

/** Shortest id prefix accepted. */
export const MIN_ID_PREFIX = 4;

/**
 * Which container `ref` names, as Docker resolves names: the full id, then the name (a leading `/` is
 * allowed), then a unique id prefix of at least `MIN_ID_PREFIX` hex digits.
 */
export function matchContainer<T extends { readonly id: string; readonly name: string }>(
  ref: string,
  items: Iterable<T>,
): ContainerMatch<T> {
  const wanted = ref.trim();
  const name = wanted.replace(/^\/+/, '');
  const all = [...items];
  const byId = all.find((c) => c.id.toLowerCase() === wanted.toLowerCase());
  if (byId !== undefined) return { kind: 'found', item: byId };
  const byName = all.find((c) => c.name.replace(/^\/+/, '') === name);
  if (byName !== undefined) return { kind: 'found', item: byName };
  if (!new RegExp(`^[0-9a-f]{${MIN_ID_PREFIX},64}$`, 'i').test(wanted)) return { kind: 'unknown' };
  const matches = all.filter((c) => c.id.toLowerCase().startsWith(wanted.toLowerCase()));
  if (matches.length === 1) return { kind: 'found', item: matches[0] };
  return matches.length === 0 ? { kind: 'unknown' } : { kind: 'ambiguous', matches };
}
