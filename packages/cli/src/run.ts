import { accessSync, constants, mkdirSync, statSync, type Stats } from 'node:fs';
import {
  ConfigError,
  type Logger,
  type NodeIdConflictError,
  type Registry,
  type RegistryOp,
} from '@registrar/core';
import { quote, formatHostPort, startQuietGc } from '@registrar/core/kit';
import { createBridge, createSwarmBridge, engineIdentity, type Bridge } from '@registrar/core/internal';
import { ChangeLog } from './changes.js';
import { createDocker, dockerAddress, waitForDocker, type DockerClient, type EngineInfo } from './docker.js';
import { printHelp } from './help.js';
import { Health } from './health.js';
import { createLogger } from './logging.js';
import { Metrics, serveMetrics } from './metrics.js';
import { deriveOptionsOf, NODE_ID_PATTERN, parseCli, type CliConfig } from './options.js';
import { checkRegistryUri, createRegistry } from './registries.js';
import { VERSION } from './version.js';

/** How long a graceful shutdown may take before we give up on the registries and exit anyway. */
const SHUTDOWN_TIMEOUT_MS = 10_000;

/** The daemon and its commands. Resolves with the exit code after a signal; throws ConfigError for bad usage. */
export async function run(argv: readonly string[]): Promise<number> {
  const write = (text: string) => process.stdout.write(text);
  if (argv.length === 1 && argv[0] === 'version') {
    write(`${VERSION}\n`);
    return 0;
  }
  if (argv[0] === 'help') return printHelp(argv.slice(1), write);
  // Subcommands are imported when named, so the daemon does not carry their code (and `lb` its HAProxy client).
  if (argv[0] === 'lb') return (await import('./lb.js')).runLb(argv.slice(1));
  if (argv[0] === 'render') return (await import('./render.js')).runRender(argv.slice(1));
  if (argv[0] === 'explain') {
    return (await import('./explain.js')).runExplain(argv.slice(1), write, (text) =>
      process.stderr.write(text),
    );
  }
  const checking = argv[0] === 'check';
  const config = parseCli(checking ? argv.slice(1) : argv, write, checking ? 'check' : 'bridge');
  // Each adapter checks its own URIs (and credentials in the environment) before anything connects.
  for (const uri of config.uris) await checkRegistryUri(uri, process.env);
  const docker = await createDocker(config.dockerHost);
  if (checking) return (await import('./check.js')).runCheck(config, docker, write, process.env);
  return runBridge(config, docker);
}

async function runBridge(config: CliConfig, docker: DockerClient): Promise<number> {
  const stateDir = config.stateDir === undefined ? undefined : prepareStateDir(config.stateDir);
  const logger = (await createLogger(config.logLevel, config.logFormat)) as unknown as Logger;
  const address = dockerAddress(config.dockerHost);

  // Signals are handled before anything can wait: a SIGTERM while Docker does not answer ends the wait.
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

  // The start line comes first: whatever waits after it, the log says what this process is.
  logger.info(
    {
      version: VERSION,
      uris: config.uris,
      docker: address,
      ...(config.nodeId !== undefined && { node: config.nodeId }),
      ...(config.metricsAddr && { metrics: formatHostPort(config.metricsAddr) }),
      ttl: config.ttl,
      dryRun: config.dryRun,
      ...(config.swarm && { swarmMode: config.swarmMode }),
    },
    'registrar starting',
  );

  // Health and metrics from the first second, before Docker answers: a probe sees why the bridge waits.
  const health = new Health(config.uris);
  const metrics = new Metrics(health);
  const current: { bridge?: Bridge } = {};
  const server = config.metricsAddr
    ? await serveMetrics(
        config.metricsAddr,
        metrics,
        () => health.readiness(),
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

  try {
    return await bridgeAfterDocker(config, docker, {
      logger,
      address,
      stateDir,
      stopping,
      signalled,
      health,
      metrics,
      current,
    });
  } finally {
    server?.close();
  }
}

interface Running {
  readonly logger: Logger;
  readonly address: string;
  readonly stateDir: string | undefined;
  readonly stopping: AbortController;
  readonly signalled: Promise<NodeJS.Signals>;
  readonly health: Health;
  readonly metrics: Metrics;
  readonly current: { bridge?: Bridge };
}

async function bridgeAfterDocker(config: CliConfig, docker: DockerClient, r: Running): Promise<number> {
  const { logger, health, metrics, current } = r;
  // Also with --node-id: every entry records the engine's ID (and Swarm mode needs the engine's Swarm
  // state), so nothing is written before Docker answers. Each call is bounded; a signal ends the wait.
  const info = await waitForDocker(docker, {
    address: r.address,
    needName: config.nodeId === undefined,
    logger,
    signal: r.stopping.signal,
    onProblem: (problem) => health.docker(problem),
  });
  if (info === undefined) {
    logger.info({ signal: await r.signalled }, 'stopped while waiting for Docker');
    return 0;
  }
  const clusterId = config.swarm ? swarmClusterId(info) : undefined;
  const nodeId = config.nodeId ?? (clusterId !== undefined ? `swarm-${clusterId}` : engineNodeId(info));
  // In Swarm mode the entries belong to the cluster, not to one manager's engine: the cluster is the writer,
  // so whichever manager runs the bridge adopts them.
  const engine = engineIdentity(info);
  const engineId = clusterId !== undefined ? `swarm-${clusterId}` : engine.id;
  if (engine.rootless && config.internal && !config.swarm) {
    throw new ConfigError(
      `--internal cannot be served by rootless ${engine.version}: its containers' addresses live in the user's own network namespace and no other host reaches them; publish the ports (-p) and run registrar with --ip <this host's address> instead`,
    );
  }
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
        ...(r.stateDir !== undefined && { stateDir: r.stateDir }),
      }),
    ),
  );
  // Right after the registries, in the same tick: their events$ are counted from the start.
  metrics.attach(registries);
  log.info(
    {
      engine: `${engine.version}${engine.rootless ? ' (rootless)' : ''}`,
      engineName: info.Name,
      registries: registries.map((reg) => reg.target),
      ...(config.swarm && { swarmMode: config.swarmMode, cluster: clusterId }),
    },
    'bridge starting',
  );
  if (config.swarm && (config.ip !== undefined || config.internal)) {
    log.warn('--ip and --internal do not apply with --swarm (--swarm-mode decides the addresses); ignored');
  }
  if (config.swarm && config.deregisterOnExit && !config.dryRun) {
    log.warn(
      "--deregister-on-exit does not apply with --swarm: the entries are the cluster's, and the next elected manager adopts them; ignored",
    );
  }
  if (config.swarm && config.labelsOnly) {
    log.warn(
      '--labels-only does not apply with --swarm (the manager lists services and tasks whole, environment included); ignored',
    );
  }
  if (engine.kind === 'podman' && config.drain && !config.swarm) {
    log.info(
      'Podman sends no event when a stop begins: a stopping container is withdrawn when its process exits (die), not at its stop signal',
    );
  }
  if (engine.kind === 'podman' && config.labelsOnly && !config.swarm) {
    log.info(
      "--labels-only on Podman: SERVICE_* settings come from labels only, but every container is still inspected (Podman's container list leaves out what its inspect says: unpublished exposed ports, health, a pod member's network)",
    );
  }
  if (config.ip === undefined && !config.internal && !config.swarm) {
    log.warn(
      'no --ip given: ports published on all interfaces (0.0.0.0/::) are skipped; pass --ip <host address>',
    );
  }

  // A registry holding this node id's entries from another engine: the bridge cannot go on (exit 2).
  let conflicted: (error: NodeIdConflictError) => void = () => undefined;
  const conflict = new Promise<NodeIdConflictError>((resolve) => (conflicted = resolve));
  const changes = new ChangeLog(log, {
    desired: () => current.bridge?.desired() ?? new Map(),
    // Asked on every write: the O(1) flag, not status(), which counts every service of every registry.
    inventoryComplete: () => current.bridge?.inventoryComplete() ?? false,
    cleanup: config.cleanup,
    swarm: config.swarm,
  });
  const observer = {
    ...metrics.observer,
    onPass: (registry: Registry, drift: number) => {
      metrics.observer.onPass?.(registry, drift);
      changes.pass(registry, drift);
    },
    onOp: (registry: Registry, op: RegistryOp, outcome: 'ok' | 'error' | 'dry-run', seconds: number) => {
      metrics.observer.onOp?.(registry, op, outcome, seconds);
      if (outcome === 'dry-run') process.stdout.write(`${registry.target} ${describeOp(op)}\n`);
      else if (outcome === 'ok') changes.op(registry, op);
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
        listAnswers: engine.kind !== 'podman',
        dryRun: config.dryRun,
        observer,
      });

  current.bridge = bridge;
  health.attachBridge(bridge);
  // The heap a cold start or a burst grew to is handed back once things are quiet again.
  const quietGc = startQuietGc({
    onCollect: ({ beforeBytes, afterBytes, ms }) =>
      log.debug(
        {
          heapBeforeMiB: Math.round(beforeBytes / 2 ** 20),
          heapAfterMiB: Math.round(afterBytes / 2 ** 20),
          ms,
        },
        'quiet: heap compacted',
      ),
  });

  const reason = await Promise.race([r.signalled, conflict]);
  quietGc.stop();
  const conflictFound = typeof reason === 'string' ? undefined : reason;
  changes.flush();
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
  changes.flush();
  if (outcome === 'timeout') {
    log.warn(
      { timeoutMs: SHUTDOWN_TIMEOUT_MS },
      'shutdown timed out; exiting with registrations left to expire',
    );
  }
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
  const v6 = s.dualStack?.ipv6;
  const address = `${formatHostPort({ host: s.address, port: s.port })}${v6 ? ` ${formatHostPort({ host: v6.address, port: v6.port })}` : ''}`;
  return `${op.replaces ? '~' : '+'} ${s.id} ${s.name} ${address} tags=${s.tags.join(',')} health=${s.health}`;
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
