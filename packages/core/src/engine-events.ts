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

/** An event's action as hints and metrics name it: one of a fixed set, so an engine cannot mint labels. */
export type EventAction = (typeof CONTAINER_ACTIONS)[number] | (typeof NETWORK_ACTIONS)[number];

/** Engine-specific names of the same action. */
const ALIASES: Readonly<Partial<Record<string, EventAction>>> = { remove: 'destroy' };

/** An event the bridge acts on, in the bridge's names; the time is the caller's to read. */
export interface NormalisedEvent {
  readonly type: 'container' | 'network';
  /** The container the event concerns. */
  readonly id: string;
  readonly action: EventAction;
  /** The actor's attributes, unchecked (`exitCode`, `signal`...). */
  readonly attributes: Readonly<Record<string, unknown>>;
  /** `health_status`: the status, where the engine names it (Docker; Podman does not). */
  readonly health?: string;
}

type Obj = Record<string, unknown>;
const obj = (value: unknown): Obj | undefined =>
  value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Obj) : undefined;
const str = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);

/**
 * What may name a container in a request path: Docker and Podman ids are 64 hex digits; anything else an engine
 * sends (`../..`, a megabyte) is not looked up.
 */
export const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

const containerActions: ReadonlySet<string> = new Set(CONTAINER_ACTIONS);
const networkActions: ReadonlySet<string> = new Set(NETWORK_ACTIONS);

/** The event the bridge acts on, or undefined for every other line (exec_*, create, image events...). */
export function normaliseEvent(line: unknown): NormalisedEvent | undefined {
  const event = obj(line);
  if (event === undefined) return undefined;
  const actor = obj(event['Actor']);
  const attributes = obj(actor?.['Attributes']) ?? {};
  // `Action` since API 1.22; the legacy `status` otherwise.
  const raw = str(event['Action']) ?? str(event['status']) ?? '';
  const colon = raw.indexOf(':');
  const name = (colon >= 0 ? raw.slice(0, colon) : raw).trim();
  const type = str(event['Type']) ?? 'container';

  let id: string | undefined;
  let action: EventAction;
  if (type === 'container') {
    const canonical = ALIASES[name] ?? name;
    if (!containerActions.has(canonical)) return undefined;
    action = canonical as EventAction;
    id = str(actor?.['ID']) ?? str(event['id']);
  } else if (type === 'network') {
    if (!networkActions.has(name)) return undefined;
    action = name as EventAction;
    // Docker: the container is an attribute. Podman: the container is the event's `id` (and its actor).
    id = str(attributes['container']) ?? str(event['id']);
  } else return undefined;
  if (id === undefined || !CONTAINER_ID.test(id)) return undefined;

  const health = action === 'health_status' && colon >= 0 ? raw.slice(colon + 1).trim() : '';
  return {
    type,
    id,
    action,
    attributes,
    ...(/^[a-z]{1,20}$/.test(health) && { health }),
  };
}
