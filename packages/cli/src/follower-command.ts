import type { Server } from 'node:http';
import { Option, type Command } from 'commander';
import type { Observable } from 'rxjs';
import type { Registry as PromRegistry } from 'prom-client';
import { ConfigError, type Logger, type ServiceFollower } from '@registrar/core';
import { oneLine } from '@registrar/core/kit';
import { serveMetrics } from './metrics.js';
import type { LogFormat } from './options.js';

/**
 * What `registrar lb` and `registrar render` share: they follow a registry into something (HAProxy, files),
 * serve the same endpoints, log the same way and stop on the same signals.
 */

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

/** An option that can also come from the environment variable `env`. */
export const opt = (flags: string, description: string, env: string) =>
  new Option(flags, description).env(env);

/** `--metrics-addr`, `--log-level`, `--log-format`, as every follower command takes them. */
export function withServeOptions(program: Command): Command {
  return program
    .addOption(
      opt(
        '--metrics-addr <host:port>',
        'serve Prometheus /metrics, /healthz and /readyz',
        'REGISTRAR_METRICS_ADDR',
      ),
    )
    .addOption(
      opt('--log-level <level>', 'log lines from this level up', 'REGISTRAR_LOG_LEVEL')
        .choices(LOG_LEVELS)
        .default('info'),
    )
    .addOption(
      opt(
        '--log-format <format>',
        'default: pretty on a terminal, else json',
        'REGISTRAR_LOG_FORMAT',
      ).choices(['json', 'pretty']),
    );
}

/** `/metrics`, `/healthz` and `/readyz` on `address`; a port that cannot be had is a configuration error. */
export async function serveFollowerMetrics(
  address: { host: string; port: number } | undefined,
  metrics: { readonly registry: PromRegistry },
  ready: () => { ok: boolean; detail: object },
): Promise<Server | undefined> {
  if (address === undefined) return undefined;
  return serveMetrics(address, metrics, ready).catch((error: unknown) => {
    throw new ConfigError(
      `cannot listen on --metrics-addr ${address.host}:${address.port}: ${(error as Error).message}`,
    );
  });
}

/**
 * Run a follower until SIGTERM or SIGINT (exit 0) or until `events$` fails (thrown): each event goes to
 * `observe`; `onHup` (optional) is called on SIGHUP. Then stop following, close the endpoints and the registry.
 */
export async function runUntilStopped<Event>(options: {
  readonly events$: Observable<Event>;
  readonly observe: (event: Event) => void;
  readonly follower: ServiceFollower;
  readonly server: Server | undefined;
  readonly logger: Logger;
  readonly onHup?: () => void;
}): Promise<number> {
  const { logger, onHup } = options;
  let finish: (outcome: NodeJS.Signals | Error) => void = () => undefined;
  const done = new Promise<NodeJS.Signals | Error>((resolve) => (finish = resolve));
  process.once('SIGTERM', finish);
  process.once('SIGINT', finish);
  if (onHup) process.on('SIGHUP', onHup);
  const subscription = options.events$.subscribe({
    next: options.observe,
    error: (error: unknown) =>
      finish(error instanceof Error ? error : new Error(oneLine(String(error), 400))),
  });
  const outcome = await done;
  if (onHup) process.off('SIGHUP', onHup);
  subscription.unsubscribe();
  options.server?.close();
  await options.follower
    .close()
    .catch((error: unknown) => logger.warn({ err: error }, 'closing the registry failed'));
  if (outcome instanceof Error) throw outcome;
  logger.info({ signal: outcome }, 'stopped');
  return 0;
}

export type { LogFormat };
