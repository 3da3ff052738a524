import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConfigError, type DeriveOptions } from '@registrar/core';
import { containerStateOf, deriveServices, explainContainer } from '@registrar/core/internal';
import type { ContainerInspectInfo } from 'dockerode';
import { parseExplainCli, renderReport } from './explain.js';
import { buildProgram } from './options.js';

afterEach(() => {
  vi.unstubAllEnvs();
});

const parse = (argv: string[]) => parseExplainCli(argv, () => undefined);

function refusal(argv: string[]): string {
  try {
    parse(argv);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error(`accepted ${JSON.stringify(argv)}`);
}

describe('registrar explain options', () => {
  it('asks 127.0.0.1:9105 by default, REGISTRAR_METRICS_ADDR otherwise, a wildcard on loopback', () => {
    expect(parse(['web']).metricsAddr).toEqual({ host: '127.0.0.1', port: 9105 });
    vi.stubEnv('REGISTRAR_METRICS_ADDR', '0.0.0.0:9200');
    expect(parse(['web']).metricsAddr).toEqual({ host: '127.0.0.1', port: 9200 });
    expect(parse(['--metrics-addr', ':9300', 'web']).metricsAddr).toEqual({ host: '127.0.0.1', port: 9300 });
    expect(parse(['--metrics-addr', '[::]:9300', 'web']).metricsAddr).toEqual({ host: '::1', port: 9300 });
    expect(parse(['--metrics-addr', '10.0.0.5:9105', 'web']).metricsAddr).toEqual({
      host: '10.0.0.5',
      port: 9105,
    });
  });

  it("takes the bridge's derive options, validated the same way, from argv or REGISTRAR_*", () => {
    expect(
      parse([
        ...['--ip', '192.0.2.1', '--internal', '--explicit', '--labels-only'],
        ...['--tags', 'a, b', '--node-id', 'n1', 'web'],
      ]),
    ).toEqual({
      container: 'web',
      metricsAddr: { host: '127.0.0.1', port: 9105 },
      json: false,
      ip: '192.0.2.1',
      internal: true,
      explicit: true,
      labelsOnly: true,
      tags: ['a', 'b'],
      nodeId: 'n1',
    });
    vi.stubEnv('REGISTRAR_EXPLICIT', 'false');
    vi.stubEnv('REGISTRAR_IP', '192.0.2.9');
    expect(parse(['--json', 'web'])).toMatchObject({
      json: true,
      explicit: false,
      labelsOnly: false,
      ip: '192.0.2.9',
    });
    expect(refusal(['--ip', '0.0.0.0', 'web'])).toMatch(/^invalid --ip "0\.0\.0\.0": an unspecified address/);
    expect(refusal(['--node-id', 'a b', 'web'])).toMatch(/^invalid --node-id/);
    expect(refusal(['--metrics-addr', 'nope', 'web'])).toMatch(/^invalid --metrics-addr "nope"/);
  });

  it('wants exactly one container', () => {
    expect(refusal([])).toMatch(/missing required argument 'container' \(see registrar explain --help\)/);
    expect(refusal(['a', 'b'])).toMatch(/too many arguments/);
    expect(refusal([' '])).toMatch(/give a container name or id/);
  });

  it('is listed in registrar --help', () => {
    let help = '';
    const program = buildProgram().configureOutput({ writeOut: (t) => (help += t) });
    program.outputHelp();
    expect(help).toMatch(
      /^ {2}registrar explain \[options\] <container> +why each port of a container is \(not\) registered/m,
    );
  });
});

describe('renderReport', () => {
  const options: DeriveOptions = { nodeId: 'vm', internal: false, tags: [], explicit: false };
  const info = {
    Id: 'f'.repeat(64),
    Name: '/web-1',
    State: { Status: 'running', Running: true },
    Config: {
      Image: 'web',
      Labels: { SERVICE_443_IGNORE: 'true' },
      ExposedPorts: { '80/tcp': {}, '443/tcp': {} },
    },
    HostConfig: { NetworkMode: 'default' },
    NetworkSettings: {
      Ports: {
        '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '32768' }],
        '443/tcp': [{ HostIp: '127.0.0.1', HostPort: '32769' }],
      },
      Networks: {},
    },
  } as unknown as ContainerInspectInfo;

  it('one line per port and registry, aligned, then the options', () => {
    const report = explainContainer({
      source: 'bridge',
      container: { id: info.Id, name: 'web-1' },
      state: containerStateOf(info),
      derivation: deriveServices(info, options),
      options,
      registries: [
        {
          backend: 'etcd',
          target: 'etcd://127.0.0.1:2379/services',
          mirrorsHealth: false,
          stateOf: (_id, wanted) => ({ state: 'registered', ...(wanted && { record: wanted }) }),
        },
      ],
    });
    expect(renderReport(report, 'bridge at 127.0.0.1:9105')).toBe(
      [
        'web-1 (ffffffffffff): running: partly registered: 1 service in 1 registry, 1 of 2 ports skipped: ignored',
        '  80/tcp   etcd://127.0.0.1:2379/services  registered  web at 127.0.0.1:32768 (id vm:web-1:80)',
        '  443/tcp  -                               skipped     ignored: SERVICE_443_IGNORE is set',
        '  options (bridge at 127.0.0.1:9105): --node-id vm no --ip',
        '',
      ].join('\n'),
    );
  });

  it('IPv6 endpoints are bracketed, and a dual-stack service shows both', () => {
    const dual = {
      ...info,
      Config: { ...info.Config, Labels: {}, ExposedPorts: { '80/tcp': {} } },
      NetworkSettings: {
        Ports: {},
        Networks: { enginenet: { IPAddress: '10.233.0.2', GlobalIPv6Address: 'fd00:233::2' } },
      },
      HostConfig: { NetworkMode: 'enginenet' },
    } as unknown as ContainerInspectInfo;
    const internal = { ...options, internal: true };
    const report = explainContainer({
      source: 'docker',
      container: { id: dual.Id, name: 'web-1' },
      state: containerStateOf(dual),
      derivation: deriveServices(dual, internal),
      options: internal,
      registries: [],
    });
    expect(renderReport(report, 'docker')).toContain(
      'web at 10.233.0.2:80 and [fd00:233::2]:80 (id vm:web-1:80)',
    );
    const published = { ...options, hostIp: '::1' };
    const v6 = explainContainer({
      source: 'docker',
      container: { id: info.Id, name: 'web-1' },
      state: containerStateOf(info),
      derivation: deriveServices(info, published),
      options: published,
      registries: [],
    });
    const text = renderReport(v6, 'docker');
    expect(text).toContain('web at [::1]:32768 (id vm:web-1:80)');
    expect(text).toContain('--ip ::1');
  });
});
