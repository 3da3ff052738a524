import { Command } from 'commander';
import { collectDefaultMetrics, Counter, Gauge, Registry as PromRegistry } from 'prom-client';
import { ConfigError, type Logger } from '@registrar/core';
import { quote } from '@registrar/core/kit';
import {
  describeAddress,
  followIntoHaproxy,
  parseRuntimeAddress,
  type LbEvent,
  type LbTarget,
  type RuntimeAddress,
} from '@registrar/lb';
import { createLogger } from './logging.js';
import { opt, runUntilStopped, serveFollowerMetrics, withServeOptions } from './follower-command.js';
import { parseArgv, parseListenAddress, type LogFormat } from './options.js';
import { checkRegistryScheme, createFollower } from './registries.js';
import { VERSION } from './version.js';

export interface LbConfig {
  readonly uri: string;
  readonly haproxy: RuntimeAddress;
  readonly targets: readonly LbTarget[];
  readonly checkInterval: number;
  readonly metricsAddr?: { host: string; port: number };
  readonly logLevel: string;
  readonly logFormat: LogFormat;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export function buildLbProgram(): Command {
  const program = new Command('registrar lb')
    .description(
      "Keep HAProxy backends' server-template slots equal to services' live instances in etcd, ZooKeeper or Consul, through HAProxy's runtime API (no reloads).",
    )
    .argument(
      '<registry-uri>',
      'the registry to follow, as given to registrar (etcd://, zookeeper://, consul://)',
    )
    .addOption(
      opt(
        '--haproxy <address>',
        "HAProxy's runtime API (a `stats socket ... level admin`): a unix socket path or host:port",
        'REGISTRAR_LB_HAPROXY',
      ).makeOptionMandatory(),
    )
    .addOption(
      opt(
        '--service <service[=backend]>',
        'a service to follow, into the backend of the same name or the one given; repeat, or separate with commas',
        'REGISTRAR_LB_SERVICES',
      )
        // Repeatable: each use adds to the list.
        .argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value])
        .makeOptionMandatory(),
    )
    .addOption(
      opt(
        '--check-interval <seconds>',
        'compare HAProxy with the registry this often even without a change (refills a restarted HAProxy)',
        'REGISTRAR_LB_CHECK_INTERVAL',
      ).default(1),
    );
  return withServeOptions(program)
    .addHelpText(
      'after',
      `
Each backend is a server-template in haproxy.cfg whose slots start disabled, e.g.
  backend web
    server-template s 1-10 127.0.0.1:80 check disabled

Exit codes: 0 after SIGTERM/SIGINT, 1 a fatal error, 2 bad usage.

Examples:
  registrar lb --haproxy /run/haproxy/admin.sock --service web etcd://127.0.0.1:2379/services
  registrar lb --haproxy 127.0.0.1:9999 --service web=web_backend,api zookeeper://zk1:2181/services
  CONSUL_HTTP_TOKEN=... registrar lb --haproxy haproxy:9999 --service web consul://127.0.0.1:8500`,
    )
    .showHelpAfterError(false)
    .allowExcessArguments(false);
}

function parseTargets(values: readonly string[]): LbTarget[] {
  const targets: LbTarget[] = [];
  for (const item of values
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter((v) => v !== '')) {
    const [service = '', backend = service, ...rest] = item.split('=').map((p) => p.trim());
    if (rest.length > 0 || !NAME.test(service) || !NAME.test(backend)) {
      throw new ConfigError(
        `invalid --service ${quote(item, 80)}: expected service or service=backend, each letters, digits, '.', '_' or '-'`,
      );
    }
    if (targets.some((t) => t.backend === backend)) {
      throw new ConfigError(
        `invalid --service ${quote(item, 80)}: backend ${backend} is already followed; one service per backend`,
      );
    }
    targets.push({ service, backend });
  }
  if (targets.length === 0)
    throw new ConfigError('invalid --service: name at least one service (see registrar lb --help)');
  return targets;
}

/** Parse `registrar lb` argv (without the `lb`); bad usage throws a one-line ConfigError. */
export function parseLbCli(
  argv: readonly string[],
  write: (text: string) => void = () => undefined,
): LbConfig {
  const program = buildLbProgram();
  parseArgv(program, argv, write, 'registrar lb --help');
  const o = program.opts<{
    haproxy: string;
    service: string[];
    checkInterval: string | number;
    metricsAddr?: string;
    logLevel: string;
    logFormat?: LogFormat;
  }>();
  // The scheme here; the rest by its adapter when the follower is created, before anything connects.
  const uri = program.args[0] ?? '';
  checkRegistryScheme(uri);
  const interval = Number(o.checkInterval);
  if (
    String(o.checkInterval).trim() === '' ||
    !Number.isFinite(interval) ||
    interval < 0.05 ||
    interval > 3600
  ) {
    throw new ConfigError(
      `invalid --check-interval ${quote(String(o.checkInterval), 40)}: expected a number of seconds from 0.05 to 3600`,
    );
  }
  return {
    uri,
    haproxy: parseRuntimeAddress(o.haproxy),
    targets: parseTargets(o.service),
    checkInterval: interval,
    ...(o.metricsAddr !== undefined && { metricsAddr: parseListenAddress(o.metricsAddr) }),
    logLevel: o.logLevel,
    logFormat: o.logFormat ?? (process.stderr.isTTY ? 'pretty' : 'json'),
  };
}

/** The follower's Prometheus metrics, fed by its events; readiness is "HAProxy and the registry answer". */
class LbMetrics {
  readonly registry = new PromRegistry();
  private haproxyUp = false;
  private readonly registryUp = new Map<string, boolean>();
  private readonly instances = new Gauge({
    name: 'registrar_lb_instances',
    help: 'Live instances the registry holds, per followed service',
    labelNames: ['service', 'backend'],
    registers: [this.registry],
  });
  private readonly serving = new Gauge({
    name: 'registrar_lb_serving_slots',
    help: 'Server slots of the backend that point at a live instance',
    labelNames: ['backend'],
    registers: [this.registry],
  });
  private readonly slots = new Gauge({
    name: 'registrar_lb_slots',
    help: 'Server slots the backend has',
    labelNames: ['backend'],
    registers: [this.registry],
  });
  private readonly unplaced = new Gauge({
    name: 'registrar_lb_unplaced_instances',
    help: 'Live instances that found no free slot (raise the server-template count)',
    labelNames: ['backend'],
    registers: [this.registry],
  });
  private readonly changes = new Counter({
    name: 'registrar_lb_slot_changes_total',
    help: 'Slots pointed at an instance (enabled) or put in maintenance (disabled)',
    labelNames: ['backend', 'change'],
    registers: [this.registry],
  });
  private readonly haproxy = new Gauge({
    name: 'registrar_lb_haproxy_up',
    help: '1 while the HAProxy runtime API answers',
    registers: [this.registry],
  });
  private readonly registryGauge = new Gauge({
    name: 'registrar_lb_registry_up',
    help: '1 while the registry answers for the service',
    labelNames: ['service'],
    registers: [this.registry],
  });

  constructor(targets: readonly LbTarget[]) {
    collectDefaultMetrics({ register: this.registry, prefix: 'registrar_' });
    new Gauge({
      name: 'registrar_build_info',
      help: 'Which registrar version runs',
      labelNames: ['version'],
      registers: [this.registry],
    }).set({ version: VERSION }, 1);
    this.haproxy.set(0);
    for (const t of targets) this.registryGauge.set({ service: t.service }, 0);
  }

  observe(event: LbEvent): void {
    if (event.kind === 'haproxy') {
      this.haproxyUp = event.reachable;
      this.haproxy.set(event.reachable ? 1 : 0);
    } else if (event.kind === 'registry') {
      this.registryUp.set(event.target.service, event.reachable);
      this.registryGauge.set({ service: event.target.service }, event.reachable ? 1 : 0);
    } else if (event.kind === 'instances') {
      this.instances.set({ service: event.target.service, backend: event.target.backend }, event.count);
    } else {
      const backend = event.target.backend;
      this.slots.set({ backend }, event.slots);
      this.serving.set({ backend }, event.plan.serving);
      this.unplaced.set({ backend }, event.plan.unplaced.length);
      if (event.plan.enabled > 0) this.changes.inc({ backend, change: 'enabled' }, event.plan.enabled);
      if (event.plan.disabled > 0) this.changes.inc({ backend, change: 'disabled' }, event.plan.disabled);
    }
  }

  ready(targets: readonly LbTarget[]): { ok: boolean; detail: object } {
    const registries = Object.fromEntries(
      targets.map((t) => [t.service, this.registryUp.get(t.service) ?? false]),
    );
    return {
      ok: this.haproxyUp && Object.values(registries).every(Boolean),
      detail: { haproxy: this.haproxyUp, registry: registries },
    };
  }
}

/** `registrar lb`: runs until SIGTERM/SIGINT; resolves with the exit code. */
export async function runLb(argv: readonly string[]): Promise<number> {
  const config = parseLbCli(argv, (text) => process.stdout.write(text));
  const logger = (await createLogger(config.logLevel, config.logFormat)) as unknown as Logger;
  const follower = await createFollower(config.uri, { logger, env: process.env });
  const metrics = new LbMetrics(config.targets);
  const server = await serveFollowerMetrics(config.metricsAddr, metrics, () => metrics.ready(config.targets));
  logger.info(
    {
      version: VERSION,
      registry: follower.target,
      haproxy: describeAddress(config.haproxy),
      services: config.targets.map((t) =>
        t.service === t.backend ? t.service : `${t.service}=${t.backend}`,
      ),
    },
    'registrar lb starting',
  );

  return runUntilStopped({
    events$: followIntoHaproxy({
      follower,
      haproxy: config.haproxy,
      targets: config.targets,
      checkIntervalMs: config.checkInterval * 1000,
      logger,
    }),
    observe: (event) => metrics.observe(event),
    follower,
    server,
    logger,
  });
}
