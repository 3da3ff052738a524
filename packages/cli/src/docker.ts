import type Docker from 'dockerode';
import { ConfigError } from '@registrar/core';
import { quote } from '@registrar/core/kit';

/**
 * Docker from `--docker-host` or DOCKER_HOST, with DOCKER_TLS_VERIFY / DOCKER_CERT_PATH, like every Docker
 * tool. The flag is handed to dockerode as DOCKER_HOST, so both go through the same parsing and TLS rules.
 * dockerode is imported here, not at start-up, so `--help`, `version` and usage errors do not load it.
 */
export async function createDocker(flag: string | undefined): Promise<Docker> {
  const source = flag !== undefined ? '--docker-host' : 'DOCKER_HOST';
  const host = flag ?? process.env.DOCKER_HOST;
  if (host !== undefined && host !== '' && !/^(unix|tcp|http|https|npipe|ssh):\/\//.test(host)) {
    throw new ConfigError(
      `invalid ${source} ${quote(host, 80)}: expected unix:///var/run/docker.sock or tcp://host:port`,
    );
  }
  if (flag !== undefined) process.env.DOCKER_HOST = flag;
  const { default: DockerClient } = await import('dockerode');
  return new DockerClient();
}
