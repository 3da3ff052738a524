import type { DockerApi } from '@registrar/core';
import { ConfigError, type Logger } from '@registrar/core';
import type { SwarmDockerApi } from '@registrar/core/internal';
import { backoffDelay, defaultBackoff, oneLine, quote } from '@registrar/core/kit';
import { dockerEndpoint, LeanDocker } from './docker-client.js';

/** What the daemon, `check` and `explain` ask of the Docker engine. */
export type DockerClient = DockerApi &
  SwarmDockerApi & { info(options?: { abortSignal?: AbortSignal }): Promise<unknown> };

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
  // dockerode hands `abortSignal` to the HTTP request and to the response body (its types omit it).
  return new Dockerode();
}

/** Where Docker is asked, as the user would write it: `--docker-host`, else DOCKER_HOST, else the local socket. */
export function dockerAddress(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return flag || env.DOCKER_HOST || 'unix:///var/run/docker.sock';
}

/** How long one `GET /info` may take: the engine answers in milliseconds when it answers at all. */
export const DOCKER_INFO_TIMEOUT_MS = 5_000;

/** What a failed Docker call most likely means: a short key (one log line per key) and one sentence. */
export interface DockerProblem {
  readonly cause: string;
  readonly sentence: string;
}

const TLS_CODE =
  /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|EPROTO)/;

/**
 * One sentence with the address and the likely cause of a failed call to Docker, for logs, `/readyz` and
 * `registrar check`. `what` names the call (`GET /info`); `timedOut` says the bound ran out.
 */
export function describeDockerError(
  error: unknown,
  address: string,
  what = 'GET /info',
  timedOut = false,
  timeoutMs = DOCKER_INFO_TIMEOUT_MS,
): DockerProblem {
  const e = (error ?? {}) as { code?: unknown; statusCode?: unknown; message?: unknown };
  const code = typeof e.code === 'string' ? e.code : undefined;
  const at = address;
  const socket = address.startsWith('unix://') ? address.slice('unix://'.length) : undefined;
  if (timedOut) {
    return {
      cause: 'timeout',
      sentence: `Docker at ${at} accepted the connection but did not answer ${what} within ${timeoutMs / 1000} s: the engine is hung or overloaded, or a proxy in between holds the request`,
    };
  }
  switch (code) {
    case 'ENOENT':
      return {
        cause: code,
        sentence: `no Docker socket at ${socket ?? at} (ENOENT): mount it into the container (-v /var/run/docker.sock:/var/run/docker.sock:ro), or point --docker-host / DOCKER_HOST at the engine`,
      };
    case 'EACCES':
    case 'EPERM':
      return {
        cause: code,
        sentence: `permission denied on the Docker socket ${socket ?? at} (${code}): run registrar in the socket's group (the docker group; in a container --group-add "$(stat -c %g /var/run/docker.sock)"), or use the read-only socket proxy`,
      };
    case 'ECONNREFUSED':
      return {
        cause: code,
        sentence: `nothing accepts connections at ${at} (ECONNREFUSED): is dockerd running there, and do --docker-host / DOCKER_HOST name its socket or port?`,
      };
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return {
        cause: code,
        sentence: `the host of ${at} does not resolve (${code}): check --docker-host / DOCKER_HOST`,
      };
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ETIMEDOUT':
      return {
        cause: code,
        sentence: `no route to Docker at ${at} (${code}): check the address and any firewall in between`,
      };
    case 'ECONNRESET':
      return {
        cause: code,
        sentence: `Docker at ${at} closed the connection (ECONNRESET): a TLS port spoken to without TLS (set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH), or the reverse?`,
      };
  }
  if (code !== undefined && TLS_CODE.test(code)) {
    return {
      cause: 'TLS',
      sentence: `the TLS handshake with Docker at ${at} failed (${code}): check DOCKER_TLS_VERIFY and the ca.pem, cert.pem and key.pem in DOCKER_CERT_PATH (port 2376 speaks TLS, 2375 does not)`,
    };
  }
  const message = oneLine(typeof e.message === 'string' ? e.message : String(error), 200);
  if (typeof e.statusCode === 'number') {
    const hint =
      e.statusCode === 403
        ? ': a socket proxy in between must allow it (deploy/docker-socket-proxy/haproxy.cfg)'
        : e.statusCode === 404
          ? ': is this a Docker Engine API?'
          : '';
    return {
      cause: `HTTP ${e.statusCode}`,
      sentence: `Docker at ${at} answered ${what} with HTTP ${e.statusCode} (${message})${hint}`,
    };
  }
  return { cause: code ?? 'other', sentence: `Docker at ${at} failed ${what}: ${message}` };
}

/** What the bridge reads of `docker info`. */
export interface EngineInfo {
  readonly Name?: string;
  /** The engine's ID, recorded with every entry. */
  readonly ID?: string;
  readonly ServerVersion?: string;
  readonly Swarm?: {
    readonly LocalNodeState?: string;
    readonly ControlAvailable?: boolean;
    readonly Cluster?: { readonly ID?: string };
  };
}

/** `docker.info()`, bounded: rejects after `timeoutMs`, or at once when `signal` aborts. */
export async function boundedInfo(
  docker: Pick<DockerClient, 'info'>,
  signal: AbortSignal,
  timeoutMs = DOCKER_INFO_TIMEOUT_MS,
): Promise<{ info: EngineInfo } | { error: unknown; timedOut: boolean }> {
  const timeout = AbortSignal.timeout(timeoutMs);
  try {
    const info = (await docker.info({ abortSignal: AbortSignal.any([signal, timeout]) })) as EngineInfo;
    return { info };
  } catch (error) {
    return { error, timedOut: timeout.aborted && !signal.aborted };
  }
}

export interface WaitForDockerOptions {
  readonly address: string;
  /** The engine's host name is the default node id: an info without one is retried. */
  readonly needName: boolean;
  readonly logger: Logger;
  /** Aborted on SIGTERM/SIGINT: the call in flight is abandoned and the wait resolves undefined. */
  readonly signal: AbortSignal;
  /** Told every state change, for `/readyz`: the problem while waiting, undefined once Docker answered. */
  readonly onProblem?: (problem: DockerProblem | undefined) => void;
  readonly timeoutMs?: number;
}

/**
 * `docker info`, waiting for Docker with backoff rather than exiting: one WARN per cause (a socket that is
 * missing, then refused, is two lines; the same cause a thousand times is one) and one INFO when Docker
 * answers. Each call is bounded, so a hung engine is retried too. Resolves undefined when `signal` aborts.
 */
export async function waitForDocker(
  docker: Pick<DockerClient, 'info'>,
  options: WaitForDockerOptions,
): Promise<EngineInfo | undefined> {
  const { address, logger, signal } = options;
  const started = Date.now();
  let lastCause: string | undefined;
  for (let attempt = 1; !signal.aborted; attempt++) {
    const timeoutMs = options.timeoutMs ?? DOCKER_INFO_TIMEOUT_MS;
    const result = await boundedInfo(docker, signal, timeoutMs);
    if (signal.aborted) return undefined;
    let problem: DockerProblem;
    if ('info' in result) {
      if (result.info.Name || !options.needName) {
        options.onProblem?.(undefined);
        if (lastCause !== undefined) {
          logger.info(
            { docker: address, waitedS: Math.round((Date.now() - started) / 100) / 10 },
            `docker reached at ${address}`,
          );
        }
        return result.info;
      }
      problem = {
        cause: 'no-name',
        sentence: `Docker at ${address} reports no host name in GET /info: set --node-id`,
      };
    } else {
      problem = describeDockerError(result.error, address, 'GET /info', result.timedOut, timeoutMs);
    }
    options.onProblem?.(problem);
    const delay = backoffDelay(attempt, defaultBackoff);
    if (problem.cause !== lastCause) {
      logger.warn(
        { docker: address, cause: problem.cause, retryInMs: delay },
        `waiting for Docker: ${problem.sentence}`,
      );
      lastCause = problem.cause;
    }
    await sleep(delay, signal);
  }
  return undefined;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
