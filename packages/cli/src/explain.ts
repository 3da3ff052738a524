import { Command, Option } from 'commander';
import { get as httpGet } from 'node:http';
import { ConfigError } from '@registrar/core';
import { formatHostPort, oneLine, quote } from '@registrar/core/kit';
import {
  containerStateOf,
  deriveServices,
  explainContainer,
  matchContainer,
  type ExplainReason,
  type ExplainReport,
} from '@registrar/core/internal';
import { createDocker, type DockerClient } from './docker.js';
import {
  ipOption,
  parseIps,
  checkNodeId,
  deriveOptionsOf,
  opt,
  optionReaders,
  parseArgv,
  parseListenAddress,
  parseTagsOption,
} from './options.js';

/** Where `registrar explain` asks by default: the bridge's `--metrics-addr` in the image and deploy files. */
export const DEFAULT_METRICS_ADDR = '127.0.0.1:9105';
/** How long the bridge gets to answer before explain derives from Docker itself. */
const ASK_TIMEOUT_MS = 3_000;

export interface ExplainConfig {
  readonly container: string;
  /** Where to ask: the bridge's `--metrics-addr`, a wildcard listen address turned into loopback. */
  readonly metricsAddr: { readonly host: string; readonly port: number };
  readonly json: boolean;
  /** The derive options used when no bridge answers. */
  readonly ip?: string;
  readonly ip6?: string;
  readonly internal: boolean;
  readonly network?: string;
  readonly explicit: boolean;
  readonly labelsOnly: boolean;
  readonly tags: readonly string[];
  readonly nodeId?: string;
  readonly dockerHost?: string;
}

export function buildExplainProgram(): Command {
  return new Command('registrar explain')
    .description(
      "Say, for each port of a container, where the running bridge registered it (per registry, with the record and the registry's state) or exactly why not. Without a bridge answering at --metrics-addr, derive from Docker with the options given here.",
    )
    .argument('<container>', 'container name, full id or id prefix (at least 4 hex digits)')
    .addOption(
      opt(
        '--metrics-addr <host:port>',
        "the bridge's --metrics-addr (a 0.0.0.0 listener is asked on 127.0.0.1)",
      ).default(DEFAULT_METRICS_ADDR),
    )
    .addOption(new Option('--json', 'print the explain document as JSON'))
    .addOption(ipOption('without a bridge: address to advertise for published ports'))
    .addOption(opt('--internal', "without a bridge: advertise the container's own IP and exposed port"))
    .addOption(opt('--network <name>', "without a bridge: which container network's IP to use"))
    .addOption(opt('--explicit', 'without a bridge: only containers that name a service'))
    .addOption(opt('--labels-only', 'without a bridge: SERVICE_* settings from labels only'))
    .addOption(opt('--tags <list>', 'without a bridge: tags added to every service'))
    .addOption(opt('--node-id <id>', "without a bridge: the node id (default: Docker's host name)"))
    .addOption(opt('--docker-host <uri>', 'Docker engine (default: DOCKER_HOST, else the local socket)'))
    .addHelpText(
      'after',
      `
Exit codes: 0 explained, 1 the container is unknown (or nothing could be asked), 2 bad usage.

Examples:
  registrar explain web-1
  registrar explain --metrics-addr 10.0.0.5:9105 --json 4f1c2a3b`,
    )
    .showHelpAfterError(false)
    .allowExcessArguments(false);
}

/** Parse `registrar explain` argv and environment (the bridge's `REGISTRAR_*` variables apply). */
export function parseExplainCli(argv: readonly string[], write: (text: string) => void): ExplainConfig {
  const program = buildExplainProgram();
  parseArgv(program, argv, write, 'registrar explain --help');
  const { str, flag } = optionReaders(program);
  const container = program.args[0] ?? '';
  if (container.trim() === '') throw new ConfigError('registrar explain: give a container name or id');
  const listen = parseListenAddress(str('metricsAddr') ?? DEFAULT_METRICS_ADDR);
  const { ip, ip6 } = parseIps(program.opts<{ ip?: unknown }>().ip);
  const nodeId = checkNodeId(str('nodeId'));
  const network = str('network');
  const dockerHost = str('dockerHost');
  return {
    container,
    metricsAddr: { host: askHost(listen.host), port: listen.port },
    json: program.opts<{ json?: boolean }>().json === true,
    ...(ip !== undefined && { ip }),
    ...(ip6 !== undefined && { ip6 }),
    internal: flag('internal'),
    ...(network !== undefined && network !== '' && { network }),
    explicit: flag('explicit'),
    labelsOnly: flag('labelsOnly'),
    tags: parseTagsOption(str('tags')),
    ...(nodeId !== undefined && { nodeId }),
    ...(dockerHost !== undefined && dockerHost !== '' && { dockerHost }),
  };
}

/** A wildcard listener answers on loopback. */
function askHost(host: string): string {
  if (host === '' || host === '0.0.0.0') return '127.0.0.1';
  if (host === '::' || host === '[::]') return '::1';
  return host;
}

type Asked =
  | { readonly kind: 'report'; readonly report: ExplainReport }
  | { readonly kind: 'unknown' }
  | { readonly kind: 'ambiguous'; readonly matches: readonly { id: string; name: string }[] }
  /** Nothing answered (refused, timed out). */
  | { readonly kind: 'no-bridge'; readonly why: string }
  /** Something answered, but not a bridge's `/debug/containers`. */
  | { readonly kind: 'not-a-bridge'; readonly why: string };

/** One GET with node:http (fetch refuses some ports outright, e.g. 6000), bounded by `ASK_TIMEOUT_MS`. */
function get(
  address: { host: string; port: number },
  path: string,
): Promise<{ status: number; type: string; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpGet(
      {
        host: address.host,
        port: address.port,
        path,
        timeout: ASK_TIMEOUT_MS,
        headers: { accept: 'application/json' },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          // An explain document is a few KiB; anything this large is not one.
          if (size > 16 * 1024 * 1024) req.destroy(new Error('answer larger than 16 MiB'));
          else chunks.push(chunk);
        });
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            type: res.headers['content-type'] ?? '',
            text: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${ASK_TIMEOUT_MS / 1000} s`)));
    req.on('error', reject);
  });
}

async function askBridge(address: { host: string; port: number }, ref: string): Promise<Asked> {
  const path = `/debug/containers/${encodeURIComponent(ref)}`;
  let response: { status: number; type: string; text: string };
  try {
    response = await get(address, path);
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    return { kind: 'no-bridge', why: e.code ?? e.message };
  }
  let body: { error?: string; matches?: { id: string; name: string }[] } | undefined;
  try {
    body = response.type.startsWith('application/json')
      ? (JSON.parse(response.text) as typeof body)
      : undefined;
  } catch {
    body = undefined;
  }
  if (response.status === 200 && body !== undefined && body !== null && 'ports' in body)
    return { kind: 'report', report: body as unknown as ExplainReport };
  if (response.status === 404 && body?.error === 'unknown-container') return { kind: 'unknown' };
  if (response.status === 409 && body?.error === 'ambiguous-container')
    return { kind: 'ambiguous', matches: body.matches ?? [] };
  if (response.status === 503 && body?.error === 'starting')
    return { kind: 'no-bridge', why: 'the bridge is starting' };
  return { kind: 'not-a-bridge', why: `it answered ${response.status} to GET ${path}` };
}

type Found =
  | { readonly kind: 'found'; readonly report: ExplainReport }
  | { readonly kind: 'unknown' }
  | { readonly kind: 'ambiguous'; readonly matches: readonly { id: string; name: string }[] };

/** Derive from Docker itself, with the options given to explain: what a bridge with them would do. */
async function fromDocker(docker: DockerClient, config: ExplainConfig): Promise<Found> {
  const list = await docker.listContainers({ all: true });
  const match = matchContainer(
    config.container,
    list.map((c) => ({ id: c.Id, name: (c.Names?.[0] ?? '').replace(/^\//, '') })),
  );
  if (match.kind !== 'found') return match;
  const info = await docker.getContainer(match.item.id).inspect();
  const nodeId = config.nodeId ?? ((await docker.info()) as { Name?: string }).Name ?? 'registrar';
  const options = deriveOptionsOf(config, nodeId);
  const report = explainContainer({
    source: 'docker',
    container: { id: info.Id, name: match.item.name || info.Name.replace(/^\//, '') },
    state: containerStateOf(info),
    derivation: deriveServices(info, options),
    options,
    registries: [],
    derivedAt: Date.now(),
  });
  return { kind: 'found', report };
}

const message = (error: unknown) => oneLine(error instanceof Error ? error.message : String(error), 300);

/**
 * `registrar explain <container>`: ask the running bridge; without one, derive from Docker. Resolves with the
 * exit code: 0 explained, 1 unknown container (or neither the bridge nor Docker could be asked); bad usage
 * throws ConfigError (exit 2).
 */
export async function runExplain(
  argv: readonly string[],
  out: (text: string) => void,
  err: (text: string) => void,
): Promise<number> {
  const config = parseExplainCli(argv, out);
  const at = formatHostPort(config.metricsAddr);
  const ref = quote(config.container, 80);
  const asked = await askBridge(config.metricsAddr, config.container);
  if (asked.kind === 'report') {
    out(
      config.json
        ? `${JSON.stringify(asked.report, null, 2)}\n`
        : renderReport(asked.report, `bridge at ${at}`),
    );
    return 0;
  }
  if (asked.kind === 'ambiguous') throw ambiguous(config.container, asked.matches);

  const header =
    asked.kind === 'unknown'
      ? `the bridge at ${at} tracks no running container ${ref}; derived from Docker with the options given here, registry state unknown`
      : asked.kind === 'no-bridge'
        ? `no bridge answered at ${at} (${asked.why}); derived from Docker with the options given here, registry state unknown`
        : `no registrar bridge answered at ${at} (${asked.why}); derived from Docker with the options given here, registry state unknown`;
  let found: Found;
  try {
    found = await fromDocker(await createDocker(config.dockerHost), config);
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    err(`registrar: ${header.split(';')[0]}, and Docker did not answer: ${message(error)}\n`);
    return 1;
  }
  if (found.kind === 'ambiguous') throw ambiguous(config.container, found.matches);
  if (found.kind === 'unknown') {
    err(
      `registrar: no container ${ref}: ${asked.kind === 'unknown' ? `neither the bridge at ${at} nor Docker knows it` : `Docker knows none by that name or id (${header.split(';')[0]})`}\n`,
    );
    return 1;
  }
  if (config.json) {
    out(`${JSON.stringify({ note: header, ...found.report }, null, 2)}\n`);
  } else {
    out(`${header}\n`);
    out(renderReport(found.report, 'options given here'));
  }
  return 0;
}

function ambiguous(ref: string, matches: readonly { id: string; name: string }[]): ConfigError {
  const list = matches
    .slice(0, 5)
    .map((m) => `${m.id.slice(0, 12)} (${m.name})`)
    .join(', ');
  return new ConfigError(
    `container id prefix ${quote(ref, 40)} is ambiguous: ${matches.length} containers match (${list}${matches.length > 5 ? ', ...' : ''}); give more of the id or the name`,
  );
}

const SKIP_STATES: Record<string, string> = { 'label-warning': 'warning', 'not-running': 'not running' };

const reasonText = (reasons: readonly ExplainReason[]) =>
  reasons.map((r) => `${r.code}: ${r.text}`).join('; ');

/**
 * The readable report: a header line, then one line per port and registry (`port  registry  state  detail`),
 * container-wide reasons first, and the options the derivation used.
 */
export function renderReport(report: ExplainReport, optionsOf: string): string {
  const c = report.container;
  const health = c.health === 'none' ? '' : `, health ${c.health}`;
  const draining = c.draining ? `, stopping (${c.draining})` : '';
  const exit = c.exitCode === undefined ? '' : ` (exit code ${c.exitCode})`;
  const lines: string[][] = [];
  const row = (port: string, where: string, state: string, detail: string) =>
    lines.push([port, where, state, detail]);
  for (const r of report.reasons) row('-', '-', SKIP_STATES[r.code] ?? 'skipped', `${r.code}: ${r.text}`);
  for (const p of report.ports) {
    const port = `${p.port}/${p.protocol}`;
    for (const s of p.services) {
      const at = s.dualStack
        ? `${formatHostPort({ host: s.dualStack.ipv4.address, port: s.dualStack.ipv4.port })} and ${formatHostPort({ host: s.dualStack.ipv6.address, port: s.dualStack.ipv6.port })}`
        : formatHostPort({ host: s.address, port: s.port });
      const what = `${s.name} at ${at} (id ${s.id})`;
      if (s.registrations.length === 0) {
        row(port, '-', 'derived', [what, reasonText(s.reasons)].filter((t) => t !== '').join('; '));
      }
      for (const r of s.registrations) {
        row(port, r.target, r.state, [what, reasonText(r.reasons)].filter((t) => t !== '').join('; '));
      }
    }
    for (const r of p.reasons) row(port, '-', SKIP_STATES[r.code] ?? 'skipped', `${r.code}: ${r.text}`);
  }
  const widths = [0, 1, 2].map((i) => Math.max(...lines.map((l) => l[i].length), 0));
  const body = lines.map(
    (l) =>
      `  ${l
        .slice(0, 3)
        .map((cell, i) => cell.padEnd(widths[i]))
        .join('  ')}  ${l[3]}`,
  );
  const o = report.options;
  const flags = [
    `--node-id ${o.nodeId}`,
    o.ip === undefined ? 'no --ip' : `--ip ${o.ip}`,
    ...(o.internal ? ['--internal'] : []),
    ...(o.network === undefined ? [] : [`--network ${o.network}`]),
    ...(o.explicit ? ['--explicit'] : []),
    ...(o.labelsOnly === true ? ['--labels-only'] : []),
    ...(o.tags.length > 0 ? [`--tags ${o.tags.join(',')}`] : []),
    ...(report.registries.some((r) => r.dryRun) ? ['--dry-run (nothing is written)'] : []),
  ];
  return [
    `${c.name} (${c.id.slice(0, 12)}): ${c.status || 'unknown state'}${exit}${health}${draining}: ${report.summary}`,
    ...body,
    `  options (${optionsOf}): ${flags.join(' ')}`,
    '',
  ].join('\n');
}
