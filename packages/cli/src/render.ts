import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { Subject } from 'rxjs';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry as PromRegistry } from 'prom-client';
import { ConfigError, type Logger } from '@registrar/core';
import { parseGoDuration, quote } from '@registrar/core/kit';
import {
  followIntoFiles,
  GOOD_OUTCOMES,
  TemplateError,
  type RenderEvent,
  type RenderOutcome,
  type RenderTarget,
  type WaitWindow,
} from '@registrar/render';
import { createLogger } from './logging.js';
import { opt, runUntilStopped, serveFollowerMetrics, withServeOptions } from './follower-command.js';
import { parseArgv, parseListenAddress, type LogFormat } from './options.js';
import { checkRegistryScheme, createFollower } from './registries.js';
import { VERSION } from './version.js';

export interface RenderConfig {
  readonly uri: string;
  readonly targets: readonly RenderTarget[];
  readonly wait: WaitWindow;
  readonly commandTimeoutMs: number;
  readonly metricsAddr?: { host: string; port: number };
  readonly logLevel: string;
  readonly logFormat: LogFormat;
}

/** The options that make up one target, in the order they were given. */
type TargetOption = 'template' | 'out' | 'check' | 'reload';

/**
 * The `registrar render` program. `given` receives the target options in argv order (commander keeps no
 * order across options), so that each `--out`, `--check` and `--reload` goes with the `--template` before it.
 */
export function buildRenderProgram(given: [TargetOption, string][] = []): Command {
  const targetOption = (name: TargetOption, flags: string, description: string) =>
    new Option(flags, description).argParser((value: string) => {
      given.push([name, value]);
      return value;
    });
  const program = new Command('registrar render')
    .description(
      "Render configuration files (nginx, HAProxy, Prometheus file_sd, hosts...) from services' live instances in etcd, ZooKeeper or Consul; check each new file and reload its consumer.",
    )
    .argument(
      '<registry-uri>',
      'the registry to follow, as given to registrar (etcd://, zookeeper://, consul://)',
    )
    .addOption(
      targetOption(
        'template',
        '--template <file>',
        'a Liquid template; repeat for more files',
      ).makeOptionMandatory(),
    )
    .addOption(
      targetOption('out', '--out <file>', 'where the --template before it is rendered').makeOptionMandatory(),
    )
    .addOption(
      targetOption(
        'check',
        '--check <command>',
        "run (sh -c) with the new file in place, e.g. 'nginx -t'; failing, the previous file is put back",
      ),
    )
    .addOption(
      targetOption(
        'reload',
        '--reload <command>',
        "run after the file changed and passed its check, e.g. 'nginx -s reload'",
      ),
    )
    .addOption(
      opt(
        '--wait <min[:max]>',
        'fold changes into one render: wait until none came for min, at most max (default 4 × min), e.g. 2s:10s',
        'REGISTRAR_RENDER_WAIT',
      ).default('0'),
    )
    .addOption(
      opt(
        '--command-timeout <duration>',
        'kill a --check or --reload command running longer',
        'REGISTRAR_RENDER_COMMAND_TIMEOUT',
      ).default('30s'),
    );
  return withServeOptions(program)
    .addHelpText(
      'after',
      `
A template (Liquid) reads services as services.<name> or services["my-api"]; each is followed
as soon as a template reads it. Every {{ }} is written as one plain token unless a format filter
encodes it: nginx, haproxy, json, hostname, integer. A service without instances keeps the last
file unless the template says {% allow_empty %}. SIGHUP reads the templates again.
Examples in deploy/render/; details in docs/render.md.

Examples:
  registrar render --template upstreams.conf.liquid --out /etc/nginx/conf.d/upstreams.conf \\
    --check 'nginx -t' --reload 'nginx -s reload' etcd://127.0.0.1:2379/services
  registrar render --template targets.json.liquid --out /etc/prometheus/targets/web.json \\
    --template hosts.liquid --out /etc/hosts.d/services --wait 1s:5s consul://127.0.0.1:8500`,
    )
    .showHelpAfterError(false)
    .allowExcessArguments(false);
}

/** `--template a --out x --check c --template b --out y` → one target per `--template`. */
function parseTargets(given: readonly [TargetOption, string][]): RenderTarget[] {
  // With a single --template, its other options may come in any order.
  const single = given.filter(([name]) => name === 'template').length === 1;
  const targets: Partial<Record<TargetOption, string>>[] = [];
  for (const [name, value] of given) {
    if (name === 'template' && !(single && targets.length === 1)) {
      targets.push({ template: value });
      continue;
    }
    if (targets.length === 0) {
      if (!single) {
        throw new ConfigError(
          `invalid --${name} ${quote(value, 80)}: give it after the --template it belongs to`,
        );
      }
      targets.push({});
    }
    const into = targets.at(-1)!;
    if (into[name] !== undefined) {
      throw new ConfigError(
        `invalid --${name} ${quote(value, 80)}: --template ${quote(into.template ?? '', 80)} has a --${name} already; one per template`,
      );
    }
    into[name] = value;
  }
  const outs = new Set<string>();
  return targets.map((target) => {
    if (target.template === undefined || target.template.trim() === '') {
      throw new ConfigError('invalid --template: give a template file (see registrar render --help)');
    }
    if (target.out === undefined || target.out.trim() === '') {
      throw new ConfigError(
        `--template ${quote(target.template, 80)} has no --out: give the file it is rendered into after it`,
      );
    }
    const out = resolve(target.out);
    if (outs.has(out)) {
      throw new ConfigError(
        `invalid --out ${quote(target.out, 80)}: two templates render into it; one file per template`,
      );
    }
    outs.add(out);
    for (const command of ['check', 'reload'] as const) {
      if (target[command] !== undefined && target[command].trim() === '') {
        throw new ConfigError(`invalid --${command} for ${quote(target.out, 80)}: the command is empty`);
      }
    }
    return {
      template: target.template,
      out,
      ...(target.check !== undefined && { check: target.check }),
      ...(target.reload !== undefined && { reload: target.reload }),
    };
  });
}

function duration(option: string, text: string, range: { min: number; max: number }): number {
  let ms: number;
  try {
    ms = parseGoDuration(text.trim());
  } catch {
    ms = NaN;
  }
  if (!(ms >= range.min && ms <= range.max)) {
    throw new ConfigError(
      `invalid ${option} ${quote(text, 40)}: expected a duration from ${range.min} ms to ${range.max / 1000} s, such as 500ms or 2s`,
    );
  }
  return ms;
}

function parseWait(text: string): WaitWindow {
  const [min = '', max, ...rest] = text.split(':');
  if (rest.length > 0)
    throw new ConfigError(`invalid --wait ${quote(text, 40)}: expected min or min:max, e.g. 2s:10s`);
  const minMs = duration('--wait', min, { min: 0, max: 3_600_000 });
  const maxMs = max === undefined ? 4 * minMs : duration('--wait', max, { min: 0, max: 3_600_000 });
  if (maxMs < minMs) throw new ConfigError(`invalid --wait ${quote(text, 40)}: max is shorter than min`);
  return { minMs, maxMs };
}

/** Parse `registrar render` argv (without the `render`); bad usage throws a one-line ConfigError. */
export function parseRenderCli(
  argv: readonly string[],
  write: (text: string) => void = () => undefined,
): RenderConfig {
  const given: [TargetOption, string][] = [];
  const program = buildRenderProgram(given);
  parseArgv(program, argv, write, 'registrar render --help');
  const o = program.opts<{
    wait: string;
    commandTimeout: string;
    metricsAddr?: string;
    logLevel: string;
    logFormat?: LogFormat;
  }>();
  const uri = program.args[0] ?? '';
  // The scheme here; the rest by its adapter when the follower is created, before anything connects.
  checkRegistryScheme(uri);
  return {
    uri,
    targets: parseTargets(given),
    wait: parseWait(o.wait),
    commandTimeoutMs: duration('--command-timeout', o.commandTimeout, { min: 100, max: 3_600_000 }),
    ...(o.metricsAddr !== undefined && { metricsAddr: parseListenAddress(o.metricsAddr) }),
    logLevel: o.logLevel,
    logFormat: o.logFormat ?? (process.stderr.isTTY ? 'pretty' : 'json'),
  };
}

const FAILURES: ReadonlySet<RenderOutcome> = new Set([
  'template-error',
  'write-failed',
  'check-failed',
  'reload-failed',
]);

/** The renderer's Prometheus metrics, fed by its events; ready means "every file is current". */
class RenderMetrics {
  readonly registry = new PromRegistry();
  private readonly last = new Map<string, RenderOutcome>();
  private readonly templateErrors = new Set<string>();
  private readonly registryUp = new Map<string, boolean>();
  private readonly renders = new Counter({
    name: 'registrar_render_renders_total',
    help: 'Renders by output file and outcome (written, unchanged, waiting, empty, template-error, write-failed, check-failed, reload-failed, reloaded)',
    labelNames: ['out', 'outcome'],
    registers: [this.registry],
  });
  private readonly seconds = new Histogram({
    name: 'registrar_render_seconds',
    help: 'Time of one render, check and reload included',
    labelNames: ['out'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  private readonly failing = new Gauge({
    name: 'registrar_render_failing',
    help: '1 while the file is not current because its template, write, check or reload failed (alert on it)',
    labelNames: ['out'],
    registers: [this.registry],
  });
  private readonly written = new Gauge({
    name: 'registrar_render_last_written_timestamp_seconds',
    help: 'When the file was last replaced (checked and reloaded)',
    labelNames: ['out'],
    registers: [this.registry],
  });
  private readonly instances = new Gauge({
    name: 'registrar_render_instances',
    help: 'Live instances the registry holds, per service the templates read',
    labelNames: ['service'],
    registers: [this.registry],
  });
  private readonly registryGauge = new Gauge({
    name: 'registrar_render_registry_up',
    help: '1 while the registry answers for the service',
    labelNames: ['service'],
    registers: [this.registry],
  });

  constructor(private readonly targets: readonly RenderTarget[]) {
    collectDefaultMetrics({ register: this.registry, prefix: 'registrar_' });
    new Gauge({
      name: 'registrar_build_info',
      help: 'Which registrar version runs',
      labelNames: ['version'],
      registers: [this.registry],
    }).set({ version: VERSION }, 1);
    for (const t of targets) this.failing.set({ out: t.out }, 0);
  }

  observe(event: RenderEvent): void {
    if (event.kind === 'registry') {
      this.registryUp.set(event.service, event.reachable);
      this.registryGauge.set({ service: event.service }, event.reachable ? 1 : 0);
    } else if (event.kind === 'instances') {
      this.registryUp.set(event.service, true);
      this.registryGauge.set({ service: event.service }, 1);
      this.instances.set({ service: event.service }, event.count);
    } else if (event.kind === 'template') {
      if (event.error === undefined) this.templateErrors.delete(event.target.out);
      else this.templateErrors.add(event.target.out);
      this.updateFailing(event.target.out);
    } else {
      const out = event.target.out;
      this.renders.inc({ out, outcome: event.outcome });
      this.seconds.observe({ out }, event.seconds);
      if (event.outcome === 'written') this.written.set({ out }, Date.now() / 1000);
      if (event.outcome !== 'waiting') this.last.set(out, event.outcome);
      this.updateFailing(out);
    }
  }

  private updateFailing(out: string) {
    const outcome = this.last.get(out);
    const failing = this.templateErrors.has(out) || (outcome !== undefined && FAILURES.has(outcome));
    this.failing.set({ out }, failing ? 1 : 0);
  }

  ready(): { ok: boolean; detail: object } {
    const files = Object.fromEntries(
      this.targets.map((t): [string, RenderOutcome] => [
        t.out,
        this.templateErrors.has(t.out) ? 'template-error' : (this.last.get(t.out) ?? 'waiting'),
      ]),
    );
    const registry = Object.fromEntries(this.registryUp);
    return {
      ok:
        Object.values(files).every((outcome) => GOOD_OUTCOMES.has(outcome)) &&
        Object.values(registry).every(Boolean),
      detail: { files, registry },
    };
  }
}

/** `registrar render`: runs until SIGTERM/SIGINT (SIGHUP reads the templates again); resolves with the exit code. */
export async function runRender(argv: readonly string[]): Promise<number> {
  const config = parseRenderCli(argv, (text) => process.stdout.write(text));
  const logger = (await createLogger(config.logLevel, config.logFormat)) as unknown as Logger;
  const follower = await createFollower(config.uri, { logger, env: process.env });
  const reread$ = new Subject<void>();
  let events$;
  try {
    events$ = followIntoFiles({
      follower,
      targets: config.targets,
      wait: config.wait,
      commandTimeoutMs: config.commandTimeoutMs,
      reread$,
      logger,
    });
  } catch (error) {
    await follower.close();
    if (error instanceof TemplateError) throw new ConfigError(error.message);
    throw error;
  }
  const metrics = new RenderMetrics(config.targets);
  const server = await serveFollowerMetrics(config.metricsAddr, metrics, () => metrics.ready());
  logger.info(
    {
      version: VERSION,
      registry: follower.target,
      files: config.targets.map((t) => `${t.template} -> ${t.out}`),
      wait: config.wait,
    },
    'registrar render starting',
  );

  return runUntilStopped({
    events$,
    observe: (event) => metrics.observe(event),
    follower,
    server,
    logger,
    onHup: () => {
      logger.info('SIGHUP: reading the templates again');
      reread$.next();
    },
  });
}
