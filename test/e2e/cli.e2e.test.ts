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
      const waiting = await bridge.waitForLog('waiting for Docker', (l) =>
        l.msg.startsWith('waiting for Docker:'),
      );
      expect(waiting.msg).toContain(`no Docker socket at ${socket} (ENOENT)`);
      expect(waiting.docker).toBe(`unix://${socket}`);
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

describe('help per command', () => {
  const docker = { DOCKER_HOST: 'unix:///nonexistent.sock' };
  it.each([
    [['check', '--help'], 'Usage: registrar check [options] <registry-uri...>'],
    [['check', '-h'], 'Usage: registrar check [options] <registry-uri...>'],
    [['help', 'check'], 'Usage: registrar check [options] <registry-uri...>'],
    [['help', 'explain'], 'Usage: registrar explain [options] <container>'],
    [['explain', '-h'], 'Usage: registrar explain [options] <container>'],
    [['help', 'lb'], 'Usage: registrar lb [options] <registry-uri>'],
    [['lb', '--help'], 'Usage: registrar lb [options] <registry-uri>'],
    [['help', 'render'], 'Usage: registrar render [options] <registry-uri>'],
    [['help', 'version'], 'Usage: registrar version | registrar --version'],
    [['help'], 'Usage: registrar [options] <registry-uri...>'],
    [['-h'], 'Usage: registrar [options] <registry-uri...>'],
  ])('registrar %j prints that command’s help with examples and exits 0', async (args, usage) => {
    const { code, stdout, stderr } = await runCli(args, docker);
    expect(code).toBe(0);
    expect(stderr).toEqual([]);
    expect(stdout[0]).toBe(usage);
    if (args.includes('version')) return;
    expect(stdout).toContain('Examples:');
  });

  it('documents every exit code in one table, in the top-level help', async () => {
    const { stdout } = await runCli(['--help'], docker);
    const table = stdout.slice(stdout.indexOf('Exit codes:'), stdout.indexOf('Exit codes:') + 4);
    expect(table.map((l) => l.trim().slice(0, 1))).toEqual(['E', '0', '1', '2']);
    expect(table[3]).toContain('bad usage or configuration');
  });

  it('refuses an unknown command with exit 2, naming the commands', async () => {
    const { code, stderr } = await runCli(['help', 'chek'], docker);
    expect(code).toBe(2);
    expect(stderr).toEqual([
      'registrar: registrar help: unknown command "chek"; the commands are check, explain, lb, render, version, help (registrar --help shows the bridge\'s options)',
    ]);
  });
});

describe('registry URIs: the adapters’ own words, exit 2 for every bad one, no credential echoed', () => {
  const SECRET = 'hunter2';
  const docker = {
    DOCKER_HOST: 'unix:///nonexistent.sock',
    ETCD_USERNAME: '',
    ETCD_PASSWORD: '',
    CONSUL_HTTP_TOKEN: '',
  };
  it.each([
    [
      ['check', `etcd://127.0.0.1:2379/services?password=${SECRET}`],
      'registrar: invalid registry URI "etcd://127.0.0.1:2379/services?password=***": "password" looks like a credential, and credentials never go in the URI (its value is not shown); set ETCD_USERNAME and ETCD_PASSWORD (or ETCD_PASSWORD_FILE) in the environment instead',
    ],
    [
      ['check', `consul://127.0.0.1:8500?token=${SECRET}`],
      'registrar: invalid registry URI "consul://127.0.0.1:8500?token=***": "token" looks like a credential, and credentials never go in the URI (its value is not shown); set CONSUL_HTTP_TOKEN (or CONSUL_HTTP_TOKEN_FILE) in the environment instead',
    ],
    [
      [`zk://127.0.0.1:2181/services?layout=curator&auth=digest:u:${SECRET}`],
      'registrar: invalid registry URI "zk://127.0.0.1:2181/services?layout=curator&auth=***": "auth" looks like a credential, and credentials never go in the URI (its value is not shown); set ZOOKEEPER_AUTH=user:password (or ZOOKEEPER_AUTH_FILE) in the environment instead',
    ],
    [
      ['check', `etcd://root:${SECRET}@127.0.0.1:2379/services`],
      'registrar: invalid etcd URI "etcd://***@127.0.0.1:2379/services": credentials do not belong in the URI; set ETCD_USERNAME and ETCD_PASSWORD instead',
    ],
    [
      ['check', 'consul://127.0.0.1:8500/services'],
      'registrar: invalid Consul URI "consul://127.0.0.1:8500/services": a Consul URI takes no path; use consul://127.0.0.1:8500',
    ],
    [
      ['check', 'etcd://'],
      'registrar: invalid etcd URI "etcd://": no host given; expected etcd://host:port[,host:port...]/prefix',
    ],
    [
      ['check', 'zk://host:notaport'],
      'registrar: zookeeper server "host:notaport" has an invalid port; use a port between 1 and 65535, e.g. 2181',
    ],
  ])('registrar %j exits 2 with the one line', async (args, line) => {
    const { code, stderr, stdout } = await runCli(args, docker);
    expect(code).toBe(2);
    expect(stderr).toEqual([line]);
    expect(stdout).toEqual([]);
    expect(JSON.stringify({ stderr, stdout })).not.toContain(SECRET);
  });
});
