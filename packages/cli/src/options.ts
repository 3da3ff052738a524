import { Command, CommanderError, Option } from 'commander';
import { isIP } from 'node:net';
import { ConfigError, type DeregisterMode, type DeriveOptions } from '@registrar/core';
import { oneLine, quote } from '@registrar/core/kit';
import { SWARM_MODES, type SwarmMode } from '@registrar/core/internal';
import { exitCodesHelp } from './exit-codes.js';
import { VERSION } from './version.js';

export type LogFormat = 'json' | 'pretty';

/** Everything the daemon was asked to do, validated. */
/** The derivation settings of the bridge's and explain's options: both must derive services alike. */
export function deriveOptionsOf(
  config: Pick<CliConfig, 'ip' | 'ip6' | 'internal' | 'network' | 'tags' | 'explicit' | 'labelsOnly'>,
  nodeId: string,
): DeriveOptions {
  return {
    nodeId,
    ...(config.ip !== undefined && { hostIp: config.ip }),
    ...(config.ip6 !== undefined && { hostIp6: config.ip6 }),
    internal: config.internal,
    ...(config.network !== undefined && { network: config.network }),
    tags: config.tags,
    explicit: config.explicit,
    ...(config.labelsOnly && { labelsOnly: true }),
  };
}

export interface CliConfig {
  readonly uris: readonly string[];
  /** `--ip`: the address advertised for published ports (IPv4 when two are given). */
  readonly ip?: string;
  /** A second `--ip`, the IPv6 one beside an IPv4 `ip`: dual-stack bindings are advertised at both. */
  readonly ip6?: string;
  readonly internal: boolean;
  readonly network?: string;
  readonly tags: readonly string[];
  readonly ttl: number;
  readonly ttlRefresh?: number;
  readonly resync: number;
  /** Seconds between checks that the Docker event stream still delivers; 0 disables. */
  readonly stallCheck: number;
  /** Seconds one Docker list or inspect may take before it is abandoned and retried. */
  readonly dockerTimeout: number;
  readonly cleanup: boolean;
  readonly explicit: boolean;
  /** `SERVICE_*` from labels only: a crowd of containers is read from one container list, not an inspect each. */
  readonly labelsOnly: boolean;
  readonly deregister: DeregisterMode;
  readonly deregisterOnExit: boolean;
  /** Withdraw a container when Docker starts stopping it (`--no-drain`: only once its process exited). */
  readonly drain: boolean;
  readonly nodeId?: string;
  /** `--state-dir`: where adapters keep what lets a restart resume without rewriting (ZooKeeper's session). */
  readonly stateDir?: string;
  /** `--docker-host`: the engine to watch; wins over `DOCKER_HOST`. */
  readonly dockerHost?: string;
  readonly dryRun: boolean;
  readonly metricsAddr?: { host: string; port: number };
  /** `--debug-remote`: serve `/debug/*` to clients other than loopback ones. */
  readonly debugRemote: boolean;
  readonly logLevel: string;
  readonly logFormat: LogFormat;
  /** `--swarm`: on a Swarm manager, register the cluster's services instead of this engine's containers. */
  readonly swarm: boolean;
  /** `--swarm-mode`: one entry per task, per service VIP, or per node of the routing mesh. */
  readonly swarmMode: SwarmMode;
}

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];
const LOG_FORMATS: readonly LogFormat[] = ['json', 'pretty'];
const DEREGISTER_MODES: readonly DeregisterMode[] = ['always', 'on-success'];

const envName = (long: string) => `REGISTRAR_${long.replace(/-/g, '_').toUpperCase()}`;

/**
 * `--name <v>` ↔ `REGISTRAR_NAME`: every option is also read from the environment, and `--help` names the
 * variable. Commander sets a boolean flag whenever its variable exists, even as `false`, so `parseCli` reads
 * the value of a flag that came from the environment itself (`envFlag`).
 */
export const opt = (flags: string, description: string) => {
  const long = /--([a-z-]+)/.exec(flags)?.[1] ?? '';
  return new Option(flags, description).env(envName(long));
};

function envFlag(long: string, env: NodeJS.ProcessEnv): boolean {
  const name = envName(long);
  const value = env[name]?.trim().toLowerCase() ?? '';
  if (['1', 'true', 'yes', 'on'].includes(value)) return true;
  // Set but empty is "not set", as for the options that take a value.
  if (['', '0', 'false', 'no', 'off'].includes(value)) return false;
  return fail(`invalid ${name} ${quote(value, 40)}: expected true or false`);
}

/** The bridge itself, or `registrar check`, which takes the same options and URIs. */
export type CliCommand = 'bridge' | 'check';

const BRIDGE_HELP = `
Commands (registrar help <command>, or registrar <command> --help):
  registrar check [options] <registry-uri...>   preflight: Docker answers; each registry accepts a probe entry
                                                (read, write, delete); exit 0 when all pass, 1 otherwise
  registrar explain [options] <container>       why each port of a container is (not) registered: asks the
                                                running bridge at --metrics-addr (default 127.0.0.1:9105),
                                                else derives from Docker; --json for the document
  registrar lb [options] <registry-uri>         keep HAProxy backends' slots equal to services' live instances
  registrar render [options] <registry-uri>     render config files (nginx, HAProxy, Prometheus file_sd...) from
                                                services' live instances; check each and reload its consumer
  registrar version                             print the version
  registrar help [command]                      this help, or a command's

Registry credentials never go in the URI: ETCD_USERNAME/ETCD_PASSWORD[_FILE], ZOOKEEPER_AUTH[_FILE],
CONSUL_HTTP_TOKEN[_FILE]; TLS files ETCD_CACERT/ETCD_CERT/ETCD_KEY, CONSUL_CACERT/CONSUL_CLIENT_CERT/
CONSUL_CLIENT_KEY. Docker: --docker-host or DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH.

${exitCodesHelp()}

Examples:
  registrar --ip 10.0.0.5 etcd://127.0.0.1:2379/services
  registrar --internal --network backend zookeeper://zk1:2181,zk2:2181/services
  registrar --swarm --swarm-mode vip --network backend etcd://etcd:2379/services   (on a Swarm manager)
  CONSUL_HTTP_TOKEN=... registrar --ip 10.0.0.5 --cleanup consul://127.0.0.1:8500
  registrar --dry-run --ip 10.0.0.5 etcd://127.0.0.1:2379/services              (print the diff, write nothing)
  registrar check etcd://127.0.0.1:2379/services
  registrar explain web-1`;

const CHECK_HELP = `
One line per dependency: "ok" or "FAIL", what was tried and, for a failure, the likely cause. Docker must
answer GET /info; each registry must accept a probe entry (list, write, read back, delete) under the node id
<node-id>.check, which proves its address, credentials, TLS and write permission without touching a running
bridge's entries. Each probe is bounded (15 s).

Exit codes: 0 every check passed, 1 a check failed, 2 bad usage (a malformed URI, a credential in the URI).

Examples:
  registrar check etcd://127.0.0.1:2379/services
  ETCD_USERNAME=registrar ETCD_PASSWORD_FILE=/run/secrets/etcd registrar check etcds://etcd:2379/services
  registrar check --docker-host tcp://10.0.0.5:2375 zk://zk1:2181/services consul://127.0.0.1:8500`;

export function buildProgram(command: CliCommand = 'bridge'): Command {
  const check = command === 'check';
  return new Command(check ? 'registrar check' : 'registrar')
    .description(
      check
        ? 'Preflight: check that Docker answers and that every registry accepts a probe entry, with the options and URIs the bridge would run with.'
        : 'Mirror the services of Docker containers into Consul, etcd or ZooKeeper.',
    )
    .version(VERSION, '--version', 'print the version and exit (also: registrar version)')
    .argument(
      '<registry-uri...>',
      'etcd://host:port[,host:port]/prefix | zookeeper://hosts/base | consul://host:port',
    )
    .addOption(ipOption('address to advertise for published ports'))
    .addOption(opt('--internal', "advertise the container's own IP and exposed port"))
    .addOption(opt('--network <name>', "which container network's IP to use"))
    .addOption(opt('--tags <list>', 'comma-separated tags added to every service'))
    .addOption(opt('--ttl <seconds>', 'liveness TTL of every registration').default(15))
    .addOption(opt('--ttl-refresh <seconds>', 'heartbeat interval (default: ttl/3)'))
    .addOption(opt('--resync <seconds>', 'periodic full reconcile; 0 disables').default(300))
    .addOption(
      opt('--stall-check <seconds>', 'check that the Docker event stream still delivers; 0 disables').default(
        15,
      ),
    )
    .addOption(
      opt(
        '--docker-timeout <seconds>',
        'bound on each Docker list and inspect call; one that takes longer is abandoned and retried',
      ).default(10),
    )
    .addOption(
      opt(
        '--cleanup',
        "kept for compatibility: this node's registrations whose container is gone are always removed once Docker's inventory is in",
      ),
    )
    .addOption(opt('--explicit', 'only register containers that name a service (SERVICE_NAME)'))
    .addOption(
      opt(
        '--labels-only',
        'read SERVICE_* settings from labels, never from environment variables: many containers at once are then read from one container list instead of an inspect each',
      ),
    )
    .addOption(
      opt('--deregister <mode>', 'on-success keeps the services of containers that failed')
        .choices(DEREGISTER_MODES)
        .default('always'),
    )
    .addOption(
      opt(
        '--deregister-on-exit',
        "remove this node's registrations on shutdown instead of letting them expire",
      ),
    )
    .addOption(
      opt(
        '--no-drain',
        'keep a stopping container registered until its process exits (default: withdraw it at its stop signal)',
      ),
    )
    .addOption(opt('--node-id <id>', "owner id of this bridge's registrations (default: Docker's host name)"))
    .addOption(
      opt('--docker-host <uri>', 'Docker engine to watch (default: DOCKER_HOST, else the local socket)'),
    )
    .addOption(
      opt(
        '--state-dir <dir>',
        'keep the ZooKeeper session and etcd lease here (mode 0600) so a restart within the TTL resumes them',
      ),
    )
    .addOption(
      opt(
        '--swarm',
        "on a Swarm manager: register the cluster's services (default node id: swarm-<cluster id>)",
      ),
    )
    .addOption(
      opt(
        '--swarm-mode <mode>',
        'with --swarm: tasks (each task at its address), vip (each service at its virtual IP), ingress (each node of the routing mesh)',
      )
        .choices(SWARM_MODES)
        .default('tasks'),
    )
    .addOption(opt('--dry-run', 'print the registry changes instead of writing them'))
    .addOption(
      opt(
        '--metrics-addr <host:port>',
        'serve Prometheus /metrics, /healthz, /readyz and /debug/containers (registrar explain)',
      ),
    )
    .addOption(
      opt(
        '--debug-remote',
        'also answer /debug/containers to non-loopback clients (it shows every SERVICE_* value and probe output)',
      ),
    )
    .addOption(opt('--log-level <level>', 'log lines from this level up').choices(LOG_LEVELS).default('info'))
    .addOption(opt('--log-format <format>', 'default: pretty on a terminal, else json').choices(LOG_FORMATS))
    .addHelpText('after', check ? CHECK_HELP : BRIDGE_HELP)
    .showHelpAfterError(false)
    .allowExcessArguments(false);
}

const fail = (message: string): never => {
  throw new ConfigError(oneLine(message, 600));
};

/** Node timers overflow above 2^31-1 ms (about 24.8 days) and then fire every millisecond. */
const MAX_SECONDS = 2_000_000;

function seconds(name: string, value: string, min: number): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < min || n > MAX_SECONDS) {
    fail(
      `invalid --${name} ${quote(value, 40)}: expected a number of seconds${min > 0 ? ` >= ${min}` : ' (0 or more)'} and <= ${MAX_SECONDS}`,
    );
  }
  return n;
}

/**
 * Parse argv and environment into a validated config. Bad usage throws a ConfigError whose message is one
 * line; `--help`/`--version` throw CommanderError with exitCode 0.
 */
export function parseCli(
  argv: readonly string[],
  write: (text: string) => void = () => undefined,
  command: CliCommand = 'bridge',
): CliConfig {
  const program = buildProgram(command);
  parseArgv(program, argv, write, command === 'check' ? 'registrar check --help' : 'registrar --help');
  const { str, flag, fromEnv } = optionReaders(program);
  const o = program.opts<Record<string, string | number | boolean | undefined>>();

  const ttl = seconds('ttl', str('ttl') ?? '15', 1);
  const refreshText = str('ttlRefresh');
  const ttlRefresh = refreshText === undefined ? undefined : seconds('ttl-refresh', refreshText, 0.1);
  if (ttlRefresh !== undefined && ttlRefresh >= ttl) {
    fail(`invalid --ttl-refresh ${ttlRefresh}: must be less than --ttl ${ttl} (default ttl/3)`);
  }
  const { ip, ip6 } = parseIps(o.ip);
  // Commander has checked the choices.
  const deregister = (str('deregister') ?? 'always') as DeregisterMode;
  const nodeId = checkNodeId(str('nodeId'));
  const logLevel = str('logLevel') ?? 'info';
  const logFormat = (str('logFormat') ?? (process.stderr.isTTY ? 'pretty' : 'json')) as LogFormat;
  const tags = parseTagsOption(str('tags'));
  const metricsText = str('metricsAddr');
  const dockerHost = str('dockerHost');
  const stateDir = str('stateDir');
  const network = str('network');
  const swarm = flag('swarm');
  const swarmModeSource = program.getOptionValueSource('swarmMode');
  if (!swarm && (swarmModeSource === 'cli' || swarmModeSource === 'env')) {
    const given = swarmModeSource === 'env' ? 'REGISTRAR_SWARM_MODE' : '--swarm-mode';
    fail(`${given} applies to Swarm mode only: add --swarm (or REGISTRAR_SWARM=true), or drop it`);
  }

  return {
    uris: program.args,
    ...(ip !== undefined && { ip }),
    ...(ip6 !== undefined && { ip6 }),
    internal: flag('internal'),
    ...(network !== undefined && network !== '' && { network }),
    tags,
    ttl,
    ...(ttlRefresh !== undefined && { ttlRefresh }),
    resync: seconds('resync', str('resync') ?? '300', 0),
    stallCheck: seconds('stall-check', str('stallCheck') ?? '15', 0),
    dockerTimeout: seconds('docker-timeout', str('dockerTimeout') ?? '10', 0.1),
    cleanup: flag('cleanup'),
    explicit: flag('explicit'),
    labelsOnly: flag('labelsOnly'),
    deregister,
    deregisterOnExit: flag('deregisterOnExit'),
    // `--no-drain`, or REGISTRAR_NO_DRAIN=true.
    drain: fromEnv('drain') ? !envFlag('no-drain', process.env) : o.drain !== false,
    ...(nodeId !== undefined && { nodeId }),
    ...(dockerHost !== undefined && dockerHost !== '' && { dockerHost }),
    ...(stateDir !== undefined && stateDir !== '' && { stateDir }),
    dryRun: flag('dryRun'),
    ...(metricsText !== undefined && { metricsAddr: parseListenAddress(metricsText) }),
    debugRemote: flag('debugRemote'),
    logLevel,
    logFormat,
    swarm,
    // Commander has checked the choices.
    swarmMode: (str('swarmMode') ?? 'tasks') as SwarmMode,
  };
}

/**
 * Read a parsed program's options: `str` gives a value as text (numeric defaults are numbers so that `--help`
 * shows `default: 15`; given values are text), `flag` a boolean flag, from argv or its environment variable.
 */
export function optionReaders(program: Command) {
  const o = program.opts<Record<string, string | number | boolean | undefined>>();
  const str = (key: string) => {
    const value = o[key];
    return typeof value === 'string' || typeof value === 'number' ? String(value) : undefined;
  };
  const fromEnv = (key: string) => program.getOptionValueSource(key) === 'env';
  const flag = (key: string) =>
    fromEnv(key)
      ? envFlag(
          key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`),
          process.env,
        )
      : o[key] === true;
  return { str, flag, fromEnv };
}

/**
 * `--ip <addr>`, repeatable and comma-separated (so `REGISTRAR_IP=10.0.0.5,fd00::5` works too): at most one
 * address per IP family.
 */
export function ipOption(description: string): Option {
  return opt(
    '--ip <addr>',
    `${description}; one per IP family for dual stack (--ip 10.0.0.5 --ip fd00::5)`,
  ).argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), ...value.split(',')]);
}

/** The `--ip` values: the first address, and the IPv6 one beside an IPv4 first when both families are given. */
export function parseIps(values: unknown): { ip?: string; ip6?: string } {
  const given = (Array.isArray(values) ? (values as unknown[]) : typeof values === 'string' ? [values] : [])
    .map((v) => String(v).trim())
    .filter((v) => v !== '');
  const ips = given.map((v) => checkIp(v)!);
  const v4 = ips.filter((ip) => isIP(ip) === 4);
  const v6 = ips.filter((ip) => isIP(ip) === 6);
  if (v4.length > 1 || v6.length > 1) {
    const [a, b] = v4.length > 1 ? v4 : v6;
    fail(
      `invalid --ip: ${quote(a, 60)} and ${quote(b, 60)} are of the same IP family; give at most one IPv4 and one IPv6 address`,
    );
  }
  if (v4[0] !== undefined) return { ip: v4[0], ...(v6[0] !== undefined && { ip6: v6[0] }) };
  return v6[0] !== undefined ? { ip: v6[0] } : {};
}

/** `--ip`: an address clients can reach (not a wildcard). */
export function checkIp(ip: string | undefined): string | undefined {
  if (ip !== undefined && isIP(ip) === 0)
    fail(`invalid --ip ${quote(ip, 60)}: expected an IPv4 or IPv6 address`);
  if (ip !== undefined && isUnspecified(ip)) {
    fail(`invalid --ip ${quote(ip, 60)}: an unspecified address cannot be reached; give this host's address`);
  }
  return ip;
}

/** What a node id may be: the first part of every service id, so never ':' or '/'. */
export const NODE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;

/** `--node-id`: the first part of every service id. */
export function checkNodeId(nodeId: string | undefined): string | undefined {
  if (nodeId !== undefined && !NODE_ID_PATTERN.test(nodeId)) {
    fail(
      `invalid --node-id ${quote(nodeId, 60)}: use letters, digits, '.', '_' and '-' (it is the first part of every service ID)`,
    );
  }
  return nodeId;
}

/** `--tags a,b`: trimmed, empty ones dropped, no control characters. */
export function parseTagsOption(text: string | undefined): string[] {
  const tags =
    text === undefined
      ? []
      : text
          .split(',')
          .map((t) => t.trim())
          .filter((t) => t !== '');
  // eslint-disable-next-line no-control-regex -- control characters are what is refused
  const badTag = tags.find((t) => /[\u0000-\u001f\u007f]/.test(t));
  if (badTag !== undefined) fail(`invalid --tags: tag ${quote(badTag, 40)} contains control characters`);
  return tags;
}

/**
 * Run commander on `argv` (help and version text go to `write`). Bad usage throws a ConfigError whose message
 * is one line naming `help`; `--help`/`--version` throw CommanderError with exitCode 0.
 */
export function parseArgv(
  program: Command,
  argv: readonly string[],
  write: (text: string) => void,
  help = 'registrar --help',
): void {
  program.exitOverride().configureOutput({ writeOut: write, writeErr: () => undefined });
  try {
    program.parse(argv, { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError && error.exitCode !== 0)
      throw new ConfigError(usageError(error, help));
    throw error;
  }
}

/**
 * Commander's own usage errors, as one line in this program's words. A value outside an option's choices
 * reads `invalid --deregister 'sometimes': expected one of always, on-success`, like the checks below.
 */
function usageError(error: CommanderError, help: string): string {
  const choice =
    /^error: option '(--[a-z-]+)[^']*' (?:argument '([\s\S]*)'|value '([\s\S]*)' from env '([A-Z_]+)') is invalid\. Allowed choices are ([\s\S]*)\.$/.exec(
      error.message.trim(),
    );
  if (choice) {
    const [, option, argument, envValue, envVar, allowed] = choice;
    const given = envVar === undefined ? `${option}` : `${envVar} (${option})`;
    return oneLine(
      `invalid ${given} ${quote(argument ?? envValue ?? '', 40)}: expected one of ${allowed}`,
      400,
    );
  }
  // Commander echoes the offending argument as given: keep it to one short line.
  return oneLine(`${error.message.replace(/^error: /, '').trim()} (see ${help})`, 400);
}

/** `0.0.0.0`, `::` and their spellings: fine to listen on, useless to advertise. */
function isUnspecified(ip: string): boolean {
  if (isIP(ip) === 4) return ip.split('.').every((octet) => Number(octet) === 0);
  const url = `http://[${ip}]`;
  return URL.canParse(url) && new URL(url).hostname === '[::]';
}

export function parseListenAddress(text: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text);
  const port = Number(match?.[3]);
  if (!match || port > 65535)
    fail(`invalid --metrics-addr ${quote(text, 60)}: expected host:port, e.g. 127.0.0.1:9105`);
  const host = match?.[1] ?? match?.[2] ?? '';
  return { host: host === '' ? '0.0.0.0' : host, port };
}
