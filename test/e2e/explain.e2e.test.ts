// `registrar explain <container>` end to end: real containers, a real bridge with --metrics-addr mirroring into
// a real etcd and the Consul agent double, and the built CLI asking it. One test per reason a port is (not)
// registered, then the path without a bridge (derived from Docker with explain's own options).
import type { ExplainReport, ExplainSummary } from '@registrar/core/internal';
import type Docker from 'dockerode';
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freePort, until } from '@registrar/core/testing';
import { startBackend, type Backend } from '../harness/backends.js';
import { runCli, spawnBridge, type BridgeProcess } from '../harness/bridge.js';
import { runContainer, TEST_LABEL, uniqueName, type ContainerSpec } from '../harness/containers.js';
import { removeLabelled } from '../harness/docker.js';

const tag = randomBytes(3).toString('hex');
const runLabel = `${TEST_LABEL}.explain=${tag}`;
const [labelKey, labelValue] = runLabel.split('=') as [string, string];
const node = `explain-${tag}`;
const scope = `explain-${tag}`;

let etcd: Backend;
let consul: Backend;
/** No --ip: published on 127.0.0.1 is advertised there, 0.0.0.0 is not. Into etcd and Consul. */
let bridge: BridgeProcess;
let port: number;
/** --explicit, into etcd only. */
let explicit: BridgeProcess;
let explicitPort: number;
const containers: Docker.Container[] = [];

async function startBridge(extra: string[], uris: string[]) {
  const metricsPort = await freePort();
  const b = spawnBridge([
    '--node-id',
    extra.includes('--explicit') ? `${node}-x` : node,
    '--ttl',
    '2',
    '--log-level',
    'debug',
    '--metrics-addr',
    `127.0.0.1:${metricsPort}`,
    ...extra,
    ...uris,
  ]);
  await until('metrics endpoint', async () => (await fetch(`http://127.0.0.1:${metricsPort}/healthz`)).ok);
  await until(
    'bridge ready',
    async () => (await fetch(`http://127.0.0.1:${metricsPort}/readyz`)).status === 200,
  );
  return { bridge: b, port: metricsPort };
}

beforeAll(async () => {
  [etcd, consul] = await Promise.all([startBackend('etcd'), startBackend('consul')]);
  ({ bridge, port } = await startBridge([], [etcd.uri(scope), consul.uri(scope)]));
  ({ bridge: explicit, port: explicitPort } = await startBridge(['--explicit'], [etcd.uri(`${scope}-x`)]));
});

afterEach(async () => {
  await etcd.up();
  await Promise.all(containers.splice(0).map((c) => c.remove({ force: true }).catch(() => undefined)));
});

afterAll(async () => {
  await Promise.all([bridge, explicit].map((b) => b?.kill()));
  await removeLabelled(runLabel);
  await Promise.all([etcd, consul].map((b) => b?.close()));
});

async function start(prefix: string, spec: Partial<ContainerSpec> = {}) {
  const name = uniqueName(`${prefix}-${tag}`);
  const container = await runContainer({
    name,
    publish: ['80/tcp'],
    ...spec,
    env: { SERVICE_NAME: name, ...spec.env },
    labels: { [labelKey]: labelValue, ...spec.labels },
  });
  containers.push(container);
  return { name, container, id: (await container.inspect()).Id };
}

/** The bridge's explain document, or undefined while it does not know the container. */
async function doc(ref: string, at = port): Promise<ExplainReport | undefined> {
  const res = await fetch(`http://127.0.0.1:${at}/debug/containers/${encodeURIComponent(ref)}`);
  if (res.status === 404) return undefined;
  expect(res.status).toBe(200);
  return (await res.json()) as ExplainReport;
}

/** Wait until the bridge's document satisfies `ok`; returns it. */
async function explained(what: string, ref: string, ok: (d: ExplainReport) => boolean, at = port) {
  let last: ExplainReport | undefined;
  await until(
    what,
    async () => {
      last = await doc(ref, at);
      return last !== undefined && ok(last);
    },
    30_000,
  ).catch((error: unknown) => {
    console.error(JSON.stringify(last, null, 2));
    throw error;
  });
  return last!;
}

const registration = (d: ExplainReport, backend: string, containerPort = 80) =>
  d.ports
    .find((p) => p.port === containerPort)
    ?.services[0]?.registrations.find((r) => r.backend === backend);
const targetOf = (d: ExplainReport, backend: string) =>
  d.registries.find((r) => r.backend === backend)!.target;
const portCodes = (d: ExplainReport, containerPort: number) =>
  d.ports.find((p) => p.port === containerPort)?.reasons.map((r) => r.code) ?? [];

/** `registrar explain` as a user runs it. */
const explain = (args: string[], env: NodeJS.ProcessEnv = {}) => runCli(['explain', ...args], env);
/** The report's line for one port and registry target (or `-`). */
const lineFor = (stdout: string[], containerPort: string, target: string) =>
  stdout.find((l) => l.trim().startsWith(containerPort) && l.includes(` ${target} `));

describe('registrar explain, asking the running bridge', () => {
  it('a registered port: per registry the record as written; by name, id, id prefix; --json', async () => {
    const { name, id } = await start('reg');
    const d = await explained(
      'registered in both',
      name,
      (r) => r.verdict === 'registered' && r.ports[0]?.services[0]?.registrations.length === 2,
    );
    expect(d.source).toBe('bridge');
    expect(d.container).toMatchObject({ id, name, status: 'running', health: 'none' });
    const etcdReg = registration(d, 'etcd')!;
    expect(etcdReg.state).toBe('registered');
    expect(etcdReg.record).toMatchObject({ id: `${node}:${name}:80`, name, address: '127.0.0.1' });
    expect(registration(d, 'consul')?.state).toBe('registered');
    // The record is what the registry holds.
    expect(await etcd.ids(scope, name)).toEqual([`${node}:${name}:80`]);

    const text = await explain(['--metrics-addr', `127.0.0.1:${port}`, name]);
    expect(text.code).toBe(0);
    expect(text.stdout[0]).toMatch(
      new RegExp(`^${name} \\(${id.slice(0, 12)}\\): running: registered: 1 service in 2 registries`),
    );
    expect(lineFor(text.stdout, '80/tcp', targetOf(d, 'etcd'))).toMatch(
      new RegExp(
        `registered +${name} at 127\\.0\\.0\\.1:${etcdReg.record!.port} \\(id ${node}:${name}:80\\)$`,
      ),
    );
    expect(lineFor(text.stdout, '80/tcp', targetOf(d, 'consul'))).toMatch(/ registered /);

    for (const ref of [id, id.slice(0, 12), id.slice(0, 4), `/${name}`]) {
      const json = await explain(['--json', '--metrics-addr', `127.0.0.1:${port}`, ref]);
      expect(json.code, ref).toBe(0);
      expect((JSON.parse(json.stdout.join('\n')) as ExplainReport).container.id).toBe(id);
    }
  });

  it('no published port, and a container without any port', async () => {
    const exposed = await start('expose', { publish: [], expose: ['80/tcp'] });
    const none = await start('noport', { publish: [] });
    const d = await explained('exposed only', exposed.name, (r) => r.ports.length === 1);
    expect(d.verdict).toBe('not-registered');
    expect(portCodes(d, 80)).toEqual(['no-published-port']);
    const n = await explained('no port', none.name, (r) => r.reasons.length > 0);
    expect(n.reasons.map((r) => r.code)).toEqual(['no-published-port']);

    const text = await explain(['--metrics-addr', `127.0.0.1:${port}`, exposed.name]);
    expect(text.code).toBe(0);
    expect(lineFor(text.stdout, '80/tcp', '-')).toMatch(
      /skipped +no-published-port: 80\/tcp is exposed but not published/,
    );
  });

  it('published on 0.0.0.0 without --ip', async () => {
    const { name } = await start('anyip', { publishIp: '0.0.0.0' });
    const d = await explained('wildcard', name, (r) => portCodes(r, 80).length > 0);
    expect(portCodes(d, 80)).toEqual(['wildcard-without-ip']);
    expect(d.options.ip).toBeUndefined();
    expect(await etcd.ids(scope, name)).toEqual([]);
  });

  it('SERVICE_IGNORE on the whole container, and SERVICE_<port>_IGNORE on one port', async () => {
    const whole = await start('ignored', { env: { SERVICE_IGNORE: 'true' } });
    const one = await start('portign', {
      publish: ['80/tcp', '8080/tcp'],
      env: { SERVICE_8080_IGNORE: '1' },
    });
    const w = await explained('ignored', whole.name, (r) => portCodes(r, 80).length > 0);
    expect(w.ports[0]?.reasons).toEqual([{ code: 'ignored', text: 'SERVICE_IGNORE is set' }]);
    const o = await explained(
      'one port ignored',
      one.name,
      (r) => registration(r, 'etcd')?.state === 'registered',
    );
    expect(o.verdict).toBe('partial');
    expect(o.ports.find((p) => p.port === 8080)?.reasons).toEqual([
      { code: 'ignored', text: 'SERVICE_8080_IGNORE is set' },
    ]);
  });

  it('--explicit, a container that names no service; and the label warning behind one that tried', async () => {
    const unnamed = await start('unnamed', { env: { SERVICE_NAME: '' } });
    const badName = await start('badname', { env: { SERVICE_NAME: 'not a name' } });
    const u = await explained('unnamed', unnamed.name, (r) => portCodes(r, 80).length > 0, explicitPort);
    expect(portCodes(u, 80)).toEqual(['explicit-unnamed']);
    expect(u.options.explicit).toBe(true);
    const b = await explained('bad name', badName.name, (r) => portCodes(r, 80).length > 0, explicitPort);
    expect(portCodes(b, 80)).toEqual(['explicit-unnamed']);
    const warning = b.reasons.find((r) => r.code === 'label-warning');
    expect(warning?.text).toMatch(/^SERVICE_NAME: service name "not a name" is not usable/);
    // The same warning the bridge logged for that container.
    const logged = await explicit.waitForLog(
      'the warning',
      (l) => l.container === badName.name && l.label === 'SERVICE_NAME',
    );
    expect(warning?.text).toBe(`SERVICE_NAME: ${logged.msg}`);

    const text = await explain(['--metrics-addr', `127.0.0.1:${explicitPort}`, badName.name]);
    expect(text.code).toBe(0);
    expect(text.stdout.find((l) => l.startsWith('  ') && l.includes('label-warning'))).toMatch(
      /^ +- +- +warning +label-warning: SERVICE_NAME/,
    );
  });

  it('health starting, then unhealthy with the probe output: left out of etcd, registered critical in Consul', async () => {
    const starting = await start('starting', {
      health: { test: ['CMD-SHELL', 'exit 0'], intervalMs: 3_600_000 },
    });
    const s = await explained(
      'starting',
      starting.name,
      (r) => registration(r, 'consul')?.state === 'registered',
    );
    expect(s.container.health).toBe('starting');
    expect(registration(s, 'etcd')).toMatchObject({ state: 'withheld' });
    expect(registration(s, 'etcd')?.reasons[0]?.code).toBe('health-starting');
    expect(registration(s, 'consul')?.reasons[0]?.text).toMatch(
      /registered with its health check warning \(consul mirrors Docker health\)/,
    );

    const sick = await start('sick', {
      health: { test: ['CMD-SHELL', 'echo probe-says-no; exit 1'], intervalMs: 300 },
    });
    const u = await explained(
      'unhealthy',
      sick.name,
      (r) => r.container.health === 'unhealthy' && registration(r, 'consul')?.state === 'registered',
    );
    expect(u.container.healthOutput).toBe('probe-says-no');
    expect(registration(u, 'etcd')?.reasons).toEqual([
      {
        code: 'health-unhealthy',
        text: 'health check failing: probe-says-no; etcd holds only passing services, so it is left out',
      },
    ]);
    expect(registration(u, 'consul')?.reasons[0]?.text).toMatch(
      /^health check failing: probe-says-no; registered with its health check critical/,
    );
    expect(await etcd.ids(scope, sick.name)).toEqual([]);
    expect(await consul.ids(scope, sick.name)).toEqual([`${node}:${sick.name}:80`]);
    expect(await consul.passing(scope, sick.name)).toEqual([]);

    const text = await explain(['--metrics-addr', `127.0.0.1:${port}`, sick.name]);
    expect(text.stdout[0]).toMatch(/: running, health unhealthy: partly registered: 1 of 2 registrations/);
    expect(lineFor(text.stdout, '80/tcp', targetOf(u, 'etcd'))).toMatch(
      / withheld +.*health-unhealthy: health check failing: probe-says-no/,
    );
  });

  it('paused', async () => {
    const { name, container } = await start('paused');
    await explained('registered', name, (r) => r.verdict === 'registered');
    await container.pause();
    const d = await explained(
      'paused',
      name,
      (r) =>
        registration(r, 'etcd')?.state === 'withheld' && registration(r, 'consul')?.state === 'registered',
    );
    expect(d.container.status).toBe('paused');
    expect(registration(d, 'etcd')?.reasons[0]?.code).toBe('paused');
    expect(registration(d, 'consul')).toMatchObject({ state: 'registered' });
    expect(registration(d, 'consul')?.reasons[0]?.code).toBe('paused');
    await until('out of etcd', async () => (await etcd.ids(scope, name)).length === 0);
  });

  it('refused by the registry: Consul without script checks rejects SERVICE_CHECK_SCRIPT, with its error', async () => {
    const { name } = await start('script', { env: { SERVICE_CHECK_SCRIPT: 'true' } });
    // Each registry is written on its own: wait for both outcomes, not just Consul's.
    const d = await explained(
      'rejected in Consul, registered in etcd',
      name,
      (r) =>
        registration(r, 'consul')?.state === 'rejected' && registration(r, 'etcd')?.state === 'registered',
    );
    expect(registration(d, 'consul')?.error).toMatch(/Scripts are disabled/);
    expect(registration(d, 'consul')?.reasons[0]).toMatchObject({ code: 'registry-rejected' });
    expect(registration(d, 'etcd')?.state).toBe('registered');
    expect(d.verdict).toBe('partial');

    const text = await explain(['--metrics-addr', `127.0.0.1:${port}`, name]);
    expect(lineFor(text.stdout, '80/tcp', targetOf(d, 'consul'))).toMatch(
      / rejected +.*registry-rejected: the registry refused it: Consul rejected/,
    );
  });

  it('a write being retried while etcd is down: the last error and the attempts', async () => {
    await etcd.down();
    const { name } = await start('retry');
    const d = await explained(
      'retrying',
      name,
      (r) =>
        registration(r, 'etcd')?.state === 'retrying' &&
        (registration(r, 'etcd')?.attempts ?? 0) >= 2 &&
        registration(r, 'consul')?.state === 'registered',
    );
    const reg = registration(d, 'etcd')!;
    expect(reg.error).not.toBe('');
    expect(reg.reasons[0]?.text).toMatch(/^writes failing, retried with backoff \(attempt \d+\): /);
    expect(d.registries.find((r) => r.backend === 'etcd')?.failing?.passes).toBeGreaterThanOrEqual(2);
    expect(registration(d, 'consul')?.state).toBe('registered');

    const text = await explain(['--metrics-addr', `127.0.0.1:${port}`, name]);
    expect(text.code).toBe(0);
    expect(lineFor(text.stdout, '80/tcp', targetOf(d, 'etcd'))).toMatch(
      / retrying +.*write-retrying: writes failing/,
    );

    await etcd.up();
    await explained(
      'registered after the outage',
      name,
      (r) => registration(r, 'etcd')?.state === 'registered',
    );
  });

  it('lists every container with a verdict, forgets one that is gone, and is read-only', async () => {
    const { name, id, container } = await start('listed');
    await explained('registered', name, (r) => r.verdict === 'registered');
    const list = (await (
      await fetch(`http://127.0.0.1:${port}/debug/containers`)
    ).json()) as ExplainSummary[];
    expect(list.find((c) => c.id === id)).toEqual({
      id,
      name,
      verdict: 'registered',
      summary: 'registered: 1 service in 2 registries',
    });
    expect(
      (await fetch(`http://127.0.0.1:${port}/debug/containers/${name}`, { method: 'DELETE' })).status,
    ).toBe(405);
    expect((await fetch(`http://127.0.0.1:${port}/debug/containers`, { method: 'POST' })).status).toBe(405);

    await container.remove({ force: true });
    await until('forgotten', async () => (await doc(name)) === undefined);
    const after = (await (
      await fetch(`http://127.0.0.1:${port}/debug/containers`)
    ).json()) as ExplainSummary[];
    expect(after.some((c) => c.id === id)).toBe(false);
    const gone = await explain(['--metrics-addr', `127.0.0.1:${port}`, name]);
    expect(gone.code).toBe(1);
    expect(gone.stderr.join('\n')).toMatch(
      /no container ".*": neither the bridge at 127\.0\.0\.1:\d+ nor Docker knows it/,
    );
  });

  it('a stopped container: the bridge does not track it, Docker says it is not running', async () => {
    const { name, container } = await start('stopped');
    await explained('registered', name, (r) => r.verdict === 'registered');
    await container.kill();
    await until('not tracked', async () => (await doc(name)) === undefined);
    const text = await explain(['--metrics-addr', `127.0.0.1:${port}`, name]);
    expect(text.code).toBe(0);
    expect(text.stdout[0]).toMatch(
      /^the bridge at 127\.0\.0\.1:\d+ tracks no running container ".*"; derived from Docker/,
    );
    expect(text.stdout.find((l) => l.startsWith('  ') && l.includes('not-running'))).toMatch(
      /not running +not-running: container exited \(exit code 137\)/,
    );
  });

  it('the metrics address from REGISTRAR_METRICS_ADDR, a 0.0.0.0 listen address asked on 127.0.0.1', async () => {
    const { name } = await start('envaddr');
    await explained('registered', name, (r) => r.verdict === 'registered');
    const text = await explain([name], { REGISTRAR_METRICS_ADDR: `0.0.0.0:${port}` });
    expect(text.code).toBe(0);
    expect(text.stdout[0]).toMatch(/: registered: /);
  });

  it('bad usage exits 2; an unknown container 1', async () => {
    expect((await explain([])).code).toBe(2);
    expect((await explain(['--bogus', 'x'])).code).toBe(2);
    expect((await explain(['a', 'b'])).code).toBe(2);
    expect((await explain(['--metrics-addr', 'nope', 'x'])).code).toBe(2);
    const unknown = await explain(['--metrics-addr', `127.0.0.1:${port}`, `nosuch-${tag}`]);
    expect(unknown.code).toBe(1);
  });
});

describe('registrar explain without a bridge', () => {
  it('derives from Docker with the options given here, and says so first', async () => {
    const nothing = await freePort();
    const { name } = await start('nobridge', { publishIp: '0.0.0.0' });
    const without = await explain(['--metrics-addr', `127.0.0.1:${nothing}`, '--node-id', 'here', name]);
    expect(without.code).toBe(0);
    expect(without.stdout[0]).toBe(
      `no bridge answered at 127.0.0.1:${nothing} (ECONNREFUSED); derived from Docker with the options given here, registry state unknown`,
    );
    expect(lineFor(without.stdout, '80/tcp', '-')).toMatch(/skipped +wildcard-without-ip/);

    const withIp = await explain([
      '--metrics-addr',
      `127.0.0.1:${nothing}`,
      '--node-id',
      'here',
      '--ip',
      '127.0.0.1',
      '--tags',
      'a,b',
      '--json',
      name,
    ]);
    expect(withIp.code).toBe(0);
    const d = JSON.parse(withIp.stdout.join('\n')) as ExplainReport & { note: string };
    expect(d.note).toMatch(/^no bridge answered at /);
    expect(d).toMatchObject({ source: 'docker', verdict: 'unknown', registries: [] });
    expect(d.options).toEqual({
      nodeId: 'here',
      ip: '127.0.0.1',
      internal: false,
      explicit: false,
      tags: ['a', 'b'],
    });
    expect(d.ports[0]?.services[0]).toMatchObject({
      id: `here:${name}:80`,
      address: '127.0.0.1',
      registrations: [],
    });

    const explicitHere = await explain([
      '--metrics-addr',
      `127.0.0.1:${nothing}`,
      '--explicit',
      '--ip',
      '127.0.0.1',
      name,
    ]);
    expect(lineFor(explicitHere.stdout, '80/tcp', '-')).toMatch(/ derived +/);
    const unnamed = await start('nobridge-unnamed', { env: { SERVICE_NAME: '' } });
    const u = await explain(['--metrics-addr', `127.0.0.1:${nothing}`, '--explicit', unnamed.name]);
    expect(lineFor(u.stdout, '80/tcp', '-')).toMatch(/skipped +explicit-unnamed/);
    expect(u.stdout.at(-1)).toMatch(/options \(options given here\): --node-id \S+ no --ip --explicit/);
  });

  it('an unknown container exits 1', async () => {
    const nothing = await freePort();
    const res = await explain(['--metrics-addr', `127.0.0.1:${nothing}`, `nosuch-${tag}`]);
    expect(res.code).toBe(1);
    expect(res.stderr.join('\n')).toMatch(/no container "nosuch-.*": Docker knows none by that name or id/);
  });
});
