import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConfigError } from '@registrar/core';
import { buildLbProgram, parseLbCli } from './lb.js';

const URI = 'etcd://127.0.0.1:2379/services';

afterEach(() => {
  vi.unstubAllEnvs();
});

function refusal(argv: string[]): string {
  try {
    parseLbCli(argv);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error(`parseLbCli accepted ${JSON.stringify(argv)}`);
}

describe('registrar lb options', () => {
  it('reads the runtime API address, the services and their backends', () => {
    expect(
      parseLbCli([
        '--haproxy',
        '/run/haproxy/admin.sock',
        '--service',
        'web',
        '--service',
        'api=api_be,docs',
        URI,
      ]),
    ).toMatchObject({
      uri: URI,
      haproxy: { path: '/run/haproxy/admin.sock' },
      targets: [
        { service: 'web', backend: 'web' },
        { service: 'api', backend: 'api_be' },
        { service: 'docs', backend: 'docs' },
      ],
      checkInterval: 1,
    });
  });

  it('reads them from the environment too', () => {
    vi.stubEnv('REGISTRAR_LB_HAPROXY', '127.0.0.1:9999');
    vi.stubEnv('REGISTRAR_LB_SERVICES', 'web,api');
    vi.stubEnv('REGISTRAR_LB_CHECK_INTERVAL', '0.5');
    expect(parseLbCli([URI])).toMatchObject({
      haproxy: { host: '127.0.0.1', port: 9999 },
      targets: [
        { service: 'web', backend: 'web' },
        { service: 'api', backend: 'api' },
      ],
      checkInterval: 0.5,
    });
  });

  it.each([
    [['--service', 'web', URI], /--haproxy <address>' not specified/],
    [['--haproxy', '/s', URI], /--service <service\[=backend\]>' not specified/],
    [['--haproxy', 'nowhere', '--service', 'web', URI], /^invalid HAProxy runtime API address "nowhere"/],
    [
      ['--haproxy', '/s', '--service', 'web;reload', URI],
      /^invalid --service "web;reload": expected service or service=backend/,
    ],
    [['--haproxy', '/s', '--service', 'a=b=c', URI], /^invalid --service "a=b=c"/],
    [['--haproxy', '/s', '--service', 'web,web', URI], /backend web is already followed/],
    [['--haproxy', '/s', '--service', ',', URI], /name at least one service/],
    [['--haproxy', '/s', '--service', 'web', '--check-interval', '0', URI], /^invalid --check-interval "0"/],
    [['--haproxy', '/s', '--service', 'web', 'bogus://x'], /^unknown registry URI "bogus:\/\/x"/],
    [
      ['--haproxy', '/s', '--service', 'web', '--log-level', 'loud', URI],
      /^invalid --log-level "loud": expected one of/,
    ],
  ])('refuses %j in one line', (argv, message) => {
    const text = refusal(argv);
    expect(text).toMatch(message);
    expect(text).not.toContain('\n');
  });

  it('shows its defaults, variables and an HAProxy example in --help', () => {
    const help = buildLbProgram().helpInformation().replace(/\s+/g, ' ');
    expect(help).toContain('default: 1, env: REGISTRAR_LB_CHECK_INTERVAL');
    expect(help).toContain('env: REGISTRAR_LB_HAPROXY');
  });
});
