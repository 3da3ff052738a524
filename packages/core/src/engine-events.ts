/**
 * One `/events` line of Docker or Podman's Docker-compatible API, normalised to what the bridge acts on. Pure:
 * the line is untrusted data, and anything that is not an event the bridge cares about yields `undefined`.
 *
 * What differs between the engines (Podman 4.3 measured here, Docker 20.10 in ../shared/ENVIRONMENT.md):
 * - Podman names the removal `remove`; Docker `destroy`. Both become `destroy`.
 * - Docker sends `health_status: healthy`; Podman a bare `health_status` with the status nowhere in the event.
 *   Both become `health_status` (the bridge inspects to learn the state), with `health` when the engine said.
 * - Docker's network events name the network as the actor and the container in `Attributes.container`;
 *   Podman's name the container as the actor (and the event's `id`) and have no `container` attribute.
 * - Server-side event filters are not portable: Podman 4.3 drops events that match a filter of several event
 *   names (`die` was missing with `start,die,stop,kill,remove`) and knows `died` rather than `die`
 *   (podman#16857). So the bridge asks for every event and filters here.
 * - Podman sends no `kill` on `stop` (the process's exit, `die`, is the first sign), and its `kill` carries no
 *   signal; a `kill` without a signal starts no drain.
 */

/** Container actions that can change what a container offers, as the bridge names them. */
export const CONTAINER_ACTIONS = [
  'start',
  'restart',
  'die',
  'stop',
  'kill',
  'pause',
  'unpause',
  'health_status',
  'rename',
  'destroy',
  'update',
] as const;
export const NETWORK_ACTIONS = ['connect', 'disconnect'] as const;

export type EngineAction = (typeof CONTAINER_ACTIONS)[number] | (typeof NETWORK_ACTIONS)[number];

/** Engine-specific names of the same action. */
const ALIASES: Readonly<Record<string, EngineAction>> = { remove: 'destroy' };

export interface EngineEvent {
  /** The container the event concerns. */
  readonly id: string;
  readonly action: EngineAction;
  /** Nanoseconds since the epoch; 0 when the engine gave no time. */
  readonly timeNano: number;
  /** `die`: the exit code the engine reported. */
  readonly exitCode?: number;
  /** `kill`: the signal number the engine reported (Docker only). */
  readonly signal?: number;
  /** `health_status`: the status, where the engine names it (Docker only). */
  readonly health?: string;
}

type Obj = Record<string, unknown>;
const obj = (value: unknown): Obj =>
  value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Obj) : {};
const str = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);

/** Container ids are 64 hex digits; anything id-shaped is accepted (test engines use short names). */
const ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

const containerActions: ReadonlySet<string> = new Set(CONTAINER_ACTIONS);
const networkActions: ReadonlySet<string> = new Set(NETWORK_ACTIONS);

function integer(value: unknown): number | undefined {
  if (typeof value !== 'string' || !/^-?\d{1,10}$/.test(value.trim())) return undefined;
  return Number(value.trim());
}

function timeOf(event: Obj): number {
  const nano = event['timeNano'];
  if (typeof nano === 'number' && Number.isFinite(nano) && nano >= 0) return nano;
  const seconds = event['time'];
  if (typeof seconds === 'number' && Number.isFinite(seconds) && seconds >= 0) return seconds * 1e9;
  return 0;
}

/** The event the bridge acts on, or undefined for every other line (exec_*, create, image events...). */
export function normaliseEvent(line: unknown): EngineEvent | undefined {
  const event = obj(line);
  const actor = obj(event['Actor']);
  const attributes = obj(actor['Attributes']);
  // `Action` since API 1.22; the legacy `status` otherwise.
  const raw = str(event['Action']) ?? str(event['status']) ?? '';
  const colon = raw.indexOf(':');
  const name = (colon >= 0 ? raw.slice(0, colon) : raw).trim();
  const type = str(event['Type']) ?? 'container';

  let id: string | undefined;
  let action: EngineAction | undefined;
  if (type === 'container') {
    const canonical = ALIASES[name] ?? name;
    if (!containerActions.has(canonical)) return undefined;
    action = canonical as EngineAction;
    id = str(actor['ID']) ?? str(event['id']);
  } else if (type === 'network') {
    if (!networkActions.has(name)) return undefined;
    action = name as EngineAction;
    id = str(attributes['container']) ?? str(event['id']);
  } else return undefined;
  if (id === undefined || !ID.test(id)) return undefined;

  const exitCode = action === 'die' ? integer(attributes['exitCode']) : undefined;
  const signal = action === 'kill' ? integer(attributes['signal']) : undefined;
  const health = action === 'health_status' && colon >= 0 ? raw.slice(colon + 1).trim() : '';
  return {
    id,
    action,
    timeNano: timeOf(event),
    ...(exitCode !== undefined && { exitCode }),
    ...(signal !== undefined && { signal }),
    ...(health !== '' && /^[a-z]{1,20}$/.test(health) && { health }),
  };
}
