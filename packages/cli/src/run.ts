import type Docker from 'dockerode';
import { accessSync, constants, mkdirSync, statSync, type Stats } from 'node:fs';
import {
  ConfigError,
  type Logger,
  type NodeIdConflictError,
  type Registry,
  type RegistryOp,
} from '@registrar/core';
import { backoffDelay, quote, formatHostPort, defaultBackoff } from '@registrar/core/kit';
import { createBridge, createSwarmBridge, type Bridge, type SwarmBridge } from '@registrar/core/internal';
import { createDocker } from './docker.js';
import { createLogger } from './logging.js';
import { Metrics, serveMetrics } from './metrics.js';
import { deriveOptionsOf, NODE_ID_PATTERN, parseCli, type CliConfig } from './options.js';
import { checkRegistryUri, createRegistry } from './registries.js';
import { VERSION } from './version.js';

/** How long a graceful shutdown may take before we give up on the registries and exit anyway. */
const SHUTDOWN_TIMEOUT_MS = 10_000;

/** The daemon. Resolves with the exit code after a signal; throws ConfigError for bad usage. */
export async function run(argv: readonly string[]): Promise<number> {
  if (argv.length === 1 && argv[0] === 'version') {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  // Subcommands are imported when named, so the daemon does not carry their code (and `lb` its HAProxy client).
  if (argv[0] === 'lb') return (await import('./lb.js')).runLb(argv.slice(1));
  if (argv[0] === 'render') return (await import('./render.js')).runRender(argv.slice(1));
  if (argv[0] === 'explain') {
    return (await import('./explain.js')).runExplain(
      argv.slice(1),
      (text) => process.stdout.write(text),
      (text) => process.stderr.write(text),
    );
  }
  const checking = argv[0] === 'check';
  const config = parseCli(checking ? argv.slice(1) : argv, (text) => process.stdout.write(text));
  for (const uri of config.uris) checkRegistryUri(uri);
  const docker = await createDocker(config.dockerHost);
  if (checking)
    return (await import('./check.js')).runCheck(
      config,
      docker,
      (line) => process.stdout.write(line),
      process.env,
    );
  const stateDir = config.stateDir === undefined ? undefined : prepareStateDir(config.stateDir);
  const logger = (await createLogger(config.logLevel, config.logFormat)) as unknown as Logger;

  const stopping = new AbortController();
  const signalled = new Promise<NodeJS.Signals>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping.signal.aborted) {
        logger.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      stopping.abort();
      resolve(signal);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });

  // Also with --node-id: every entry records the engine's ID (and Swarm mode needs the engine's Swarm
  // state), so nothing is written before Docker answers.
  const info = await dockerInfo(docker, config.nodeId === undefined, logger, stopping.signal);
  if (info === undefined) return 0; // signalled while waiting for Docker
  const clusterId = config.swarm ? swarmClusterId(info) : undefined;
  const nodeId = config.nodeId ?? (clusterId !== undefined ? `swarm-${clusterId}` : engineNodeId(info));
  // In Swarm mode the entries belong to the cluster, not to one manager's engine: the cluster is the writer,
  // so whichever manager runs the bridge adopts them.
  const engineId = clusterId !== undefined ? `swarm-${clusterId}` : info.ID;
  const log = logger.child({ node: nodeId });
  if (engineId === undefined) {
    log.warn(
      'docker info has no ID: entries record no engine, so a host sharing this node id cannot be told apart',
    );
  }

  // Each adapter's module is loaded only when a URI names it.
  const registries: Registry[] = await Promise.all(
    config.uris.map((uri) =>
      createRegistry(uri, {
        nodeId,
        ...(engineId !== undefined && { engineId }),
        ttl: config.ttl,
        ...(config.ttlRefresh !== undefined && { ttlRefresh: config.ttlRefresh }),
        logger: log,
        env: process.env,
        dryRun: config.dryRun,
        ...(stateDir !== undefined && { stateDir }),
      }),
    ),
  );
  // Right after the registries, in the same tick: their events$ are counted from the start.
  const current: { bridge?: Bridge | SwarmBridge } = {};
  const metrics = new Metrics(() => current.bridge, registries);
  log.info(
    {
      version: VERSION,
      registries: registries.map((r) => r.target),
      ttl: config.ttl,
      dryRun: config.dryRun,
      ...(config.swarm && { swarmMode: config.swarmMode, cluster: clusterId }),
    },
    'registrar starting',
  );
  if (config.swarm && (config.ip !== undefined || config.internal)) {
    log.warn('--ip and --internal do not apply with --swarm (--swarm-mode decides the addresses); ignored');
  }
  if (config.swarm && config.deregisterOnExit && !config.dryRun) {
    log.warn(
      "--deregister-on-exit does not apply with --swarm: the entries are the cluster's, and the next elected manager adopts them; ignored",
    );
  }
  if (config.ip === undefined && !config.internal && !config.swarm) {
    log.warn(
      'no --ip given: ports published on all interfaces (0.0.0.0/::) are skipped; pass --ip <host address>',
    );
  }

  // The metrics server starts before the bridge so a port clash is reported before anything is written.
  const server = config.metricsAddr
    ? await serveMetrics(
        config.metricsAddr,
        metrics,
        () => metrics.ready(current.bridge, registries),
        {
          containers: () => current.bridge?.explainAll(),
          container: (ref) => current.bridge?.explain(ref),
        },
        config.debugRemote,
      ).catch((error: unknown) => {
        throw new ConfigError(
          `cannot listen on --metrics-addr ${config.metricsAddr?.host}:${config.metricsAddr?.port}: ${(error as Error).message}`,
        );
      })
    : undefined;

  // A registry holding this node id's entries from another engine: the bridge cannot go on (exit 2).
  let conflicted: (error: NodeIdConflictError) => void = () => undefined;
  const conflict = new Promise<NodeIdConflictError>((resolve) => (conflicted = resolve));
  const observer = {
    ...metrics.observer,
    onOp: (registry: Registry, op: RegistryOp, outcome: 'ok' | 'error' | 'dry-run', seconds: number) => {
      metrics.observer.onOp?.(registry, op, outcome, seconds);
      if (outcome === 'dry-run') process.stdout.write(`${registry.target} ${describeOp(op)}\n`);
    },
    onFatal: (_registry: Registry, error: NodeIdConflictError) => conflicted(error),
  };
  const bridge = config.swarm
    ? createSwarmBridge({
        docker,
        registries,
        logger: log,
        nodeId,
        mode: config.swarmMode,
        ...(config.network !== undefined && { network: config.network }),
        tags: config.tags,
        explicit: config.explicit,
        resync: config.resync,
        // Swarm has no task events: the stall check's interval is how often the cluster is listed whole.
        pollMs: config.stallCheck * 1000,
        dockerTimeoutMs: config.dockerTimeout * 1000,
        cleanup: config.cleanup,
        dryRun: config.dryRun,
        // Every manager runs this; each registry elects the one that writes. A dry run writes nothing, not
        // even an election key, and prints what it would do as if elected.
        ...(!config.dryRun && { elect: { candidate: info.Name ?? info.ID ?? 'unknown' } }),
        observer,
      })
    : createBridge({
        docker,
        registries,
        logger: log,
        ...deriveOptionsOf(config, nodeId),
        resync: config.resync,
        stallCheckMs: config.stallCheck * 1000,
        dockerTimeoutMs: config.dockerTimeout * 1000,
        cleanup: config.cleanup,
        deregister: config.deregister,
        drain: config.drain,
        dryRun: config.dryRun,
        observer,
      });

  current.bridge = bridge;

  const reason = await Promise.race([signalled, conflict]);
  const conflictFound = typeof reason === 'string' ? undefined : reason;
  log.info(
    {
      ...(conflictFound ? { conflict: conflictFound.target } : { signal: reason }),
      deregister: config.deregisterOnExit,
    },
    'shutting down',
  );
  const timedOut = new Promise<'timeout'>((resolve) =>
    setTimeout(() => resolve('timeout'), SHUTDOWN_TIMEOUT_MS).unref(),
  );
  const outcome = await Promise.race([bridge.stop({ deregister: config.deregisterOnExit }), timedOut]);
  if (outcome === 'timeout') {
    log.warn(
      { timeoutMs: SHUTDOWN_TIMEOUT_MS },
      'shutdown timed out; exiting with registrations left to expire',
    );
  }
  server?.close();
  log.info('stopped');
  // The adapters left the other engine's entries alone, on close too; the one line says what to do.
  if (conflictFound) throw new ConfigError(conflictFound.message);
  return 0;
}

/**
 * `--state-dir`, created (0700) if missing. It holds credentials (a ZooKeeper session's password): a
 * directory we cannot write, or that another user owns or can write to, is a configuration error.
 */
export function prepareStateDir(dir: string): string {
  let stat: Stats;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    accessSync(dir, constants.W_OK);
    stat = statSync(dir);
  } catch (error) {
    throw new ConfigError(
      `invalid --state-dir ${quote(dir, 120)}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}; give a writable directory`,
    );
  }
  const uid = process.getuid?.();
  if (uid !== undefined && stat.uid !== uid) {
    throw new ConfigError(
      `invalid --state-dir ${quote(dir, 120)}: owned by uid ${stat.uid}, not by this process (uid ${uid}); it holds credentials: chown it or give a directory of this user's`,
    );
  }
  if ((stat.mode & 0o022) !== 0) {
    throw new ConfigError(
      `invalid --state-dir ${quote(dir, 120)}: others can write to it (mode ${(stat.mode & 0o777).toString(8)}); it holds credentials: chmod 700 it`,
    );
  }
  return dir;
}

/** One dry-run line: `+ id name address:port` or `- id`. */
function describeOp(op: RegistryOp): string {
  if (op.type === 'deregister') return `- ${op.entry.id} (${op.entry.name})`;
  const s = op.service;
  const address = formatHostPort({ host: s.address, port: s.port });
  return `${op.replaces ? '~' : '+'} ${s.id} ${s.name} ${address} tags=${s.tags.join(',')} health=${s.health}`;
}

/** What the bridge reads of `docker info`. */
interface EngineInfo {
  readonly Name?: string;
  /** The engine's ID, recorded with every entry. */
  readonly ID?: string;
  readonly Swarm?: {
    readonly LocalNodeState?: string;
    readonly ControlAvailable?: boolean;
    readonly Cluster?: { readonly ID?: string };
  };
}

/**
 * The engine's info: its host name (the default node id, needed when `needName`), ID and Swarm state. Waits
 * for Docker with backoff rather than exiting.
 */
async function dockerInfo(
  docker: Docker,
  needName: boolean,
  logger: Logger,
  signal: AbortSignal,
): Promise<EngineInfo | undefined> {
  for (let attempt = 1; !signal.aborted; attempt++) {
    try {
      const info = (await docker.info()) as EngineInfo;
      if (info.Name || !needName) return info;
      throw new Error('docker info has no Name');
    } catch (error) {
      const delay = backoffDelay(attempt, defaultBackoff);
      if (attempt === 1) logger.warn({ err: error }, 'docker not reachable; waiting for it');
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, delay);
        signal.addEventListener('abort', () => {
          clearTimeout(timer);
          resolve(undefined);
        });
      });
    }
  }
  return undefined;
}

/**
 * The default node id: the engine's host name, held to the rules `--node-id` is (it is the first part of every
 * service id, so a name like `x:y` or ` ` would make ids that parse wrong).
 */
export function engineNodeId(info: EngineInfo): string {
  const name = typeof info.Name === 'string' ? info.Name : '';
  if (!NODE_ID_PATTERN.test(name)) {
    throw new ConfigError(
      `docker info gives the host name ${quote(name, 60)}, which cannot be a node id (letters, digits, '.', '_' and '-'); pass --node-id <id>`,
    );
  }
  return name;
}

/**
 * The cluster's id, from a manager's info; anything else is a configuration error: only a manager can list
 * the cluster's services, tasks and nodes.
 */
export function swarmClusterId(info: EngineInfo): string {
  const engine = quote(info.Name ?? 'this engine', 80);
  const state = info.Swarm?.LocalNodeState ?? 'inactive';
  if (state !== 'active') {
    throw new ConfigError(
      `--swarm: Docker engine ${engine} is not an active Swarm node (state ${quote(state, 20)}); run registrar --swarm against a Swarm manager, or drop --swarm`,
    );
  }
  const id = info.Swarm?.Cluster?.ID;
  if (info.Swarm?.ControlAvailable !== true || id === undefined || !/^[A-Za-z0-9]+$/.test(id)) {
    throw new ConfigError(
      `--swarm: Docker engine ${engine} is a Swarm worker; run registrar --swarm on a manager (placement constraint node.role == manager)`,
    );
  }
  return id;
}

export type { CliConfig };
