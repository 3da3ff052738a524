// Drives the root docker-compose.yml (plus docker-compose.local.yml, on locally built images) for the
// compose-based integration tests, and other compose files (deploy/compose) the same way. Works with
// `docker compose` (v2) and Debian's `docker-compose` (v1.29).
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { docker } from '../harness/docker.js';

const run = promisify(execFile);
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** `docker compose` when the v2 plugin answers, else `docker-compose`. */
function composeCommand(): string[] {
  try {
    execFileSync('docker', ['compose', 'version'], { stdio: 'ignore' });
    return ['docker', 'compose'];
  } catch {
    return ['docker-compose'];
  }
}

/** Build (or refresh from cache) every image the local override names. */
export async function buildImages(): Promise<void> {
  await run('bash', [`${ROOT}/test/compose/build-images.sh`, '--quiet'], {
    cwd: ROOT,
    maxBuffer: 64 * 1024 * 1024,
  });
}

export interface Stack {
  readonly project: string;
  compose(...args: string[]): Promise<string>;
  /** Running containers of one compose service, oldest first. */
  containers(service: string): Promise<StackContainer[]>;
  /** Address of a service's (first) container on the project network. */
  ip(service: string): Promise<string>;
}

export interface StackContainer {
  readonly id: string;
  readonly name: string;
  readonly ip: string;
  readonly health: string | undefined;
  readonly startedAt: string;
}

export interface StackOptions {
  /** `--profile` options; without them the file's default applies (.env: COMPOSE_PROFILES=all). */
  readonly profiles?: readonly string[];
  /** Compose files relative to the repository root (default: docker-compose.yml, plus the local override). */
  readonly files?: readonly string[];
  /** Variables for the compose files, over the defaults below. */
  readonly env?: Readonly<Record<string, string>>;
}

/** The docker socket's group, what DOCKER_GID must be. */
export const dockerGid = () => execFileSync('stat', ['-c', '%g', '/var/run/docker.sock']).toString().trim();

/**
 * A compose project of its own (a unique name), by default on the root docker-compose.yml. COMPOSE_PROFILES from
 * the caller's environment is dropped, so that only `profiles` choose.
 */
export function createStack(options: StackOptions = {}): Stack {
  const project = `regcompose${randomBytes(3).toString('hex')}`;
  const [command, ...prefix] = composeCommand();
  const files = (
    options.files ??
    (process.env.COMPOSE_OFFICIAL_IMAGES === '1'
      ? ['docker-compose.yml']
      : ['docker-compose.yml', 'docker-compose.local.yml'])
  ).flatMap((file) => ['-f', file]);
  const profiles = (options.profiles ?? []).flatMap((profile) => ['--profile', profile]);
  const { COMPOSE_PROFILES: _ignored, ...inherited } = process.env;
  const env = {
    ...inherited,
    DOCKER_GID: dockerGid(),
    // Short TTLs and a fast reaper so that expiry is observable within seconds.
    REGISTRAR_TTL: '3',
    REGISTRAR_LOG_LEVEL: 'debug',
    CONSUL_DEREGISTER_AFTER: '1s',
    CONSUL_REAP_INTERVAL: '1s',
    CONSUL_MIN_DEREGISTER_AFTER: '1s',
    // Published ports: random host ports, so that the tests never clash with anything on the machine.
    CONSUL_HTTP_PORT: '',
    ETCD_PORT: '',
    ZOOKEEPER_PORT: '',
    REGISTRAR_METRICS_PORT: '',
    WEB_PORT: '',
    API_PORT: '',
    HAPROXY_STATS_PORT: '',
    ...options.env,
  };
  const stack: Stack = {
    project,
    async compose(...args) {
      const { stdout } = await run(command!, [...prefix, '-p', project, ...files, ...profiles, ...args], {
        cwd: ROOT,
        env,
        maxBuffer: 64 * 1024 * 1024,
      });
      return stdout;
    },
    async containers(service) {
      const list = await docker.listContainers({
        filters: {
          label: [`com.docker.compose.project=${project}`, `com.docker.compose.service=${service}`],
        },
      });
      const details = await Promise.all(list.map((c) => docker.getContainer(c.Id).inspect()));
      return details
        .map((d) => ({
          id: d.Id,
          name: d.Name.replace(/^\//, ''),
          ip: Object.values(d.NetworkSettings.Networks)[0]?.IPAddress ?? '',
          health: d.State.Health?.Status,
          startedAt: d.State.StartedAt,
        }))
        .sort((a, b) => a.startedAt.localeCompare(b.startedAt));
    },
    async ip(service) {
      const [first] = await stack.containers(service);
      if (first === undefined) throw new Error(`no running container for ${service}`);
      return first.ip;
    },
  };
  return stack;
}

/** Everything compose created for the project, to prove `down` left nothing behind. */
export async function leftovers(project: string) {
  const label = `com.docker.compose.project=${project}`;
  const [containers, networks, volumes] = await Promise.all([
    docker.listContainers({ all: true, filters: { label: [label] } }),
    docker.listNetworks({ filters: { label: [label] } }),
    docker.listVolumes({ filters: { label: [label] } }),
  ]);
  return {
    containers: containers.map((c) => c.Names[0]),
    networks: networks.map((n) => n.Name),
    volumes: (volumes.Volumes ?? []).map((v) => v.Name),
  };
}
