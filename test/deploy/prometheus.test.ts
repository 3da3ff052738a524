// deploy/prometheus/ against Debian's Prometheus 2.42 (scripts/bootstrap ci installs it): promtool checks the
// rules and runs their unit tests, and a real Prometheus scrapes a real bridge writing to a real etcd. The
// "registry unreachable" alert fires when that etcd is stopped and resolves when it returns (with the rules'
// `for:` shortened to 2 s and 1 s scrape and evaluation intervals, so it takes seconds), and every query of the
// Grafana dashboard parses on that Prometheus and names metrics the bridge serves.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEtcd, type EtcdServer } from '@registrar/test-servers/etcd';
import { freePort, GiveUp, until } from '@registrar/core/testing';
import { removeDir, startProcess, tempDir, type ServerProcess } from '@registrar/test-servers/process';
import { spawnBridge, type BridgeProcess } from '../harness/bridge.js';
import { runContainer, TEST_LABEL, uniqueName } from '../harness/containers.js';
import { removeLabelled } from '../harness/docker.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DIR = join(ROOT, 'deploy/prometheus');
const execFileAsync = promisify(execFile);

/** promtool's exit code and output, whatever the code. */
async function promtool(...args: string[]) {
  try {
    const { stdout, stderr } = await execFileAsync('promtool', args, { cwd: DIR });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, output: (e.stdout ?? '') + (e.stderr ?? '') };
  }
}

describe('deploy/prometheus with promtool', () => {
  it('the rules and the example config are valid', async () => {
    const rules = await promtool('check', 'rules', 'alerts.yml');
    expect(rules.output).toContain('SUCCESS: 7 rules found');
    expect(rules.code).toBe(0);
    const config = await promtool('check', 'config', 'prometheus.yml');
    expect(config.code, config.output).toBe(0);
  });

  it('the rules pass their unit tests (alerts.test.yml)', async () => {
    const tests = await promtool('test', 'rules', 'alerts.test.yml');
    expect(tests.code, tests.output).toBe(0);
    expect(tests.output).toContain('SUCCESS');
  });
});

interface Alert {
  readonly labels: Record<string, string>;
  readonly state: 'pending' | 'firing';
  readonly activeAt: string;
}

let dir: string;
let etcd: EtcdServer;
let bridge: BridgeProcess;
let prometheus: ServerProcess;
let api: string;
let metricsPort: number;
const runLabel = `${TEST_LABEL}.run=${randomBytes(4).toString('hex')}`;
const [labelKey, labelValue] = runLabel.split('=') as [string, string];

const query = async (path: string) => {
  const res = await fetch(`${api}${path}`, { signal: AbortSignal.timeout(5_000) });
  return (await res.json()) as { status: string; data: unknown; error?: string; errorType?: string };
};
const alerts = async (name: string) =>
  ((await query('/api/v1/alerts')).data as { alerts: Alert[] }).alerts.filter(
    (a) => a.labels.alertname === name,
  );

beforeAll(async () => {
  dir = tempDir('prometheus');
  etcd = await startEtcd();
  metricsPort = await freePort();
  const node = `prom-${randomBytes(3).toString('hex')}`;
  bridge = spawnBridge([
    '--node-id',
    node,
    '--ip',
    '127.0.0.1',
    '--explicit',
    '--ttl',
    '3',
    '--metrics-addr',
    `127.0.0.1:${metricsPort}`,
    `etcd://127.0.0.1:${etcd.port}/${node}`,
  ]);
  // The shipped rules, their `for:` shortened so the test takes seconds, not minutes.
  const rules = readFileSync(join(DIR, 'alerts.yml'), 'utf8').replace(/^(\s+for:) \S+$/gm, '$1 2s');
  writeFileSync(join(dir, 'alerts.yml'), rules);
  // YAML is a superset of JSON.
  const config = {
    global: { scrape_interval: '1s', evaluation_interval: '1s' },
    rule_files: [join(dir, 'alerts.yml')],
    scrape_configs: [{ job_name: 'registrar', static_configs: [{ targets: [`127.0.0.1:${metricsPort}`] }] }],
  };
  writeFileSync(join(dir, 'prometheus.yml'), JSON.stringify(config, null, 2));
  const port = await freePort();
  api = `http://127.0.0.1:${port}`;
  prometheus = startProcess(
    'prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { dir, name: 'prometheus' },
  );
  await until(
    'Prometheus ready',
    async () => {
      if (prometheus.child.exitCode !== null)
        throw new GiveUp(`prometheus exited; see ${prometheus.logFile}`);
      return (await fetch(`${api}/-/ready`)).ok;
    },
    60_000,
  );
  // The tests run in any order: the dashboard's reads the bridge's /metrics straight away.
  await until(
    'the bridge serving its metrics',
    async () => (await fetch(`http://127.0.0.1:${metricsPort}/healthz`).catch(() => undefined))?.ok === true,
    30_000,
  );
}, 120_000);

afterAll(async () => {
  await bridge?.kill();
  await removeLabelled(runLabel);
  await prometheus?.kill('SIGTERM');
  await etcd?.close();
  if (dir) removeDir(dir);
});

describe('a real Prometheus scraping a real bridge', () => {
  it('fires "registry unreachable" when etcd stops and resolves it when etcd returns', async () => {
    const unreachable = () => alerts('RegistrarRegistryUnreachable');
    // A registered service: its lease is what the bridge keeps alive, and what notices etcd is gone.
    await runContainer({
      name: uniqueName('prom'),
      publish: ['80/tcp'],
      env: { SERVICE_NAME: uniqueName('prom') },
      labels: { [labelKey]: labelValue },
    });
    await until(
      'the service registered',
      () => bridge.logs.some((l) => l.level === 30 && l.msg.startsWith('registered ')),
      30_000,
    );
    await until(
      'the bridge scraped with its registry up',
      async () => {
        const result = (await query('/api/v1/query?query=registrar_registry_up')).data as {
          result: { value: [number, string] }[];
        };
        return result.result.length === 1 && result.result[0]?.value[1] === '1';
      },
      60_000,
    );
    const rules = (await query('/api/v1/rules')).data as {
      groups: { rules: { name: string; health: string; lastError?: string }[] }[];
    };
    const evaluated = rules.groups.flatMap((g) => g.rules);
    expect(evaluated.map((r) => r.name)).toContain('RegistrarRegistryUnreachable');
    for (const rule of evaluated) expect(rule, rule.lastError).toMatchObject({ health: 'ok' });
    expect(await unreachable()).toEqual([]);

    const stoppedAt = Date.now();
    await etcd.stop();
    let firing: Alert | undefined;
    await until(
      'the alert firing',
      async () => {
        firing = (await unreachable()).find((a) => a.state === 'firing');
        return firing !== undefined;
      },
      60_000,
    );
    const firedAfter = (Date.now() - stoppedAt) / 1000;
    expect(firing?.labels).toMatchObject({
      severity: 'critical',
      backend: 'etcd',
      target: expect.stringContaining(`127.0.0.1:${etcd.port}`),
    });

    await etcd.start();
    const backAt = Date.now();
    await until('the alert resolved', async () => (await unreachable()).length === 0, 60_000);
    const resolvedAfter = (Date.now() - backAt) / 1000;
    // The figures the issue asks for (the rules' `for:` is 2 s here, 1 m in deploy/prometheus/alerts.yml).
    console.log(
      `[prometheus] etcd stopped ${new Date(stoppedAt).toISOString()}; RegistrarRegistryUnreachable active since ${firing?.activeAt}, firing ${firedAfter.toFixed(1)} s after the stop; etcd back ${new Date(backAt).toISOString()}; resolved ${resolvedAfter.toFixed(1)} s after`,
    );
    expect(firedAfter).toBeLessThan(60);
  }, 180_000);

  it('every query of the Grafana dashboard parses on this Prometheus and names metrics the bridge serves', async () => {
    const dashboard = JSON.parse(readFileSync(join(DIR, 'grafana-dashboard.json'), 'utf8')) as {
      panels: { title: string; targets: { expr: string }[] }[];
      templating: { list: { name: string; definition?: string }[] };
    };
    const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => ({ panel: p.title, expr: t.expr })));
    expect(exprs.length).toBeGreaterThanOrEqual(10);
    const served = new Set(
      (await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text())
        .split('\n')
        .filter((l) => l.startsWith('# TYPE '))
        .flatMap((l) => {
          const [, , name = '', type] = l.split(' ');
          return type === 'histogram' ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name];
        }),
    );
    for (const { panel, expr } of exprs) {
      // Grafana's variables, as Grafana would fill them in.
      const promql = expr.replaceAll('$__rate_interval', '1m').replaceAll('$instance', '.*');
      const answer = await query(`/api/v1/query?query=${encodeURIComponent(promql)}`);
      expect(answer, `${panel}: ${promql}`).toMatchObject({ status: 'success' });
      for (const name of promql.match(/\bregistrar_[a-z_]+/g) ?? []) {
        expect(served, `${panel}: ${name} is not a metric the bridge serves`).toContain(name);
      }
    }
    const instance = dashboard.templating.list.find((v) => v.name === 'instance');
    const metric = /^label_values\((\w+), instance\)$/.exec(instance?.definition ?? '')?.[1];
    expect(served).toContain(metric);
  }, 60_000);
});
