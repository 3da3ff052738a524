import type Docker from 'dockerode';
import { accessSync, constants, mkdirSync } from 'node:fs';
import {
  backoffDelay,
  ConfigError,
  quote,
  createBridge,
  defaultBackoff,
  type Bridge,
  type Logger,
  type Registry,
  type RegistryOp,
} from '@registrar/core';
import { createDocker } from './docker.js';
import { createLogger } from './logging.js';
import { Metrics, serveMetrics } from './metrics.js';
import { parseCli, type CliConfig } from './options.js';
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

  const nodeId = config.nodeId ?? (await dockerHostName(docker, logger, stopping.signal));
  if (nodeId === undefined) return 0; // signalled while waiting for Docker
  const log = logger.child({ node: nodeId });

  // The metrics exist before the registries so that adapters' heartbeat failures are counted from the start.
  const current: { bridge?: Bridge } = {};
  const registries: Registry[] = [];
  const metrics = new Metrics(() => current.bridge, registries);
  for (const [index, uri] of config.uris.entries()) {
    registries.push(
      await createRegistry(uri, {
        nodeId,
        ttl: config.ttl,
        ...(config.ttlRefresh !== undefined && { ttlRefresh: config.ttlRefresh }),
        logger: metrics.adapterLogger(log, () => registries[index]),
        env: process.env,
        dryRun: config.dryRun,
        ...(stateDir !== undefined && { stateDir }),
      }),
    );
  }
  log.info(
    { version: VERSION, registries: registries.map((r) => r.target), ttl: config.ttl, dryRun: config.dryRun },
    'registrar starting',
  );
  if (config.ip === undefined && !config.internal) {
    log.warn(
      'no --ip given: ports published on all interfaces (0.0.0.0/::) are skipped; pass --ip <host address>',
    );
  }

  // The metrics server starts before the bridge so a port clash is reported before anything is written.
  const server = config.metricsAddr
    ? await serveMetrics(config.metricsAddr, metrics, () => metrics.ready(current.bridge, registries), {
        containers: () => current.bridge?.explainAll(),
        container: (ref) => current.bridge?.explain(ref),
      }).catch((error: unknown) => {
        throw new ConfigError(
          `cannot listen on --metrics-addr ${config.metricsAddr?.host}:${config.metricsAddr?.port}: ${(error as Error).message}`,
        );
      })
    : undefined;

  const bridge = createBridge({
    docker,
    registries,
    logger: log,
    nodeId,
    ...(config.ip !== undefined && { hostIp: config.ip }),
    internal: config.internal,
    ...(config.network !== undefined && { network: config.network }),
    tags: config.tags,
    explicit: config.explicit,
    resync: config.resync,
    stallCheckMs: config.stallCheck * 1000,
    cleanup: config.cleanup,
    deregister: config.deregister,
    drain: config.drain,
    dryRun: config.dryRun,
    observer: {
      ...metrics.observer,
      onOp: (registry, op, outcome, seconds) => {
        metrics.observer.onOp?.(registry, op, outcome, seconds);
        if (outcome === 'dry-run') process.stdout.write(`${registry.target} ${describeOp(op)}\n`);
      },
    },
  });

  current.bridge = bridge;

  const signal = await signalled;
  log.info({ signal, deregister: config.deregisterOnExit }, 'shutting down');
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
  return 0;
}

/** `--state-dir`, created (0700) if missing; a directory we cannot use is a configuration error. */
function prepareStateDir(dir: string): string {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    accessSync(dir, constants.W_OK);
  } catch (error) {
    throw new ConfigError(
      `invalid --state-dir ${quote(dir, 120)}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}; give a writable directory`,
    );
  }
  return dir;
}

/** One dry-run line: `+ id name address:port` or `- id`. */
function describeOp(op: RegistryOp): string {
  if (op.type === 'deregister') return `- ${op.entry.id} (${op.entry.name})`;
  const s = op.service;
  const address = s.address.includes(':') ? `[${s.address}]` : s.address;
  return `${op.replaces ? '~' : '+'} ${s.id} ${s.name} ${address}:${s.port} tags=${s.tags.join(',')} health=${s.health}`;
}

/** The engine's host name (the default node id); waits for Docker with backoff rather than exiting. */
async function dockerHostName(
  docker: Docker,
  logger: Logger,
  signal: AbortSignal,
): Promise<string | undefined> {
  for (let attempt = 1; !signal.aborted; attempt++) {
    try {
      const info = (await docker.info()) as { Name?: string };
      if (info.Name) return info.Name;
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

export type { CliConfig };
