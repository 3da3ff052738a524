import type { ContainerInspectInfo } from 'dockerode';
import { imageBaseName } from '../../derive.js';
import { isPodInfra } from '../../engine-inspect.js';
import { arr, obj, str, type Obj } from '../../untrusted.js';

/** The health check's state in a list entry's `Status`: `Up 3 minutes (healthy)`, `(health: starting)`. */
const HEALTH = /\((healthy|unhealthy|health: starting)\)\s*$/;

/**
 * A container list entry (`GET /containers/json`) read as the inspect document derivation takes, or undefined
 * when the entry cannot say what an inspect would for labels-only derivation (`--labels-only`), so the
 * container must be inspected. The list carries the labels, published and exposed ports, networks, network
 * mode, state and health status; not the environment (labels-only derivation reads none), the probe output
 * (labels-only derivation records none), nor what these cases need:
 * - `--network host`: the image's exposed ports, which the list leaves out;
 * - an image reference that is an image id (`docker run <id>`, or a tag since moved to another image): the
 *   list then shows the id where the inspect keeps the name the container was created with, which names the
 *   service by default;
 * - a Podman pod's infra container: named after the pod from its host name, which the list leaves out;
 * - a container that is not running: its exit code is in the inspect only.
 * Untrusted input: any field may be missing or of the wrong type.
 */
export function listedAsInspect(entry: unknown): ContainerInspectInfo | undefined {
  const e = obj(entry);
  const id = str(e['Id']);
  const state = str(e['State']);
  if (id === '' || (state !== 'running' && state !== 'paused')) return undefined;
  const networkMode = str(obj(e['HostConfig'])['NetworkMode']);
  if (networkMode === 'host') return undefined;
  const image = str(e['Image']);
  const names = arr(e['Names']);
  if (imageBaseName(image, str(e['ImageID'])) === undefined || isPodInfra(image, str(names[0]))) {
    return undefined;
  }
  const health = HEALTH.exec(str(e['Status']))?.[1]?.replace('health: ', '');

  const exposed: Obj = {};
  const published: Record<string, { HostIp: string; HostPort: string }[] | null> = {};
  for (const port of arr(e['Ports'])) {
    const p = obj(port);
    const [inside, type, outside] = [p['PrivatePort'], str(p['Type']), p['PublicPort']];
    if (typeof inside !== 'number' || type === '') continue;
    const key = `${inside}/${type}`;
    exposed[key] = {};
    published[key] ??= null;
    if (typeof outside === 'number' && outside > 0) {
      (published[key] ??= []).push({ HostIp: str(p['IP']), HostPort: String(outside) });
    }
  }
  return {
    Id: id,
    Name: str(names[0]),
    Image: str(e['ImageID']),
    Config: { Image: image, Labels: obj(e['Labels']), ExposedPorts: exposed },
    State: {
      Status: state,
      Running: true,
      Paused: state === 'paused',
      ...(health !== undefined && { Health: { Status: health, Log: [] } }),
    },
    HostConfig: { NetworkMode: networkMode },
    NetworkSettings: { Ports: published, Networks: obj(obj(e['NetworkSettings'])['Networks']) },
  } as unknown as ContainerInspectInfo;
}
