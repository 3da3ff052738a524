import { Command, CommanderError, Option } from 'commander';
import { isIP } from 'node:net';
import { ConfigError, oneLine, quote, type DeregisterMode } from '@registrar/core';
import { VERSION } from './version.js';

export type LogFormat = 'json' | 'pretty';

/** Everything the daemon was asked to do, validated. */
export interface CliConfig {
  readonly uris: readonly string[];
  readonly ip?: string;
  readonly internal: boolean;
  readonly network?: string;
  readonly tags: readonly string[];
  readonly ttl: number;
  readonly ttlRefresh?: number;
  readonly resync: number;
  /** Seconds between checks that the Docker event stream still delivers; 0 disables. */
  readonly stallCheck: number;
  readonly cleanup: boolean;
  readonly explicit: boolean;
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
  readonly logLevel: string;
  readonly logFormat: LogFormat;
}

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

const envName = (long: string) => `REGISTRAR_${long.replace(/-/g, '_').toUpperCase()}`;

/**
 * `--name <v>` ↔ `REGISTRAR_NAME`: every option is also read from the environment. Boolean flags are read
 * from it by `envFlag` instead, because commander treats any value, even `false`, as set.
 */
const opt = (flags: string, description: string) => {
  const long = /--([a-z-]+)/.exec(flags)?.[1] ?? '';
  const option = new Option(flags, description);
  return flags.includes('<') ? option.env(envName(long)) : option;
};

function envFlag(long: string, env: NodeJS.ProcessEnv): boolean | undefined {
  const value = env[envName(long)]?.trim().toLowerCase();
  if (value === undefined || value === '') return undefined;
  if (['1', 'true', 'yes', 'on'].includes(value)) return true;
  if (['0', 'false', 'no', 'off'].includes(value)) return false;
  return fail(`invalid ${envName(long)} ${quote(value, 40)}: expected true or false`);
}

export function buildProgram(): Command {
  return new Command('registrar')
    .description('Mirror the services of Docker containers into Consul, etcd or ZooKeeper.')
    .version(VERSION, '--version', 'print the version and exit (also: registrar version)')
    .argument(
      '<registry-uri...>',
      'etcd://host:port[,host:port]/prefix | zookeeper://hosts/base | consul://host:port',
    )
    .addOption(opt('--ip <addr>', 'address to advertise for published ports'))
    .addOption(opt('--internal', "advertise the container's own IP and exposed port"))
    .addOption(opt('--network <name>', "which container network's IP to use"))
    .addOption(opt('--tags <list>', 'comma-separated tags added to every service'))
    .addOption(opt('--ttl <seconds>', 'liveness TTL of every registration').default('15'))
    .addOption(opt('--ttl-refresh <seconds>', 'heartbeat interval (default: ttl/3)'))
    .addOption(opt('--resync <seconds>', 'periodic full reconcile; 0 disables').default('300'))
    .addOption(
      opt('--stall-check <seconds>', 'check that the Docker event stream still delivers; 0 disables').default(
        '15',
      ),
    )
    .addOption(opt('--cleanup', "remove this node's registrations whose container is gone"))
    .addOption(opt('--explicit', 'only register containers that name a service (SERVICE_NAME)'))
    .addOption(
      opt('--deregister <mode>', 'always | on-success (keep services of failed containers)').default(
        'always',
      ),
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
    .addOption(opt('--dry-run', 'print the registry changes instead of writing them'))
    .addOption(opt('--metrics-addr <host:port>', 'serve Prometheus /metrics, /healthz and /readyz'))
    .addOption(opt('--log-level <level>', LOG_LEVELS.join(' | ')).default('info'))
    .addOption(opt('--log-format <format>', 'json | pretty (default: pretty on a terminal, else json)'))
    .addHelpText(
      'after',
      `
Commands:
  registrar check [options] <registry-uri...>   preflight: Docker answers; each registry accepts a probe entry
                                                (read, write, delete); exit 0 when all pass, 1 otherwise
  registrar version                             print the version

Examples:
  registrar --ip 10.0.0.5 etcd://127.0.0.1:2379/services
  registrar --internal --network backend zookeeper://zk1:2181,zk2:2181/services
  CONSUL_HTTP_TOKEN=... registrar --ip 10.0.0.5 --cleanup consul://127.0.0.1:8500
  registrar check etcd://127.0.0.1:2379/services`,
    )
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
): CliConfig {
  const program = buildProgram()
    .exitOverride()
    .configureOutput({ writeOut: write, writeErr: () => undefined });
  try {
    program.parse(argv, { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError && error.exitCode !== 0) {
      // Commander echoes the offending argument as given: keep it to one short line.
      throw new ConfigError(
        oneLine(`${error.message.replace(/^error: /, '').trim()} (see registrar --help)`, 400),
      );
    }
    throw error;
  }
  const o = program.opts<Record<string, string | boolean | undefined>>();
  const str = (key: string) => (typeof o[key] === 'string' ? o[key] : undefined);
  const flag = (key: string) =>
    o[key] === true ||
    (envFlag(
      key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`),
      process.env,
    ) ??
      false);

  const ttl = seconds('ttl', str('ttl') ?? '15', 1);
  const refreshText = str('ttlRefresh');
  const ttlRefresh = refreshText === undefined ? undefined : seconds('ttl-refresh', refreshText, 0.1);
  if (ttlRefresh !== undefined && ttlRefresh >= ttl) {
    fail(`invalid --ttl-refresh ${ttlRefresh}: must be less than --ttl ${ttl} (default ttl/3)`);
  }
  const ip = str('ip');
  if (ip !== undefined && isIP(ip) === 0)
    fail(`invalid --ip ${quote(ip, 60)}: expected an IPv4 or IPv6 address`);
  if (ip !== undefined && isUnspecified(ip)) {
    fail(`invalid --ip ${quote(ip, 60)}: an unspecified address cannot be reached; give this host's address`);
  }
  const deregisterText = str('deregister') ?? 'always';
  if (deregisterText !== 'always' && deregisterText !== 'on-success') {
    fail(`invalid --deregister ${quote(deregisterText, 40)}: expected always or on-success`);
  }
  const deregister = deregisterText as DeregisterMode;
  const nodeId = str('nodeId');
  if (nodeId !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(nodeId)) {
    fail(
      `invalid --node-id ${quote(nodeId, 60)}: use letters, digits, '.', '_' and '-' (it is the first part of every service ID)`,
    );
  }
  const logLevel = str('logLevel') ?? 'info';
  if (!LOG_LEVELS.includes(logLevel))
    fail(`invalid --log-level ${quote(logLevel, 40)}: expected one of ${LOG_LEVELS.join(', ')}`);
  const logFormatText = str('logFormat') ?? (process.stderr.isTTY ? 'pretty' : 'json');
  if (logFormatText !== 'json' && logFormatText !== 'pretty') {
    fail(`invalid --log-format ${quote(logFormatText, 40)}: expected json or pretty`);
  }
  const tagsText = str('tags');
  const tags =
    tagsText === undefined
      ? []
      : tagsText
          .split(',')
          .map((t) => t.trim())
          .filter((t) => t !== '');
  // eslint-disable-next-line no-control-regex -- control characters are what is refused
  const badTag = tags.find((t) => /[\u0000-\u001f\u007f]/.test(t));
  if (badTag !== undefined) fail(`invalid --tags: tag ${quote(badTag, 40)} contains control characters`);
  const metricsText = str('metricsAddr');
  const dockerHost = str('dockerHost');
  const stateDir = str('stateDir');
  const network = str('network');

  return {
    uris: program.args,
    ...(ip !== undefined && { ip }),
    internal: flag('internal'),
    ...(network !== undefined && network !== '' && { network }),
    tags,
    ttl,
    ...(ttlRefresh !== undefined && { ttlRefresh }),
    resync: seconds('resync', str('resync') ?? '300', 0),
    stallCheck: seconds('stall-check', str('stallCheck') ?? '15', 0),
    cleanup: flag('cleanup'),
    explicit: flag('explicit'),
    deregister,
    deregisterOnExit: flag('deregisterOnExit'),
    drain: o.drain !== false && !(envFlag('no-drain', process.env) ?? false),
    ...(nodeId !== undefined && { nodeId }),
    ...(dockerHost !== undefined && dockerHost !== '' && { dockerHost }),
    ...(stateDir !== undefined && stateDir !== '' && { stateDir }),
    dryRun: flag('dryRun'),
    ...(metricsText !== undefined && { metricsAddr: parseListenAddress(metricsText) }),
    logLevel,
    logFormat: logFormatText as LogFormat,
  };
}

/** `0.0.0.0`, `::` and their spellings: fine to listen on, useless to advertise. */
function isUnspecified(ip: string): boolean {
  if (isIP(ip) === 4) return ip.split('.').every((octet) => Number(octet) === 0);
  const url = `http://[${ip}]`;
  return URL.canParse(url) && new URL(url).hostname === '[::]';
}

function parseListenAddress(text: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text);
  const port = Number(match?.[3]);
  if (!match || port > 65535)
    fail(`invalid --metrics-addr ${quote(text, 60)}: expected host:port, e.g. 127.0.0.1:9105`);
  const host = match?.[1] ?? match?.[2] ?? '';
  return { host: host === '' ? '0.0.0.0' : host, port };
}
