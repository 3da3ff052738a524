import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConfigError } from '@registrar/core';
import { buildRenderProgram, parseRenderCli } from './render.js';

const URI = 'etcd://127.0.0.1:2379/services';

afterEach(() => {
  vi.unstubAllEnvs();
});

function refusal(argv: string[]): string {
  try {
    parseRenderCli(argv);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error(`parseRenderCli accepted ${JSON.stringify(argv)}`);
}

describe('registrar render options', () => {
  it('pairs each --out, --check and --reload with the --template before it', () => {
    const config = parseRenderCli([
      '--template',
      'nginx.liquid',
      '--out',
      '/etc/nginx/conf.d/up.conf',
      '--check',
      'nginx -t',
      '--reload',
      'nginx -s reload',
      '--template',
      'sd.liquid',
      '--out',
      '/etc/prometheus/web.json',
      URI,
    ]);
    expect(config).toMatchObject({
      uri: URI,
      targets: [
        {
          template: 'nginx.liquid',
          out: '/etc/nginx/conf.d/up.conf',
          check: 'nginx -t',
          reload: 'nginx -s reload',
        },
        { template: 'sd.liquid', out: '/etc/prometheus/web.json' },
      ],
      wait: { minMs: 0, maxMs: 0 },
      commandTimeoutMs: 30_000,
    });
    expect(config.targets[1]).not.toHaveProperty('check');
  });

  it('with one template, its options may come in any order; --wait takes min or min:max', () => {
    vi.stubEnv('REGISTRAR_RENDER_WAIT', '2s');
    expect(parseRenderCli(['--reload', 'x', '--out', '/tmp/o', '--template', 't', URI])).toMatchObject({
      targets: [{ template: 't', out: '/tmp/o', reload: 'x' }],
      wait: { minMs: 2000, maxMs: 8000 },
    });
    expect(parseRenderCli(['--template', 't', '--out', '/o', '--wait', '500ms:3s', URI]).wait).toEqual({
      minMs: 500,
      maxMs: 3000,
    });
  });

  it.each([
    [['--out', '/o', URI], /--template <file>' not specified/],
    [['--template', 't', URI], /--out <file>' not specified/],
    [['--template', 'a', '--template', 'b', '--out', '/o', URI], /^--template "a" has no --out/],
    [
      ['--out', '/o', '--template', 'a', '--template', 'b', '--out', '/p', URI],
      /^invalid --out "\/o": give it after/,
    ],
    [['--template', 'a', '--out', '/o', '--out', '/p', URI], /has a --out already; one per template/],
    [
      ['--template', 'a', '--out', '/o', '--template', 'b', '--out', '/o', URI],
      /two templates render into it/,
    ],
    [
      ['--template', 'a', '--out', '/o', '--check', ' ', URI],
      /^invalid --check for "\/o": the command is empty/,
    ],
    [
      ['--template', 'a', '--out', '/o', '--wait', 'soon', URI],
      /^invalid --wait "soon": expected a duration/,
    ],
    [['--template', 'a', '--out', '/o', '--wait', '5s:1s', URI], /max is shorter than min/],
    [['--template', 'a', '--out', '/o', '--command-timeout', '0', URI], /^invalid --command-timeout "0"/],
    [['--template', 'a', '--out', '/o', 'bogus://x'], /^unknown registry URI "bogus:\/\/x"/],
  ])('refuses %j in one line', (argv, message) => {
    const text = refusal(argv);
    expect(text).toMatch(message);
    expect(text).not.toContain('\n');
  });

  it('shows its defaults, variables and the template rules in --help', () => {
    const help = buildRenderProgram().helpInformation().replace(/\s+/g, ' ');
    expect(help).toContain('default: "0", env: REGISTRAR_RENDER_WAIT');
    expect(help).toContain('default: "30s", env: REGISTRAR_RENDER_COMMAND_TIMEOUT');
  });
});
