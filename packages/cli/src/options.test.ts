import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConfigError } from '@registrar/core';
import { buildProgram, deriveOptionsOf, parseCli } from './options.js';

const URI = 'etcd://127.0.0.1:2379/services';

afterEach(() => {
  vi.unstubAllEnvs();
});

/** The one-line message `parseCli` refuses `argv` with. */
function refusal(argv: string[]): string {
  try {
    parseCli(argv);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error(`parseCli accepted ${JSON.stringify(argv)}`);
}

describe('--help', () => {
  const help = buildProgram().helpInformation();
  // Commander wraps descriptions at 80 columns; join the lines so a wrap cannot hide a phrase.
  const flat = help.replace(/\s+/g, ' ');

  it('shows numeric defaults as numbers and the choices of every enumerated option', () => {
    expect(flat).toContain('(default: 15, env: REGISTRAR_TTL)');
    expect(flat).toContain('(default: 300, env: REGISTRAR_RESYNC)');
    expect(flat).toContain('choices: "always", "on-success", default: "always"');
    expect(flat).toContain('choices: "json", "pretty"');
    expect(flat).toContain('"trace", "debug", "info", "warn", "error", "fatal", "silent", default: "info"');
  });

  it('names the environment variable of every option, boolean flags included', () => {
    const longs = buildProgram()
      .options.map((option) => option.long)
      .filter((long): long is string => long !== undefined && long !== '--version');
    expect(longs).toContain('--cleanup');
    for (const long of longs) {
      expect(flat).toContain(`env: REGISTRAR_${long.slice(2).replace(/-/g, '_').toUpperCase()})`);
    }
  });
});

describe('boolean flags from the environment', () => {
  it.each([
    ['true', true],
    ['1', true],
    ['yes', true],
    ['false', false],
    ['0', false],
    ['off', false],
    ['', false],
  ])('REGISTRAR_CLEANUP=%j gives cleanup %s', (value, expected) => {
    vi.stubEnv('REGISTRAR_CLEANUP', value);
    expect(parseCli([URI]).cleanup).toBe(expected);
  });

  it('lets the command line win over the environment', () => {
    vi.stubEnv('REGISTRAR_EXPLICIT', 'false');
    expect(parseCli(['--explicit', URI]).explicit).toBe(true);
  });

  it('--labels-only, or REGISTRAR_LABELS_ONLY, reaches the derive options', () => {
    expect(deriveOptionsOf(parseCli([URI]), 'n1').labelsOnly).toBeUndefined();
    expect(deriveOptionsOf(parseCli(['--labels-only', URI]), 'n1').labelsOnly).toBe(true);
    vi.stubEnv('REGISTRAR_LABELS_ONLY', 'true');
    expect(parseCli([URI]).labelsOnly).toBe(true);
  });

  it('reads REGISTRAR_NO_DRAIN as the value of --no-drain', () => {
    expect(parseCli([URI]).drain).toBe(true);
    vi.stubEnv('REGISTRAR_NO_DRAIN', 'true');
    expect(parseCli([URI]).drain).toBe(false);
    vi.stubEnv('REGISTRAR_NO_DRAIN', 'false');
    expect(parseCli([URI]).drain).toBe(true);
  });

  it('refuses a value that is not a boolean, naming the variable', () => {
    vi.stubEnv('REGISTRAR_DRY_RUN', 'maybe');
    expect(refusal([URI])).toBe('invalid REGISTRAR_DRY_RUN "maybe": expected true or false');
  });
});

describe('numbers and choices', () => {
  it('gives numeric defaults as numbers and parses given ones', () => {
    expect(parseCli([URI])).toMatchObject({ ttl: 15, resync: 300, stallCheck: 15 });
    expect(parseCli(['--ttl', '30', '--resync', '0', URI])).toMatchObject({ ttl: 30, resync: 0 });
    vi.stubEnv('REGISTRAR_TTL', '9');
    expect(parseCli([URI]).ttl).toBe(9);
  });

  it('refuses a value outside the choices in one line that lists them', () => {
    expect(refusal(['--deregister', 'sometimes', URI])).toBe(
      'invalid --deregister "sometimes": expected one of always, on-success',
    );
    expect(refusal(['--log-format', 'xml', URI])).toBe(
      'invalid --log-format "xml": expected one of json, pretty',
    );
  });

  it('names the variable when the bad choice came from the environment', () => {
    vi.stubEnv('REGISTRAR_LOG_LEVEL', 'loud');
    expect(refusal([URI])).toBe(
      'invalid REGISTRAR_LOG_LEVEL (--log-level) "loud": expected one of trace, debug, info, warn, error, fatal, silent',
    );
  });

  it('keeps a hostile value to one quoted line', () => {
    const message = refusal(['--deregister', "a'b\nc is invalid. Allowed choices are x.", URI]);
    expect(message).not.toContain('\n');
    expect(message).toMatch(/^invalid --deregister ".*": expected one of always, on-success$/);
  });
});

describe('--swarm and --swarm-mode', () => {
  it('default: not Swarm mode, tasks', () => {
    const config = parseCli([URI]);
    expect([config.swarm, config.swarmMode]).toEqual([false, 'tasks']);
  });

  it('from the command line and from REGISTRAR_SWARM / REGISTRAR_SWARM_MODE', () => {
    const cli = parseCli(['--swarm', '--swarm-mode', 'vip', URI]);
    expect([cli.swarm, cli.swarmMode]).toEqual([true, 'vip']);
    vi.stubEnv('REGISTRAR_SWARM', 'true');
    vi.stubEnv('REGISTRAR_SWARM_MODE', 'ingress');
    const env = parseCli([URI]);
    expect([env.swarm, env.swarmMode]).toEqual([true, 'ingress']);
  });

  it('refuses a mode it does not know, and a mode without --swarm, in one line', () => {
    expect(refusal(['--swarm', '--swarm-mode', 'dnsrr', URI])).toBe(
      'invalid --swarm-mode "dnsrr": expected one of tasks, vip, ingress',
    );
    expect(refusal(['--swarm-mode', 'vip', URI])).toBe(
      '--swarm-mode applies to Swarm mode only: add --swarm (or REGISTRAR_SWARM=true), or drop it',
    );
    vi.stubEnv('REGISTRAR_SWARM_MODE', 'vip');
    expect(refusal([URI])).toMatch(/^REGISTRAR_SWARM_MODE applies to Swarm mode only/);
  });
});

describe('--ip: one address per IP family', () => {
  it('takes one of each family, as repeated flags or a comma list, IPv4 first', () => {
    expect(parseCli(['--ip', 'fd00::5', '--ip', '10.0.0.5', URI])).toMatchObject({
      ip: '10.0.0.5',
      ip6: 'fd00::5',
    });
    expect(parseCli(['--ip', '10.0.0.5,fd00::5', URI])).toMatchObject({ ip: '10.0.0.5', ip6: 'fd00::5' });
    vi.stubEnv('REGISTRAR_IP', '10.0.0.5, fd00::5');
    expect(parseCli([URI])).toMatchObject({ ip: '10.0.0.5', ip6: 'fd00::5' });
  });

  it('one address is the --ip it always was, whatever its family', () => {
    const v6 = parseCli(['--ip', 'fd00::5', URI]);
    expect([v6.ip, v6.ip6]).toEqual(['fd00::5', undefined]);
    const v4 = parseCli(['--ip', '10.0.0.5', URI]);
    expect([v4.ip, v4.ip6]).toEqual(['10.0.0.5', undefined]);
  });

  it('refuses two of one family, and any address that is no address', () => {
    expect(refusal(['--ip', '10.0.0.5', '--ip', '10.0.0.6', URI])).toBe(
      'invalid --ip: "10.0.0.5" and "10.0.0.6" are of the same IP family; give at most one IPv4 and one IPv6 address',
    );
    expect(refusal(['--ip', '10.0.0.5,nope', URI])).toBe(
      'invalid --ip "nope": expected an IPv4 or IPv6 address',
    );
    expect(refusal(['--ip', '::', URI])).toMatch(
      /^invalid --ip "::": an unspecified address cannot be reached/,
    );
  });
});
