import type { ContainerInspectInfo } from 'dockerode';
import { describe, expect, it } from 'vitest';
import { containerStateOf, deriveServices, type DeriveOptions } from './derive.js';
import { explainContainer, matchContainer, type ExplainInput, type ExplainRegistry } from './explain.js';
import type { RegistrationState } from './reconciler.js';
import type { Service } from './service.js';

const ID = 'abcdef0123456789'.repeat(4);
const options: DeriveOptions = {
  nodeId: 'n1',
  hostIp: '192.0.2.1',
  internal: false,
  tags: [],
  explicit: false,
};

function inspect(
  spec: { labels?: Record<string, string>; ports?: Record<string, string>; state?: object } = {},
) {
  const ports = spec.ports ?? { '80/tcp': '0.0.0.0' };
  return {
    Id: ID,
    Name: '/web-1',
    Image: 'sha256:00',
    State: { Status: 'running', Running: true, Paused: false, Restarting: false, ...spec.state },
    Config: {
      Image: 'web',
      Labels: spec.labels ?? {},
      Env: [],
      ExposedPorts: Object.fromEntries(Object.keys(ports).map((p) => [p, {}])),
    },
    HostConfig: { NetworkMode: 'default' },
    NetworkSettings: {
      Ports: Object.fromEntries(
        Object.entries(ports).map(([p, ip], i) => [
          p,
          ip === '' ? null : [{ HostIp: ip, HostPort: `${32768 + i}` }],
        ]),
      ),
      Networks: { bridge: { IPAddress: '172.17.0.2' } },
    },
  } as unknown as ContainerInspectInfo;
}

/** A registry whose state for every id is `state`. */
function registry(
  backend: string,
  state: (id: string, wanted: Service | undefined) => RegistrationState,
  mirrorsHealth = backend === 'consul',
): ExplainRegistry {
  return { backend, target: `${backend}://127.0.0.1`, mirrorsHealth, stateOf: state };
}

function input(
  info: ContainerInspectInfo,
  registries: ExplainRegistry[],
  extra: Partial<ExplainInput> = {},
  opts: DeriveOptions = options,
): ExplainInput {
  return {
    source: 'bridge',
    container: { id: ID, name: 'web-1' },
    state: containerStateOf(info),
    derivation: deriveServices(info, opts),
    options: opts,
    registries,
    ...extra,
  };
}

const registered = (_id: string, wanted: Service | undefined): RegistrationState =>
  wanted ? { state: 'registered', record: wanted, writtenAt: 1 } : { state: 'absent' };

describe('explainContainer', () => {
  it('a registered port: per registry the record as written', () => {
    const report = explainContainer(input(inspect(), [registry('etcd', registered)]));
    expect(report.verdict).toBe('registered');
    expect(report.summary).toBe('registered: 1 service in 1 registry');
    const [port] = report.ports;
    expect(port).toMatchObject({ port: 80, protocol: 'tcp', reasons: [] });
    expect(port.services[0].registrations[0]).toMatchObject({
      backend: 'etcd',
      state: 'registered',
      reasons: [],
      record: { id: 'n1:web-1:80', address: '192.0.2.1', port: 32768 },
      writtenAt: new Date(1).toISOString(),
    });
  });

  it('a skipped port carries derive’s reason; the verdict is partial', () => {
    const info = inspect({
      ports: { '80/tcp': '0.0.0.0', '443/tcp': '0.0.0.0' },
      labels: { SERVICE_443_IGNORE: '1' },
    });
    const report = explainContainer(input(info, [registry('etcd', registered)]));
    expect(report.verdict).toBe('partial');
    expect(report.ports.map((p) => [p.port, p.reasons.map((r) => r.code)])).toEqual([
      [80, []],
      [443, ['ignored']],
    ]);
    expect(report.summary).toBe('partly registered: 1 service in 1 registry, 1 of 2 ports skipped: ignored');
  });

  it('health: left out of etcd, registered critical in Consul, each saying so', () => {
    const info = inspect({
      state: { Health: { Status: 'unhealthy', Log: [{ Output: 'curl: (7) refused\n' }] } },
    });
    const report = explainContainer(
      input(info, [registry('etcd', registered), registry('consul', registered)]),
    );
    const [etcd, consul] = report.ports[0].services[0].registrations;
    expect(etcd.state).toBe('withheld');
    expect(etcd.reasons).toEqual([
      {
        code: 'health-unhealthy',
        text: 'health check failing: curl: (7) refused; etcd holds only passing services, so it is left out',
      },
    ]);
    expect(consul.state).toBe('registered');
    expect(consul.reasons[0].code).toBe('health-unhealthy');
    expect(consul.reasons[0].text).toMatch(
      /registered with its health check critical \(consul mirrors Docker health\)/,
    );
    expect(report.verdict).toBe('partial');
    expect(report.container).toMatchObject({ health: 'unhealthy', healthOutput: 'curl: (7) refused' });
  });

  it.each([
    ['paused', { Paused: true, Status: 'paused' }, 'paused'],
    ['starting', { Health: { Status: 'starting', Log: [] } }, 'health-starting'],
  ])('%s: withheld from etcd with its code', (_title, state, code) => {
    const report = explainContainer(input(inspect({ state }), [registry('etcd', registered)]));
    expect(report.ports[0].services[0].registrations[0]).toMatchObject({ state: 'withheld' });
    expect(report.ports[0].services[0].registrations[0].reasons[0].code).toBe(code);
    expect(report.verdict).toBe('not-registered');
  });

  it('draining: the signal, on every registry that does not mirror health', () => {
    const info = inspect();
    const derived = deriveServices(info, options).services;
    const report = explainContainer(
      input(info, [registry('etcd', registered)], {
        draining: { signal: 'SIGTERM' },
        services: derived.map((s) => ({ ...s, health: 'critical' as const, healthOutput: 'draining' })),
      }),
    );
    expect(report.ports[0].services[0].registrations[0].reasons[0]).toMatchObject({ code: 'draining' });
    expect(report.container.draining).toBe('Docker sent SIGTERM');
  });

  it('a rejected, a retried and a pending write, with the registry’s error and the attempts', () => {
    const report = explainContainer(
      input(inspect(), [
        registry('consul', () => ({
          state: 'rejected',
          error: 'Consul rejected register (500: Scripts are disabled)',
        })),
        registry('etcd', () => ({ state: 'retrying', error: 'etcd unreachable: ECONNREFUSED', attempts: 4 })),
        registry('zookeeper', () => ({ state: 'pending' })),
      ]),
    );
    const [consul, etcd, zk] = report.ports[0].services[0].registrations;
    expect(consul).toMatchObject({
      state: 'rejected',
      error: 'Consul rejected register (500: Scripts are disabled)',
    });
    expect(consul.reasons[0].code).toBe('registry-rejected');
    expect(etcd).toMatchObject({ state: 'retrying', attempts: 4, error: 'etcd unreachable: ECONNREFUSED' });
    expect(etcd.reasons[0].text).toBe(
      'writes failing, retried with backoff (attempt 4): etcd unreachable: ECONNREFUSED',
    );
    expect(zk.reasons.map((r) => r.code)).toEqual(['write-pending']);
    expect(report.verdict).toBe('not-registered');
    expect(report.summary).toBe('not registered: registry-rejected, write-retrying, write-pending');
  });

  it('registered while the registry now fails: the last known state, saying so', () => {
    const failing = { passes: 3, since: 0, error: 'ECONNREFUSED', stage: 'list' };
    const report = explainContainer(input(inspect(), [{ ...registry('etcd', registered), failing }]));
    const [etcd] = report.ports[0].services[0].registrations;
    expect(etcd.state).toBe('registered');
    expect(etcd.reasons).toEqual([
      {
        code: 'registry-failing',
        text: 'last known state: the registry has failed 3 passes in a row since 1970-01-01T00:00:00.000Z: ECONNREFUSED',
      },
    ]);
    expect(report.registries[0].failing).toEqual({ ...failing, since: '1970-01-01T00:00:00.000Z' });
  });

  it('a withheld service still stored: its removal pending or failing', () => {
    const info = inspect({ state: { Health: { Status: 'starting', Log: [] } } });
    const report = explainContainer(
      input(info, [registry('etcd', () => ({ state: 'stored', error: 'ECONNREFUSED', attempts: 2 }))]),
    );
    expect(report.ports[0].services[0].registrations[0].reasons.map((r) => [r.code, r.text])).toEqual([
      [
        'health-starting',
        'health check starting (no probe has passed yet); etcd holds only passing services, so it is left out',
      ],
      ['removal-pending', 'still stored there: its removal keeps failing (attempt 2): ECONNREFUSED'],
    ]);
  });

  it('a duplicate id: withheld, naming the container that holds it', () => {
    const report = explainContainer(
      input(inspect(), [registry('etcd', registered)], { holderOf: () => 'web-0' }),
    );
    expect(report.ports[0].services[0].registrations[0]).toMatchObject({
      state: 'withheld',
      reasons: [{ code: 'duplicate-id', text: 'service id n1:web-1:80 is already taken by container web-0' }],
    });
  });

  it('label warnings: on their port when the key names one, else on the container; option warnings are skips', () => {
    const info = inspect({
      ports: { '80/tcp': '127.0.0.1', '81/tcp': '0.0.0.0' },
      labels: { SERVICE_80_NAME: 'bad name', SERVICE_TAGS: 'a,\u0001', SERVICE_99_NAME: 'x y' },
    });
    const noIp = { ...options, hostIp: undefined } as DeriveOptions;
    const report = explainContainer(input(info, [registry('etcd', registered)], {}, noIp));
    expect(report.reasons.map((r) => r.code)).toEqual(['label-warning', 'label-warning']);
    expect(report.reasons.map((r) => r.text.split(':')[0])).toEqual(['SERVICE_99_NAME', 'SERVICE_TAGS']);
    expect(report.ports.map((p) => p.reasons.map((r) => r.code))).toEqual([
      ['label-warning'],
      ['wildcard-without-ip'],
    ]);
    expect(report.warnings.map((w) => w.key)).toContain('--ip');
  });

  it('not running: one container-wide reason', () => {
    const report = explainContainer(
      input(inspect({ state: { Running: false, Status: 'exited', ExitCode: 3 } }), [
        registry('etcd', registered),
      ]),
    );
    expect(report.reasons).toEqual([
      { code: 'not-running', text: 'container exited (exit code 3): only running containers are registered' },
    ]);
    expect(report.verdict).toBe('not-registered');
    expect(report.summary).toBe('not registered: not-running');
  });

  it('without registries (no bridge): derived services, health effects per kind of registry', () => {
    const info = inspect({ state: { Health: { Status: 'starting', Log: [] } } });
    const report = explainContainer({ ...input(info, []), source: 'docker' });
    expect(report.verdict).toBe('unknown');
    expect(report.summary).toBe('derives 1 service, registry state unknown: health-starting');
    expect(report.ports[0].services[0].registrations).toEqual([]);
    expect(report.ports[0].services[0].reasons[0].text).toMatch(
      /etcd, ZooKeeper\) leaves it out, Consul registers it with its check warning$/,
    );
  });

  it('every text is one line', () => {
    const info = inspect({ state: { Health: { Status: 'unhealthy', Log: [{ Output: 'a\nb\r\nc' }] } } });
    const text = JSON.stringify(explainContainer(input(info, [registry('etcd', registered)])));
    for (const r of text.matchAll(/"text":"([^"]*)"/g)) expect(r[1]).not.toMatch(/\\n/);
  });
});

describe('matchContainer', () => {
  const items = [
    { id: 'abcd1234'.repeat(8), name: 'web' },
    { id: 'abcd5678'.repeat(8), name: 'api' },
    { id: 'ffff0000'.repeat(8), name: 'abcd1' },
  ];
  it.each([
    ['web', 'web'],
    ['/api', 'api'],
    ['abcd1234'.repeat(8), 'web'],
    ['ABCD1234', 'web'],
    ['abcd1', 'abcd1'], // a name beats an id prefix, as in Docker
    ['ffff', 'abcd1'],
  ])('%s → %s', (ref, name) => {
    const match = matchContainer(ref, items);
    expect(match.kind === 'found' && match.item.name).toBe(name);
  });

  it('an ambiguous prefix lists the candidates; a short or unknown one is unknown', () => {
    expect(matchContainer('abcd', items)).toMatchObject({
      kind: 'ambiguous',
      matches: [{ name: 'web' }, { name: 'api' }],
    });
    expect(matchContainer('fff', items)).toEqual({ kind: 'unknown' });
    expect(matchContainer('nope', items)).toEqual({ kind: 'unknown' });
    expect(matchContainer('0123', items)).toEqual({ kind: 'unknown' });
  });
});
