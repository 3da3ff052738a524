import type { DockerApi } from '@registrar/core';
import { ConfigError } from '@registrar/core';
import type { SwarmDockerApi } from '@registrar/core/internal';
import { quote } from '@registrar/core/kit';
import { dockerEndpoint, LeanDocker } from './docker-client.js';

/** What the daemon, `check` and `explain` ask of the Docker engine. */
export type DockerClient = DockerApi & SwarmDockerApi & { info(): Promise<unknown> };

/**
 * Docker from `--docker-host` or DOCKER_HOST, with DOCKER_TLS_VERIFY / DOCKER_CERT_PATH, like every Docker
 * tool: the lean client of docker-client.ts for unix sockets, TCP and TLS; dockerode, loaded only then, for
 * ssh:// and npipe://. The flag is handed on as DOCKER_HOST, so both read it by the same rules.
 */
export async function createDocker(flag: string | undefined): Promise<DockerClient> {
  const source = flag !== undefined ? '--docker-host' : 'DOCKER_HOST';
  const host = flag ?? process.env.DOCKER_HOST;
  if (host !== undefined && host !== '' && !/^(unix|tcp|http|https|npipe|ssh):\/\//.test(host)) {
    throw new ConfigError(
      `invalid ${source} ${quote(host, 80)}: expected unix:///var/run/docker.sock or tcp://host:port`,
    );
  }
  if (flag !== undefined) process.env.DOCKER_HOST = flag;
  let endpoint;
  try {
    endpoint = dockerEndpoint(host, process.env);
  } catch (error) {
    throw new ConfigError(
      `invalid ${source} ${quote(host ?? '', 80)} or its TLS files (DOCKER_CERT_PATH): ${(error as Error).message}`,
    );
  }
  if (endpoint !== undefined) return new LeanDocker(endpoint);
  const { default: Dockerode } = await import('dockerode');
  return new Dockerode();
}
