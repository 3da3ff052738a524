// The binary's contract for bad usage: exit code 2 and exactly one line saying what and how to fix it.
import { describe, expect, it } from 'vitest';
import { CLI_VERSION, runCli, spawnBridge } from '../harness/bridge.js';

describe('registrar usage errors', () => {
  it.each([
    [['bogus://x'], 'unknown registry URI "bogus://x"'],
    // One parser now: the port is checked first, as the etcd adapter always did (the CLI said "host missing").
    [['etcd://:notaport'], 'port "notaport" is not a number'],
    [['etcd://127.0.0.1:notaport'], 'port "notaport" is not a number'],
    [['--ttl', '-5', 'etcd://127.0.0.1:2379'], 'invalid --ttl "-5"'],
    [['--ttl', '10', '--ttl-refresh', '10', 'etcd://127.0.0.1:2379'], 'must be less than --ttl'],
    [['--ip', 'not-an-ip', 'etcd://127.0.0.1:2379'], 'invalid --ip'],
    [['--deregister', 'sometimes', 'etcd://127.0.0.1:2379'], 'invalid --deregister'],
    [[], "missing required argument 'registry-uri'"],
    [['--no-such-flag', 'etcd://x'], "unknown option '--no-such-flag'"],
  ])('registrar %j exits 2 with one line', async (args, message) => {
    const { code, stderr, logs } = await runCli(args, { DOCKER_HOST: 'unix:///nonexistent.sock' });
    expect(code).toBe(2);
    expect(stderr).toHaveLength(1);
    expect(stderr[0]).toContain(message);
    expect(stderr[0]).toMatch(/^registrar: /);
    expect(logs).toEqual([]);
  });

  it('reads options from REGISTRAR_* environment variables', async () => {
    const { code, stderr } = await runCli(['etcd://127.0.0.1:2379'], { REGISTRAR_TTL: 'abc' });
    expect(code).toBe(2);
    expect(stderr[0]).toContain('invalid --ttl "abc"');
  });

  it('rejects a malformed DOCKER_HOST with exit 2', async () => {
    const { code, stderr } = await runCli(['etcd://127.0.0.1:2379'], { DOCKER_HOST: 'bogus' });
    expect(code).toBe(2);
    expect(stderr[0]).toContain('invalid DOCKER_HOST "bogus"');
  });

  it.each([['--version'], ['version']])(
    'registrar %s prints the package version and exits 0',
    async (arg) => {
      const { code, stdout, stderr } = await runCli([arg], { DOCKER_HOST: 'unix:///nonexistent.sock' });
      expect(code).toBe(0);
      expect(stdout).toEqual([CLI_VERSION]);
      expect(stderr).toEqual([]);
    },
  );

  it('rejects a malformed --docker-host with exit 2', async () => {
    const { code, stderr } = await runCli(['--docker-host', 'bogus', 'etcd://127.0.0.1:2379']);
    expect(code).toBe(2);
    expect(stderr).toEqual([
      'registrar: invalid --docker-host "bogus": expected unix:///var/run/docker.sock or tcp://host:port',
    ]);
  });

  it('--docker-host wins over DOCKER_HOST', async () => {
    const socket = `/nonexistent-${process.pid}.sock`;
    const bridge = spawnBridge(['--docker-host', `unix://${socket}`, 'etcd://127.0.0.1:2379'], {
      DOCKER_HOST: 'unix:///var/run/docker.sock',
    });
    try {
      const waiting = await bridge.waitForLog(
        'waiting for Docker',
        (l) => l.msg === 'docker not reachable; waiting for it',
      );
      expect(waiting.err).toMatchObject({ message: expect.stringContaining(socket) });
    } finally {
      await bridge.kill();
    }
  });

  it('prints help and exits 0', async () => {
    const { code, stdout } = await runCli(['--help']);
    expect(code).toBe(0);
    expect(stdout.join('\n')).toContain('--ttl-refresh');
  });
});
