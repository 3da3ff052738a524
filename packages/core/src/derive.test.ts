import { readFileSync } from 'node:fs';
import type { ContainerInspectInfo } from 'dockerode';
import { describe, expect, it } from 'vitest';
import type { DeriveOptions, Skip } from './derive.js';
import { MAX_SKIPPED, containerName, containerStateOf, deriveServices, imageBaseName } from './derive.js';
import type { Service } from './service.js';

const NODE = 'node1';
const FULL_ID = 'f'.repeat(64);
const IMAGE_ID = 'sha256:276e45373c2e934ff55898989ff3dfbe9bdb812e91bc8a8f857b05f82acad785';

function opts(overrides: Partial<DeriveOptions> = {}): DeriveOptions {
  return { nodeId: NODE, internal: false, tags: [], explicit: false, ...overrides };
}

type Bindings = { HostIp: string; HostPort: string }[] | null;

interface Spec {
  name?: string;
  image?: string;
  labels?: Record<string, string> | null;
  env?: string[] | null;
  ports?: Record<string, Bindings>;
  exposed?: string[];
  networks?: Record<string, { IPAddress?: string; GlobalIPv6Address?: string }>;
  networkMode?: string;
  state?: Record<string, unknown>;
}

/** A minimal inspect shaped like the engine's (see fixtures/ for real ones). */
function inspect(spec: Spec = {}): ContainerInspectInfo {
  const networks = spec.networks ?? { bridge: { IPAddress: '172.17.0.2' } };
  return {
    Id: FULL_ID,
    Name: `/${spec.name ?? 'app1'}`,
    Image: IMAGE_ID,
    State: { Status: 'running', Running: true, Paused: false, Restarting: false, ...spec.state },
    Config: {
      Image: spec.image ?? 'registry.example.com:5000/team/app:1.2',
      Labels: spec.labels === undefined ? {} : spec.labels,
      Env: spec.env === undefined ? [] : spec.env,
      ExposedPorts: Object.fromEntries((spec.exposed ?? Object.keys(spec.ports ?? {})).map((p) => [p, {}])),
    },
    HostConfig: { NetworkMode: spec.networkMode ?? 'default' },
    NetworkSettings: {
      Ports: spec.ports ?? {},
      Networks: Object.fromEntries(
        Object.entries(networks).map(([n, v]) => [n, { IPAddress: '', GlobalIPv6Address: '', ...v }]),
      ),
    },
  } as unknown as ContainerInspectInfo;
}

const local = (port: string, ip = '127.0.0.1'): Bindings => [{ HostIp: ip, HostPort: port }];

function only(services: readonly Service[]): Service {
  expect(services).toHaveLength(1);
  return services[0];
}

function fixture(name: string): ContainerInspectInfo {
  return JSON.parse(
    readFileSync(new URL(`./fixtures/${name}.json`, import.meta.url), 'utf8'),
  ) as ContainerInspectInfo;
}

/** The first host port Docker bound for `key` on `hostIp`, read from the raw fixture. */
function hostPort(c: ContainerInspectInfo, key: string, hostIp = '127.0.0.1'): number {
  const binding = c.NetworkSettings.Ports[key].find((b) => b.HostIp === hostIp)!;
  return Number(binding.HostPort);
}

describe('imageBaseName', () => {
  it.each([
    ['nginx', 'nginx'],
    ['nginx:1.25', 'nginx'],
    ['library/nginx', 'nginx'],
    ['docker.io/library/nginx:latest', 'nginx'],
    ['registry.example.com:5000/team/app:1.2', 'app'],
    ['registry.example.com:5000/team/app', 'app'],
    ['localhost:5000/app', 'app'],
    [`app@sha256:${'a'.repeat(64)}`, 'app'],
    [`app:tag@sha256:${'a'.repeat(64)}`, 'app'],
    [`registry:5000/x/app:tag@sha256:${'a'.repeat(64)}`, 'app'],
    ['Team/MyApp:V1', 'myapp'],
    ['my_app.v2-x', 'my_app.v2-x'],
    [`sha256:${'a'.repeat(64)}`, undefined],
    [IMAGE_ID, undefined],
    ['276e45373c2e', undefined], // `docker run <short id>`
    ['276E45373C2E', undefined],
    ['', undefined],
    ['   ', undefined],
    ['registry:5000/', undefined],
    ['/', undefined],
    ['@sha256:abc', undefined],
  ])('%j → %j', (image, expected) => {
    expect(imageBaseName(image, IMAGE_ID)).toBe(expected);
  });

  it('keeps a hex-looking repository name that is not the image id', () => {
    expect(imageBaseName('deadbeefcafe', IMAGE_ID)).toBe('deadbeefcafe');
  });
});

describe('containerName', () => {
  it.each([
    [{ Name: '/web-1', Id: FULL_ID }, 'web-1'],
    [{ Name: 'web-1', Id: FULL_ID }, 'web-1'],
    [{ Name: '', Id: FULL_ID }, 'ffffffffffff'],
    [{ Id: FULL_ID }, 'ffffffffffff'],
    [{}, 'unknown'],
    [null, 'unknown'],
  ])('%j → %s', (c, expected) => {
    expect(containerName(c as unknown as ContainerInspectInfo)).toBe(expected);
  });
});

describe('deriveServices: naming', () => {
  const port80 = { '80/tcp': local('8080') };
  it.each([
    ['image base name', {}, 'app'],
    ['compose service label', { 'com.docker.compose.service': 'frontend' }, 'frontend'],
    ['SERVICE_NAME beats compose', { 'com.docker.compose.service': 'frontend', SERVICE_NAME: 'web' }, 'web'],
    ['port name beats SERVICE_NAME', { SERVICE_NAME: 'web', SERVICE_80_NAME: 'http' }, 'http'],
    ['tcp-specific port name', { SERVICE_80_NAME: 'http', SERVICE_80_TCP_NAME: 'http-tcp' }, 'http-tcp'],
    ['udp-specific name does not apply to tcp', { SERVICE_80_UDP_NAME: 'nope' }, 'app'],
    ['empty SERVICE_NAME falls back', { SERVICE_NAME: '' }, 'app'],
    ['unusable compose label falls back to the image', { 'com.docker.compose.service': '-bad' }, 'app'],
  ])('%s', (_title, labels, expected) => {
    const svc = only(deriveServices(inspect({ labels, ports: port80 }), opts()).services);
    expect(svc.name).toBe(expected);
  });

  it('falls back to the container name for an image id', () => {
    const d = deriveServices(inspect({ name: 'web-7', image: IMAGE_ID, ports: port80 }), opts());
    expect(only(d.services).name).toBe('web-7');
  });

  it('suffixes -<port> when several ports are registrable and unnamed', () => {
    const d = deriveServices(
      inspect({
        labels: { SERVICE_NAME: 'shop', SERVICE_443_NAME: 'shop-tls' },
        ports: { '80/tcp': local('8080'), '443/tcp': local('8443'), '9000/tcp': local('9000') },
      }),
      opts(),
    );
    expect(d.services.map((s) => [s.containerPort, s.name])).toEqual([
      [80, 'shop-80'],
      [443, 'shop-tls'],
      [9000, 'shop-9000'],
    ]);
  });

  it('suffixes -<port>-udp only when the same number is registrable on tcp', () => {
    const d = deriveServices(
      inspect({
        labels: { SERVICE_NAME: 'dns' },
        ports: { '53/tcp': local('5353'), '53/udp': local('5353'), '123/udp': local('1123') },
      }),
      opts(),
    );
    expect(d.services.map((s) => s.name)).toEqual(['dns-53', 'dns-53-udp', 'dns-123']);
  });

  it('counts only registrable ports for the suffix (an ignored port does not count)', () => {
    const d = deriveServices(
      inspect({
        labels: { SERVICE_NAME: 'web', SERVICE_443_IGNORE: 'true' },
        ports: { '80/tcp': local('8080'), '443/tcp': local('8443') },
      }),
      opts(),
    );
    expect(only(d.services).name).toBe('web');
  });
});

describe('deriveServices: published ports', () => {
  it('advertises the binding host IP and host port, keyed by the container port', () => {
    const svc = only(deriveServices(inspect({ ports: { '80/tcp': local('32768') } }), opts()).services);
    expect(svc).toMatchObject({
      id: `${NODE}:app1:80`,
      address: '127.0.0.1',
      port: 32768,
      containerPort: 80,
      protocol: 'tcp',
      node: NODE,
      container: { id: FULL_ID, name: 'app1' },
      health: 'passing',
      healthOutput: '',
      tags: [],
      meta: {},
      checks: {},
    });
  });

  it('--ip overrides the binding host IP', () => {
    const svc = only(
      deriveServices(inspect({ ports: { '80/tcp': local('32768') } }), opts({ hostIp: '10.1.2.3' })).services,
    );
    expect([svc.address, svc.port]).toEqual(['10.1.2.3', 32768]);
  });

  it.each(['0.0.0.0', '::', ''])('skips a wildcard binding (%j) without --ip, with one warning', (ip) => {
    const d = deriveServices(
      inspect({
        ports: { '80/tcp': local('8080', ip), '81/tcp': local('8081', ip), '82/tcp': local('8082') },
      }),
      opts(),
    );
    expect(only(d.services).containerPort).toBe(82);
    expect(d.warnings).toEqual([
      { container: 'app1', key: '--ip', message: expect.stringMatching(/--ip/) as string },
    ]);
  });

  it('makes one service of the IPv4+IPv6 wildcard pair on the same host port', () => {
    const ports = {
      '80/tcp': [
        { HostIp: '0.0.0.0', HostPort: '8080' },
        { HostIp: '::', HostPort: '8080' },
      ],
    };
    const svc = only(deriveServices(inspect({ ports }), opts({ hostIp: '192.0.2.1' })).services);
    expect([svc.id, svc.address, svc.port]).toEqual([`${NODE}:app1:80`, '192.0.2.1', 8080]);
  });

  it('picks the wildcard binding of --ip’s address family when the pair got different host ports', () => {
    const ports = {
      '80/tcp': [
        { HostIp: '0.0.0.0', HostPort: '32769' },
        { HostIp: '::', HostPort: '32768' },
      ],
    };
    expect(only(deriveServices(inspect({ ports }), opts({ hostIp: '192.0.2.1' })).services).port).toBe(32769);
    expect(only(deriveServices(inspect({ ports }), opts({ hostIp: '2001:db8::1' })).services).port).toBe(
      32768,
    );
  });

  it('makes one service per distinct (address, port) and keeps ids unique', () => {
    const ports = {
      '80/tcp': [
        { HostIp: '127.0.0.1', HostPort: '8080' },
        { HostIp: '127.0.0.2', HostPort: '8081' },
        { HostIp: '127.0.0.3', HostPort: '8081' },
        { HostIp: '127.0.0.2', HostPort: '8081' }, // exact duplicate
      ],
    };
    const d = deriveServices(inspect({ ports }), opts());
    expect(d.services.map((s) => `${s.address}:${s.port}`)).toEqual([
      '127.0.0.1:8080',
      '127.0.0.2:8081',
      '127.0.0.3:8081',
    ]);
    const ids = d.services.map((s) => s.id);
    expect(new Set(ids).size).toBe(3);
    expect(ids[0]).toBe(`${NODE}:app1:80`);
    expect(ids[1]).toBe(`${NODE}:app1:80:8081`);
    for (const id of ids) expect(id.startsWith(`${NODE}:app1:80`)).toBe(true);
    // All endpoints of one container port share the name.
    expect(new Set(d.services.map((s) => s.name))).toEqual(new Set(['app']));
  });

  it('does not depend on the order of the engine’s binding array', () => {
    const a = [...local('9001', '127.0.0.2')!, ...local('9000', '127.0.0.1')!];
    const d1 = deriveServices(inspect({ ports: { '80/tcp': a } }), opts());
    const d2 = deriveServices(inspect({ ports: { '80/tcp': [...a].reverse() } }), opts());
    expect(d1.services).toEqual(d2.services);
    expect(d1.services.map((s) => [s.id, s.port])).toEqual([
      [`${NODE}:app1:80`, 9000],
      [`${NODE}:app1:80:9001`, 9001],
    ]);
  });

  it('collapses bindings that --ip makes identical', () => {
    const ports = { '80/tcp': [...local('8080', '127.0.0.1')!, ...local('8080', '::1')!] };
    expect(deriveServices(inspect({ ports }), opts({ hostIp: '10.0.0.1' })).services).toHaveLength(1);
  });

  it('ignores exposed-but-unpublished ports, bad host ports and non-tcp/udp protocols', () => {
    const d = deriveServices(
      inspect({
        ports: {
          '80/tcp': null,
          '81/tcp': [],
          '82/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }],
          '83/tcp': [{ HostIp: '127.0.0.1', HostPort: '70000' }],
          '84/sctp': local('8084'),
          junk: local('8085'),
          '85/tcp': local('8086'),
        },
      }),
      opts(),
    );
    expect(only(d.services).containerPort).toBe(85);
    expect(d.warnings).toEqual([]);
  });

  it('gives UDP services a :udp id suffix and a udp tag', () => {
    const d = deriveServices(
      inspect({ labels: { SERVICE_TAGS: 'x' }, ports: { '53/udp': local('5353') } }),
      opts({ tags: ['global'] }),
    );
    const svc = only(d.services);
    expect(svc).toMatchObject({
      id: `${NODE}:app1:53:udp`,
      protocol: 'udp',
      port: 5353,
      tags: ['global', 'x', 'udp'],
    });
  });

  it('orders tags: --tags first, then container tags, deduplicated', () => {
    const d = deriveServices(
      inspect({ labels: { SERVICE_TAGS: 'b,a,c' }, ports: { '80/tcp': local('8080') } }),
      opts({ tags: ['a', 'z', 'a'] }),
    );
    expect(only(d.services).tags).toEqual(['a', 'z', 'b', 'c']);
  });

  it('carries metadata and checks, resolved per port', () => {
    const d = deriveServices(
      inspect({
        labels: {
          SERVICE_REGION: 'eu',
          SERVICE_443_REGION: 'us',
          SERVICE_CHECK_HTTP: '/health',
          SERVICE_443_CHECK_TCP: 'true',
        },
        env: ['SERVICE_CHECK_INTERVAL=5s', 'SERVICE_REGION=ignored-by-label'],
        ports: { '80/tcp': local('8080'), '443/tcp': local('8443') },
      }),
      opts(),
    );
    const [http, https] = d.services;
    expect(http.meta).toEqual({ region: 'eu' });
    expect(http.checks).toEqual({ http: '/health', interval: '5s' });
    expect(https.meta).toEqual({ region: 'us' });
    expect(https.checks).toEqual({ http: '/health', interval: '5s', tcp: 'true' });
  });
});

describe('deriveServices: ids', () => {
  const two = { '80/tcp': local('8080'), '53/udp': local('5353') };
  it.each([
    ['container name', {}, [`${NODE}:app1:53:udp`, `${NODE}:app1:80`]],
    [
      'SERVICE_ID replaces the container-name segment',
      { SERVICE_ID: 'shop' },
      [`${NODE}:shop:53:udp`, `${NODE}:shop:80`],
    ],
    [
      'SERVICE_<port>_ID beats SERVICE_ID for its port',
      { SERVICE_ID: 'shop', SERVICE_80_ID: 'front' },
      [`${NODE}:front:80`, `${NODE}:shop:53:udp`],
    ],
    [
      'an unusable SERVICE_ID keeps the container name',
      { SERVICE_ID: 'a:b' },
      [`${NODE}:app1:53:udp`, `${NODE}:app1:80`],
    ],
  ])('%s', (_title, labels, expected) => {
    const d = deriveServices(inspect({ labels, ports: two }), opts());
    expect(d.services.map((s) => s.id).sort()).toEqual(expected);
    for (const s of d.services) expect(s.node).toBe(NODE);
  });

  it('SERVICE_ID on a single-port container still yields <node>:<id>:<port>', () => {
    const svc = only(
      deriveServices(inspect({ labels: { SERVICE_ID: 'x' }, ports: { '80/tcp': local('1') } }), opts())
        .services,
    );
    expect(svc.id).toBe(`${NODE}:x:80`);
  });
});

describe('deriveServices: ignore and --explicit', () => {
  const ports = { '80/tcp': local('8080'), '443/tcp': local('8443') };
  it.each([
    ['no labels', {}, false, [80, 443]],
    ['SERVICE_IGNORE', { SERVICE_IGNORE: 'true' }, false, []],
    ['SERVICE_IGNORE=false', { SERVICE_IGNORE: 'false' }, false, [80, 443]],
    ['SERVICE_<port>_IGNORE', { SERVICE_443_IGNORE: '1' }, false, [80]],
    ['SERVICE_<port>_TCP_IGNORE', { SERVICE_443_TCP_IGNORE: '1' }, false, [80]],
    [
      'port ignore=false re-enables one port',
      { SERVICE_IGNORE: 'yes', SERVICE_80_IGNORE: 'no' },
      false,
      [80],
    ],
    ['explicit without a name', {}, true, []],
    ['explicit: the compose label does not count', { 'com.docker.compose.service': 'web' }, true, []],
    ['explicit: an empty name does not count', { SERVICE_NAME: '' }, true, []],
    ['explicit with SERVICE_NAME', { SERVICE_NAME: 'web' }, true, [80, 443]],
    ['explicit with a port name registers that port', { SERVICE_443_NAME: 'tls' }, true, [443]],
    ['explicit with a protocol-specific name', { SERVICE_80_TCP_NAME: 'web' }, true, [80]],
  ])('%s', (_title, labels, explicit, expected) => {
    const d = deriveServices(inspect({ labels, ports }), opts({ explicit }));
    expect(d.services.map((s) => s.containerPort)).toEqual(expected);
  });
});

describe('deriveServices: --internal and network choice', () => {
  it('advertises the container IP and every exposed port', () => {
    const d = deriveServices(
      inspect({ ports: { '80/tcp': local('8080') }, exposed: ['80/tcp', '9000/tcp', '53/udp'] }),
      opts({ internal: true, hostIp: '10.9.9.9' }),
    );
    expect(d.services.map((s) => [s.address, s.port, s.containerPort, s.protocol])).toEqual([
      ['172.17.0.2', 53, 53, 'udp'],
      ['172.17.0.2', 80, 80, 'tcp'],
      ['172.17.0.2', 9000, 9000, 'tcp'],
    ]);
  });

  const networks = {
    bridge: { IPAddress: '172.17.0.2' },
    zeta: { IPAddress: '10.0.3.2' },
    alpha: { IPAddress: '10.0.1.2' },
    noip: {},
  };
  it.each([
    ['SERVICE_NETWORK wins', { SERVICE_NETWORK: 'zeta' }, 'alpha', 'bridge', '10.0.3.2', 0],
    ['--network next', {}, 'zeta', 'alpha', '10.0.3.2', 0],
    ['then the NetworkMode network', {}, undefined, 'zeta', '10.0.3.2', 0],
    ['NetworkMode "default" means bridge', {}, undefined, 'default', '172.17.0.2', 0],
    ['then user-defined networks by name, before bridge', {}, undefined, 'detached', '10.0.1.2', 0],
    ['--network not attached falls through silently', {}, 'gone', 'zeta', '10.0.3.2', 0],
    [
      'SERVICE_NETWORK not attached: warning and default choice',
      { SERVICE_NETWORK: 'gone' },
      undefined,
      'zeta',
      '10.0.3.2',
      1,
    ],
    [
      'SERVICE_NETWORK without an address counts as absent',
      { SERVICE_NETWORK: 'noip' },
      undefined,
      'zeta',
      '10.0.3.2',
      1,
    ],
  ])('%s', (_title, labels, network, networkMode, address, warnings) => {
    const d = deriveServices(
      inspect({ labels, networks, networkMode, exposed: ['80/tcp'] }),
      opts({ internal: true, ...(network !== undefined ? { network } : {}) }),
    );
    expect(only(d.services).address).toBe(address);
    expect(d.warnings.filter((w) => w.key === 'SERVICE_NETWORK')).toHaveLength(warnings);
  });

  it('does not depend on the order of the Networks map', () => {
    const reversed = Object.fromEntries(Object.entries(networks).reverse());
    const a = deriveServices(
      inspect({ networks, networkMode: 'x', exposed: ['80/tcp'] }),
      opts({ internal: true }),
    );
    const b = deriveServices(
      inspect({ networks: reversed, networkMode: 'x', exposed: ['80/tcp'] }),
      opts({ internal: true }),
    );
    expect(only(a.services).address).toBe(only(b.services).address);
  });

  it('uses the global IPv6 address on an IPv6-only network', () => {
    const d = deriveServices(
      inspect({
        networks: { v6: { GlobalIPv6Address: 'fd00:db8:1::2' } },
        networkMode: 'v6',
        exposed: ['80/tcp'],
      }),
      opts({ internal: true }),
    );
    expect(only(d.services).address).toBe('fd00:db8:1::2');
  });

  it('prefers IPv4 on a dual-stack network', () => {
    const d = deriveServices(
      inspect({
        networks: { v6: { IPAddress: '172.21.0.2', GlobalIPv6Address: 'fd00::2' } },
        networkMode: 'v6',
        exposed: ['80/tcp'],
      }),
      opts({ internal: true }),
    );
    expect(only(d.services).address).toBe('172.21.0.2');
  });

  it('warns and skips when no network has an address', () => {
    const d = deriveServices(
      inspect({ networks: { none: {} }, networkMode: 'none', exposed: ['80/tcp'] }),
      opts({ internal: true }),
    );
    expect(d.services).toEqual([]);
    expect(d.warnings.map((w) => w.key)).toEqual(['--internal']);
  });
});

describe('deriveServices: host network', () => {
  const host = { networkMode: 'host', networks: { host: {} }, exposed: ['8080/tcp', '514/udp'] };
  it.each([false, true])('advertises exposed ports at --ip (internal=%s)', (internal) => {
    const d = deriveServices(inspect(host), opts({ hostIp: '192.0.2.7', internal }));
    expect(d.services.map((s) => [s.address, s.port, s.protocol])).toEqual([
      ['192.0.2.7', 514, 'udp'],
      ['192.0.2.7', 8080, 'tcp'],
    ]);
    expect(d.warnings).toEqual([]);
  });

  it('warns once and skips without --ip', () => {
    const d = deriveServices(inspect(host), opts());
    expect(d.services).toEqual([]);
    expect(d.warnings).toHaveLength(1);
    expect(d.warnings[0].key).toBe('--ip');
  });
});

describe('deriveServices: container state and health', () => {
  const ports = { '80/tcp': local('8080'), '443/tcp': local('8443') };
  const probe = (output: string) => ({ Start: '', End: '', ExitCode: 1, Output: output });
  it.each([
    ['running, no healthcheck', {}, 'passing', ''],
    ['healthy', { Health: { Status: 'healthy', FailingStreak: 0, Log: [probe('ok')] } }, 'passing', ''],
    [
      'starting',
      { Health: { Status: 'starting', FailingStreak: 0, Log: [] } },
      'warning',
      'health check has not passed yet',
    ],
    [
      'unhealthy: last probe output, trimmed',
      { Health: { Status: 'unhealthy', FailingStreak: 3, Log: [probe('old'), probe('  boom: refused\n')] } },
      'critical',
      'boom: refused',
    ],
    ['unhealthy, no log', { Health: { Status: 'unhealthy', Log: null } }, 'critical', 'health check failing'],
    ['paused', { Status: 'paused', Paused: true }, 'critical', 'container paused'],
  ])('%s', (_title, state, health, output) => {
    const d = deriveServices(inspect({ ports, state }), opts());
    expect(d.services).toHaveLength(2);
    for (const s of d.services) expect([s.health, s.healthOutput]).toEqual([health, output]);
  });

  it('caps long probe output near 1 KiB', () => {
    const state = { Health: { Status: 'unhealthy', Log: [probe('x'.repeat(5000))] } };
    const svc = deriveServices(inspect({ ports, state }), opts()).services[0];
    expect(svc.healthOutput.length).toBeLessThanOrEqual(1024);
    expect(svc.healthOutput.length).toBeGreaterThan(1000);
  });

  it.each([
    ['exited', { Status: 'exited', Running: false }],
    ['restarting', { Status: 'restarting', Running: true, Restarting: true }],
    ['dead', { Status: 'dead', Running: false, Dead: true }],
    ['created', { Status: 'created', Running: false }],
  ])('%s containers offer nothing and warn about nothing', (_title, state) => {
    const d = deriveServices(inspect({ ports, state, labels: { SERVICE_NAME: '' } }), opts());
    expect(d).toEqual({ services: [], warnings: [] });
  });
});

describe('deriveServices: warnings do not stop the rest of the container', () => {
  it('names the container and the key, and still registers', () => {
    const d = deriveServices(
      inspect({
        labels: {
          SERVICE_99999_NAME: 'x',
          SERVICE_NAME: '',
          SERVICE_TAGS: ',',
          SERVICE_REGION: 'x'.repeat(70_000),
        },
        ports: { '80/tcp': local('8080') },
      }),
      opts(),
    );
    expect(d.warnings.map((w) => w.key).sort()).toEqual([
      'SERVICE_99999_NAME',
      'SERVICE_NAME',
      'SERVICE_REGION',
      'SERVICE_TAGS',
    ]);
    for (const w of d.warnings) expect(w.container).toBe('app1');
    const svc = only(d.services);
    expect(svc.name).toBe('app');
    expect(svc.meta).toEqual({});
  });
});

describe('deriveServices: never throws', () => {
  const garbage: unknown[] = [
    null,
    undefined,
    42,
    'container',
    [],
    {},
    { State: { Running: true } },
    { State: { Running: true }, Config: null, NetworkSettings: null, HostConfig: null },
    {
      State: { Running: true },
      Config: { Labels: 'x', Env: 'y', ExposedPorts: ['80/tcp'] },
      NetworkSettings: { Ports: 'z' },
    },
    {
      State: { Running: true },
      NetworkSettings: { Ports: { '80/tcp': [null, 7, { HostIp: 5, HostPort: 80 }] } },
    },
    { State: { Running: true, Health: 'sick' }, Name: 42, Id: {} },
    {
      State: { Running: true, Health: { Status: 7, Log: [null] } },
      NetworkSettings: { Ports: { '80/tcp': local('1') } },
    },
    {
      State: { Running: true },
      HostConfig: { NetworkMode: 'host' },
      Config: { ExposedPorts: { '80/tcp': {} } },
    },
    {
      State: { Running: true },
      NetworkSettings: { Networks: { a: null, b: 'x' } },
      Config: { ExposedPorts: { '1/tcp': 0 } },
    },
  ];
  it.each(garbage.map((g) => [g]))('%j', (g) => {
    for (const o of [opts(), opts({ internal: true }), opts({ hostIp: '::1', explicit: true })]) {
      const d = deriveServices(g as ContainerInspectInfo, o);
      expect(Array.isArray(d.services)).toBe(true);
      expect(Array.isArray(d.warnings)).toBe(true);
    }
  });

  it('turns an inspect whose fields throw into a warning', () => {
    const hostile = new Proxy(
      {},
      {
        get(_t, prop) {
          if (prop === 'Name') return '/evil';
          throw new Error(`no ${String(prop)}`);
        },
      },
    );
    const d = deriveServices(hostile as ContainerInspectInfo, opts());
    expect(d.services).toEqual([]);
    expect(d.warnings).toHaveLength(1);
    expect(d.warnings[0]).toMatchObject({ container: 'evil', key: '(inspect)' });
    expect(d.warnings[0].message).toMatch(/cannot derive/);
  });

  it('tolerates null Env and Labels (as the engine returns them)', () => {
    const d = deriveServices(
      inspect({ labels: null, env: null, ports: { '80/tcp': local('8080') } }),
      opts(),
    );
    expect(only(d.services).name).toBe('app');
  });
});

describe('deriveServices on inspects captured from a real Docker 20.10 engine', () => {
  it('published port on 127.0.0.1 with labels and env (fx-published)', () => {
    const c = fixture('published');
    const svc = only(deriveServices(c, opts()).services);
    expect(svc).toMatchObject({
      id: `${NODE}:fx-published:80`,
      name: 'web',
      address: '127.0.0.1',
      port: hostPort(c, '80/tcp'),
      containerPort: 80,
      tags: ['a', 'b,c'],
      meta: { region: 'eu' },
      container: { id: c.Id, name: 'fx-published' },
      health: 'passing',
    });
    expect(c.Id).toHaveLength(64);
  });

  it('-p 80 publishes 0.0.0.0 and :: on different host ports (fx-anyip)', () => {
    const c = fixture('anyip');
    const v4 = hostPort(c, '80/tcp', '0.0.0.0');
    const v6 = hostPort(c, '80/tcp', '::');
    const without = deriveServices(c, opts());
    expect(without.services).toEqual([]);
    expect(without.warnings.map((w) => w.key)).toEqual(['--ip']);
    const withV4 = only(deriveServices(c, opts({ hostIp: '192.0.2.10' })).services);
    expect([withV4.address, withV4.port, withV4.name]).toEqual(['192.0.2.10', v4, 'registrar-test']);
    expect(only(deriveServices(c, opts({ hostIp: 'fd00::10' })).services).port).toBe(v6);
  });

  it('--internal on a user-defined network includes exposed-only ports (fx-usernet)', () => {
    const c = fixture('usernet');
    const ip = c.NetworkSettings.Networks['fx-net1'].IPAddress;
    expect(ip).not.toBe('');
    const d = deriveServices(c, opts({ internal: true }));
    expect(d.services.map((s) => [s.name, s.address, s.port])).toEqual([
      ['api-80', ip, 80],
      ['api-9000', ip, 9000],
    ]);
    // Published mode: only the published port.
    expect(only(deriveServices(c, opts()).services).name).toBe('api');
  });

  it('two networks: the start network wins over name order; --network overrides (fx-twonets)', () => {
    const c = fixture('twonets');
    const nets = c.NetworkSettings.Networks;
    expect(Object.keys(nets).sort()).toEqual(['fx-neta', 'fx-netb']);
    expect(c.HostConfig.NetworkMode).toBe('fx-netb');
    expect(only(deriveServices(c, opts({ internal: true })).services).address).toBe(
      nets['fx-netb'].IPAddress,
    );
    const chosen = deriveServices(c, opts({ internal: true, network: 'fx-neta' }));
    expect(only(chosen.services).address).toBe(nets['fx-neta'].IPAddress);
  });

  it('SERVICE_NETWORK naming an absent network warns and falls back (fx-garbage)', () => {
    const d = deriveServices(fixture('garbage'), opts({ internal: true }));
    expect(d.warnings.some((w) => w.key === 'SERVICE_NETWORK' && /nope/.test(w.message))).toBe(true);
    expect(only(d.services).address).toBe(fixture('garbage').NetworkSettings.Networks['bridge'].IPAddress);
  });

  it('host network uses exposed ports at --ip (fx-host)', () => {
    const c = fixture('host');
    expect(c.HostConfig.NetworkMode).toBe('host');
    const svc = only(deriveServices(c, opts({ hostIp: '192.0.2.5' })).services);
    expect([svc.name, svc.address, svc.port, svc.id]).toEqual([
      'hostsvc',
      '192.0.2.5',
      18080,
      `${NODE}:fx-host:18080`,
    ]);
    const without = deriveServices(c, opts());
    expect(without.services).toEqual([]);
    expect(without.warnings).toHaveLength(1);
  });

  it.each([
    ['healthy', 'passing', /^$/],
    ['starting', 'warning', /not passed/],
    ['unhealthy', 'critical', /^probe failed: connection refused$/],
    ['paused', 'critical', /^container paused$/],
  ])('health: fx-%s → %s', (name, health, output) => {
    const svc = only(deriveServices(fixture(name), opts()).services);
    expect(svc.health).toBe(health);
    expect(svc.healthOutput).toMatch(output);
  });

  it('UDP and TCP on the same port with a protocol-specific name (fx-udp)', () => {
    const c = fixture('udp');
    const d = deriveServices(c, opts());
    expect(d.services.map((s) => [s.id, s.name, s.protocol, s.port, s.tags])).toEqual([
      [`${NODE}:fx-udp:53`, 'registrar-test-53', 'tcp', hostPort(c, '53/tcp'), []],
      [`${NODE}:fx-udp:53:udp`, 'dns', 'udp', hostPort(c, '53/udp'), ['udp']],
    ]);
  });

  it('two ports with a port-specific name (fx-multiport)', () => {
    const c = fixture('multiport');
    const d = deriveServices(c, opts());
    expect(d.services.map((s) => [s.name, s.port])).toEqual([
      ['shop-80', hostPort(c, '80/tcp')],
      ['shop-tls', hostPort(c, '443/tcp')],
    ]);
  });

  it('one container port bound on two host IPs (fx-twobindings)', () => {
    const c = fixture('twobindings');
    const d = deriveServices(c, opts());
    expect(d.services.map((s) => [s.id, s.address, s.port])).toEqual([
      [`${NODE}:fx-twobindings:80`, '127.0.0.1', hostPort(c, '80/tcp', '127.0.0.1')],
      [
        `${NODE}:fx-twobindings:80:${hostPort(c, '80/tcp', '127.0.0.2')}`,
        '127.0.0.2',
        hostPort(c, '80/tcp', '127.0.0.2'),
      ],
    ]);
  });

  it('IPv6-enabled network: IPv4 preferred, GlobalIPv6Address when IPv4 is absent (fx-v6)', () => {
    const c = fixture('v6');
    const net = c.NetworkSettings.Networks['fx-v6net'];
    expect(net.GlobalIPv6Address).toMatch(/^fd00:db8:1::/);
    expect(only(deriveServices(c, opts({ internal: true })).services).address).toBe(net.IPAddress);
    // Docker 20.10 always assigns IPv4 too; an IPv6-only endpoint is simulated by blanking it.
    const v6only = structuredClone(c);
    v6only.NetworkSettings.Networks['fx-v6net'].IPAddress = '';
    expect(only(deriveServices(v6only, opts({ internal: true })).services).address).toBe(
      net.GlobalIPv6Address,
    );
  });

  it('an exited container offers nothing (fx-exited)', () => {
    expect(deriveServices(fixture('exited'), opts())).toEqual({ services: [], warnings: [] });
  });

  it('Compose service label names the service (fx-compose)', () => {
    expect(only(deriveServices(fixture('compose'), opts()).services).name).toBe('frontend');
  });

  it.each(['byid', 'bydigestid'])('image given by id falls back to the container name (fx-%s)', (name) => {
    const c = fixture(name);
    expect(c.Config.Env).toBeNull();
    expect(only(deriveServices(c, opts()).services).name).toBe(`fx-${name}`);
  });

  it('garbage labels: warnings per key, env fills in, container still served (fx-garbage)', () => {
    const c = fixture('garbage');
    const d = deriveServices(c, opts());
    expect(d.warnings.map((w) => w.key).sort()).toEqual([
      'SERVICE_8o_NAME',
      'SERVICE_99999_NAME',
      'SERVICE_NAME',
      'SERVICE_NETWORK',
      'SERVICE_TAGS',
    ]);
    const svc = only(d.services);
    // The empty SERVICE_NAME label overrides the env's, so the env's port-specific name is what names it.
    expect(svc).toMatchObject({ name: 'envname', checks: { http: '/health' }, meta: {}, tags: [] });
  });

  it('is deterministic across calls', () => {
    for (const name of ['twonets', 'udp', 'usernet']) {
      const c = fixture(name);
      expect(deriveServices(c, opts({ internal: true }))).toEqual(
        deriveServices(structuredClone(c), opts({ internal: true })),
      );
    }
  });
});

describe('deriveServices: what it skipped and why', () => {
  /** `[port/proto | '*', reason]` per skipped entry, in order. */
  const reasons = (skipped: readonly Skip[] | undefined) =>
    (skipped ?? []).map((s) => [s.port === undefined ? '*' : `${s.port}/${s.protocol}`, s.reason]);

  it('a fully registered container skipped nothing', () => {
    const d = deriveServices(inspect({ ports: { '80/tcp': local('8080') } }), opts());
    expect(d.skipped).toEqual([]);
  });

  it('no port at all, and an exposed port that is not published', () => {
    expect(reasons(deriveServices(inspect({ ports: {}, exposed: [] }), opts()).skipped)).toEqual([
      ['*', 'no-published-port'],
    ]);
    const d = deriveServices(
      inspect({
        ports: { '80/tcp': local('8080'), '9000/tcp': null },
        exposed: ['80/tcp', '9000/tcp', '53/udp'],
      }),
      opts(),
    );
    expect(d.services.map((s) => s.containerPort)).toEqual([80]);
    expect(reasons(d.skipped)).toEqual([
      ['53/udp', 'no-published-port'],
      ['9000/tcp', 'no-published-port'],
    ]);
    expect(d.skipped?.[1]?.detail).toMatch(/exposed but not published.*--internal/);
  });

  it('--internal: no exposed port, or no network address', () => {
    expect(
      reasons(deriveServices(inspect({ ports: {}, exposed: [] }), opts({ internal: true })).skipped),
    ).toEqual([['*', 'no-exposed-port']]);
    const d = deriveServices(
      inspect({ networks: { none: {} }, networkMode: 'none', exposed: ['80/tcp'] }),
      opts({ internal: true }),
    );
    expect(reasons(d.skipped)).toEqual([['80/tcp', 'no-network-address']]);
  });

  it('a port published on all interfaces without --ip, and one of two bindings', () => {
    const c = fixture('anyip');
    expect(reasons(deriveServices(c, opts()).skipped)).toEqual([['80/tcp', 'wildcard-without-ip']]);
    expect(deriveServices(c, opts({ hostIp: '192.0.2.10' })).skipped).toEqual([]);
    const both = deriveServices(
      inspect({ ports: { '80/tcp': [...local('8080')!, { HostIp: '0.0.0.0', HostPort: '8081' }] } }),
      opts(),
    );
    expect(only(both.services).port).toBe(8080);
    expect(reasons(both.skipped)).toEqual([['80/tcp', 'wildcard-without-ip']]);
    expect(both.skipped?.[0]?.detail).toMatch(/other bindings are advertised/);
  });

  it('a host-network container without --ip', () => {
    const c = fixture('host');
    expect(reasons(deriveServices(c, opts()).skipped)).toEqual([['18080/tcp', 'host-network-without-ip']]);
    expect(deriveServices(c, opts({ hostIp: '192.0.2.7' })).skipped).toEqual([]);
  });

  it('a binding whose host IP is not an address', () => {
    const d = deriveServices(inspect({ ports: { '80/tcp': local('8080', 'not-an-ip') } }), opts());
    expect(d.services).toEqual([]);
    expect(reasons(d.skipped)).toEqual([['80/tcp', 'invalid-binding']]);
  });

  it('sctp ports are named, not silently dropped', () => {
    const d = deriveServices(
      inspect({ ports: { '80/tcp': local('8080'), '132/sctp': local('8132') } }),
      opts(),
    );
    expect(only(d.services).containerPort).toBe(80);
    expect(reasons(d.skipped)).toEqual([['132/sctp', 'unsupported-protocol']]);
  });

  it.each([
    [{ SERVICE_IGNORE: 'true' }, ['SERVICE_IGNORE', 'SERVICE_IGNORE'], []],
    [{ SERVICE_443_IGNORE: 'yes' }, ['SERVICE_443_IGNORE'], [80]],
    [{ SERVICE_IGNORE: '1', SERVICE_80_IGNORE: 'false' }, ['SERVICE_IGNORE'], [80]],
    [{ SERVICE_443_TCP_IGNORE: 'true', SERVICE_443_IGNORE: 'false' }, ['SERVICE_443_TCP_IGNORE'], [80]],
  ])('SERVICE_IGNORE %j names the key that decided', (labels, keys, registered) => {
    const d = deriveServices(
      inspect({ labels, ports: { '80/tcp': local('8080'), '443/tcp': local('8443') } }),
      opts(),
    );
    expect(d.services.map((s) => s.containerPort)).toEqual(registered);
    expect(d.skipped?.map((s) => s.reason)).toEqual(keys.map(() => 'ignored'));
    expect(d.skipped?.map((s) => s.detail)).toEqual(keys.map((k) => `${k} is set`));
  });

  it('--explicit: each port no name names', () => {
    const ports = { '80/tcp': local('8080'), '443/tcp': local('8443') };
    expect(reasons(deriveServices(inspect({ ports }), opts({ explicit: true })).skipped)).toEqual([
      ['80/tcp', 'explicit-unnamed'],
      ['443/tcp', 'explicit-unnamed'],
    ]);
    const d = deriveServices(
      inspect({ ports, labels: { SERVICE_443_NAME: 'tls' } }),
      opts({ explicit: true }),
    );
    expect(only(d.services).name).toBe('tls');
    expect(reasons(d.skipped)).toEqual([['80/tcp', 'explicit-unnamed']]);
  });

  it('an unusable SERVICE_NAME under --explicit: the warning and the skip both say so', () => {
    const d = deriveServices(
      inspect({ ports: { '80/tcp': local('8080') }, labels: { SERVICE_NAME: 'not a name' } }),
      opts({ explicit: true }),
    );
    expect(d.services).toEqual([]);
    expect(d.warnings.map((w) => w.key)).toEqual(['SERVICE_NAME']);
    expect(reasons(d.skipped)).toEqual([['80/tcp', 'explicit-unnamed']]);
  });

  it('labels decide before bindings: an ignored port published on 0.0.0.0 is "ignored"', () => {
    const d = deriveServices(
      inspect({ ports: { '80/tcp': local('8080', '0.0.0.0') }, labels: { SERVICE_IGNORE: 'true' } }),
      opts(),
    );
    expect(reasons(d.skipped)).toEqual([['80/tcp', 'ignored']]);
    // The warning about --ip is what it always was.
    expect(d.warnings.map((w) => w.key)).toEqual(['--ip']);
  });

  it('health is not a skip: an unhealthy or paused container still derives its services', () => {
    for (const name of ['unhealthy', 'starting', 'paused']) {
      const d = deriveServices(fixture(name), opts());
      expect(d.services).toHaveLength(1);
      expect(d.skipped).toEqual([]);
    }
  });

  it('an unreadable inspect is one container-wide entry', () => {
    const hostile = new Proxy(
      {},
      {
        get(_t, prop) {
          if (prop === 'Name') return '/evil';
          throw new Error(`no ${String(prop)}`);
        },
      },
    );
    const d = deriveServices(hostile as ContainerInspectInfo, opts());
    expect(reasons(d.skipped)).toEqual([['*', 'unreadable-inspect']]);
  });

  it(`keeps at most ${MAX_SKIPPED} entries and sums up the rest per reason`, () => {
    const exposed = Array.from({ length: 1000 }, (_, i) => `${2000 + i}/tcp`);
    const d = deriveServices(inspect({ ports: {}, exposed }), opts());
    expect(d.skipped).toHaveLength(MAX_SKIPPED);
    expect(d.skipped?.at(-1)).toEqual({
      reason: 'no-published-port',
      detail: `and ${1000 - MAX_SKIPPED + 1} more ports skipped for this reason`,
    });
  });
});

describe('containerStateOf', () => {
  it.each([
    ['published', { status: 'running', running: true, paused: false, health: 'none' }],
    ['paused', { status: 'paused', running: true, paused: true, health: 'none' }],
    ['starting', { status: 'running', running: true, health: 'starting' }],
    ['unhealthy', { status: 'running', running: true, health: 'unhealthy' }],
    ['exited', { status: 'exited', running: false }],
  ])('%s', (name, expected) => {
    expect(containerStateOf(fixture(name))).toMatchObject(expected);
  });

  it('keeps the last probe output on one line, capped', () => {
    const state = containerStateOf(fixture('unhealthy'));
    expect(state.healthOutput).not.toBe('');
    expect(state.healthOutput).not.toMatch(/\n/);
    const long = containerStateOf(
      inspect({ state: { Health: { Status: 'unhealthy', Log: [{ Output: 'x\n'.repeat(3000) }] } } }),
    );
    expect(long.healthOutput.length).toBeLessThanOrEqual(1024);
  });

  it('never throws', () => {
    expect(containerStateOf(null as unknown as ContainerInspectInfo)).toMatchObject({ running: false });
  });
});

describe('deriveServices: dual stack', () => {
  const dual = { enginenet: { IPAddress: '10.233.0.2', GlobalIPv6Address: 'fd00:233::2' } };

  it('--internal on a dual-stack network: the IPv4 address first, both families recorded', () => {
    const d = deriveServices(
      inspect({ networks: dual, networkMode: 'enginenet', exposed: ['80/tcp'] }),
      opts({ internal: true }),
    );
    expect(only(d.services)).toMatchObject({
      address: '10.233.0.2',
      port: 80,
      dualStack: { ipv4: { address: '10.233.0.2', port: 80 }, ipv6: { address: 'fd00:233::2', port: 80 } },
    });
  });

  it('one family only: no dualStack, as before', () => {
    const v6only = { enginenet: { GlobalIPv6Address: 'fd00:233::2' } };
    const six = only(
      deriveServices(
        inspect({ networks: v6only, networkMode: 'enginenet', exposed: ['80/tcp'] }),
        opts({ internal: true }),
      ).services,
    );
    expect(six.address).toBe('fd00:233::2');
    expect(six).not.toHaveProperty('dualStack');
    const four = only(deriveServices(inspect({ exposed: ['80/tcp'] }), opts({ internal: true })).services);
    expect(four).not.toHaveProperty('dualStack');
  });

  it("Docker's 0.0.0.0 and :: bindings of one -p, with one --ip per family: one service at both", () => {
    const c = fixture('anyip');
    const v4 = hostPort(c, '80/tcp', '0.0.0.0');
    const v6 = hostPort(c, '80/tcp', '::');
    const d = deriveServices(c, opts({ hostIp: '192.0.2.10', hostIp6: '2001:db8::10' }));
    expect(only(d.services)).toMatchObject({
      address: '192.0.2.10',
      port: v4,
      dualStack: { ipv4: { address: '192.0.2.10', port: v4 }, ipv6: { address: '2001:db8::10', port: v6 } },
    });
    // One --ip: one family, as before.
    const single = only(deriveServices(c, opts({ hostIp: '192.0.2.10' })).services);
    expect(single).toMatchObject({ address: '192.0.2.10', port: v4 });
    expect(single).not.toHaveProperty('dualStack');
  });

  it('with one --ip per family, each binding without a twin goes to its own family', () => {
    const d = deriveServices(
      inspect({
        ports: {
          '80/tcp': [
            { HostIp: '0.0.0.0', HostPort: '8080' },
            { HostIp: '::1', HostPort: '8081' },
          ],
        },
      }),
      opts({ hostIp: '192.0.2.10', hostIp6: '2001:db8::10' }),
    );
    expect(d.services.map((s) => [s.address, s.port, s.dualStack])).toEqual([
      ['192.0.2.10', 8080, undefined],
      ['2001:db8::10', 8081, undefined],
    ]);
  });
});
