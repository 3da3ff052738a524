import { createHash } from 'node:crypto';
import { obj, str } from './untrusted.js';

/**
 * Which container engine answers, read from its `/info` (Docker's, or Podman's Docker-compatible one). Pure.
 *
 * Podman's compatible `/info` answers a new random `ID` on every call (a UUID, measured on 4.3), so it cannot
 * be the engine ID every entry records: a restarted bridge would find its own entries "written by another
 * engine" and stop. For Podman the ID is derived from what identifies one Podman store on one host: its host
 * name and storage root (`DockerRootDir`; a rootless user's is under their home).
 */
export interface EngineIdentity {
  readonly kind: 'docker' | 'podman';
  /** Recorded with every entry (see `Registry.engineId`); undefined when the engine gives none. */
  readonly id?: string;
  /** Rootless Podman (or rootless Docker): container addresses live in the user's network namespace. */
  readonly rootless: boolean;
  /** `Podman 4.3.1`, `Docker 20.10.24`. */
  readonly version: string;
}

export function engineIdentity(info: unknown): EngineIdentity {
  const i = obj(info);
  // Fields only Podman's compatible /info has.
  const podman = typeof i['BuildahVersion'] === 'string' || typeof i['Rootless'] === 'boolean';
  const options = Array.isArray(i['SecurityOptions']) ? (i['SecurityOptions'] as unknown[]) : [];
  const rootless =
    i['Rootless'] === true || options.some((o) => typeof o === 'string' && o.includes('name=rootless'));
  const version = `${podman ? 'Podman' : 'Docker'} ${str(i['ServerVersion']) || '(unknown version)'}`;
  if (!podman) {
    const id = str(i['ID']);
    return { kind: 'docker', ...(id !== '' && { id }), rootless, version };
  }
  const root = str(i['DockerRootDir']);
  const name = str(i['Name']);
  if (root === '' && name === '') return { kind: 'podman', rootless, version };
  const digest = createHash('sha256').update(`${name}\0${root}`).digest('hex').slice(0, 32);
  return { kind: 'podman', id: `podman-${digest}`, rootless, version };
}
