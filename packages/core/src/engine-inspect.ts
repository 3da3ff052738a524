/**
 * What Docker and Podman's Docker-compatible inspect say differently, read into one meaning. Pure, and total
 * on untrusted input. Derivation (derive.ts) asks these instead of reading the fields itself.
 *
 * Measured on Podman 4.3 (fixtures/podman-*.json), or read from Podman's source and issues where marked:
 * - Health: Podman reports `State.Health = {"Status": ""}` for a container without a health check (Docker
 *   leaves `Health` out). Newer Podman also puts the value in a top-level `HealthStatus` (from its source).
 * - Published on all interfaces, Podman's binding says `HostIp: ""` where Docker says `0.0.0.0` and `::`;
 *   derive.ts reads all three as the wildcard.
 * - `NetworkSettings.Networks` is `{}` for `--network none` (and may be `null`, from Podman's issues);
 *   `NetworkID` holds the network's name, not an id. Derivation reads networks by name only.
 * - Pods: every member shares the network of the pod's infra container (`NetworkMode: container:<infra id>`),
 *   and the infra container holds the pod's published ports and the pod's labels (`podman pod create --label
 *   SERVICE_NAME=…`). The pod is registered once, through its infra container; its members are not (on Podman
 *   4.3 each member shows the pod's ports too, which would register every port once per member).
 */
import { obj, str, type Obj } from './untrusted.js';

/** A container's health check state, as Docker would report it. */
export interface HealthState {
  /** `starting`, `healthy`, `unhealthy` (anything else is passed on for the caller to judge). */
  readonly status: string;
  /** The probe log, oldest first, as the engine gave it (may be empty). */
  readonly log: readonly unknown[];
}

/** Whether the container's configuration has a health check (`Config.Healthcheck.Test`, not `NONE`). */
function hasHealthCheck(config: Obj): boolean {
  const test = obj(config['Healthcheck'])['Test'];
  return Array.isArray(test) && test.length > 0 && test[0] !== 'NONE';
}

/**
 * The container's health check state; undefined when it has none. Podman's empty status means "no health
 * check" unless the configuration has one, which then has not reported yet (`starting`).
 */
export function healthOf(container: unknown): HealthState | undefined {
  const c = obj(container);
  const state = obj(c['State']);
  const health = state['Health'];
  const log = Array.isArray(obj(health)['Log']) ? (obj(health)['Log'] as unknown[]) : [];
  const status = str(obj(health)['Status']) || str(c['HealthStatus']);
  if (status !== '') return { status, log };
  if ((health !== undefined && health !== null) || str(c['HealthStatus']) !== '') {
    // `{"Status": ""}`: Podman's "no health check", or one that has not reported yet.
    return hasHealthCheck(obj(c['Config'])) ? { status: 'starting', log } : undefined;
  }
  return undefined;
}

/** `NetworkMode: container:<id>`: the container whose network namespace this one uses (a pod's infra). */
export function sharedNetworkOwner(container: unknown): string | undefined {
  const mode = str(obj(obj(container)['HostConfig'])['NetworkMode']);
  const owner = /^container:([A-Za-z0-9][A-Za-z0-9_.-]{0,127})$/.exec(mode)?.[1];
  return owner;
}

/** Podman's default infra image (`podman-pause`, which it builds locally from catatonit). */
const INFRA_IMAGE = /(^|\/)podman-pause(:[^/]*)?$/;
/** Podman names a pod's infra container `<first 12 hex digits of the pod id>-infra`. */
const INFRA_NAME = /^\/?[0-9a-f]{12}-infra$/;

/** Whether a container of `image` named `name` is a Podman pod's infra container (its image or its naming). */
export function isPodInfra(image: string, name: string): boolean {
  return INFRA_IMAGE.test(image) || INFRA_NAME.test(name);
}

/**
 * A pod's infra container: Podman's infra image, or its infra naming. Its default service name is the pod's
 * name, which Podman gives every container of the pod as its host name, rather than the pause image's.
 */
export function podInfraName(container: unknown): string | undefined {
  const c = obj(container);
  const config = obj(c['Config']);
  if (!isPodInfra(str(config['Image']), str(c['Name']))) return undefined;
  const hostname = str(config['Hostname']);
  return hostname === '' ? undefined : hostname;
}
