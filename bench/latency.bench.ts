// Event-to-visible latency on the real Docker engine: from the Docker event's own timestamp (timeNano) to the
// change reaching a watcher of the registry (etcd watch, ZooKeeper exists-watch, Consul blocking query on
// /v1/health/service/:name), for container starts and stops, next to each backend's own write-to-visible time
// with its own client, Docker's event delivery and Docker's inspect, all measured in the same scenario.
//
// The built `registrar`, run as the image runs it (bench/shipped.ts), mirrors into one backend per process (the
// goal rows), then into all three at once (a separate row: one process, three writes per start, two cores).
// Every bridge is ready (/readyz) before its first container starts; the first start after ready is measured
// on fresh processes, the steady state on the last one.
import { startConsulDouble, type ConsulDouble } from '@registrar/consul-double';
import { Etcd3 } from 'etcd3';
import zookeeper from 'node-zookeeper-client';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { runContainer, TEST_LABEL, uniqueName } from '../test/harness/containers.js';
import { docker, removeLabelled } from '../test/harness/docker.js';
import { startEtcd, type EtcdServer } from '@registrar/test-servers/etcd';
import { until } from '@registrar/core/testing';
import { startZookeeper, type ZookeeperServer } from '@registrar/test-servers/zookeeper';
import { connectZookeeper, consulRegistration, zk } from './backends.js';
import { spawnRegistrar, type RegistrarProcess } from './registrar-process.js';
import { record, stats } from './report.js';
import { shipped } from './shipped.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 50);
/** Fresh bridge processes per scenario whose first start after ready is timed. */
const FIRST_SPAWNS = Number(process.env.BENCH_FIRST_SPAWNS ?? 3);
const GOALS = { startMedianMs: 1, startP95Ms: 2, firstStartOverMs: 3 };
const SHIPPED = shipped();
const runLabel = `${TEST_LABEL}.bench=${randomBytes(4).toString('hex')}`;
const [labelKey, labelValue] = runLabel.split('=') as [string, string];
/** Wall-clock milliseconds with sub-millisecond resolution (Docker's timeNano is wall-clock too). */
const nowMs = () => performance.timeOrigin + performance.now();
const ms = (x: number) => Math.round(x * 100) / 100;
const median = (xs: readonly number[]) => stats(xs).median;

type Target = 'etcd' | 'zookeeper' | 'consul';
const TARGETS: readonly Target[] = ['etcd', 'zookeeper', 'consul'];

/** Docker event times for our containers, by `<name>/<action>`: the event's own time and its arrival here. */
async function dockerEventTimes() {
  const times = new Map<string, number>();
  const arrivals = new Map<string, number>();
  const stream = await docker.getEvents({ filters: { type: ['container'], label: [runLabel] } });
  let buffer = '';
  stream.on('data', (chunk: Buffer) => {
    const at = nowMs();
    buffer += chunk.toString();
    const lines = buffer.split('\n');
    buffer = lines.pop() ?? '';
    for (const line of lines) {
      if (line.trim() === '') continue;
      const e = JSON.parse(line) as {
        Action: string;
        timeNano: number;
        Actor: { Attributes: { name: string } };
      };
      times.set(`${e.Actor.Attributes.name}/${e.Action}`, e.timeNano / 1e6);
      arrivals.set(`${e.Actor.Attributes.name}/${e.Action}`, at);
    }
  });
  return { times, arrivals, close: () => (stream as unknown as { destroy(): void }).destroy() };
}

/** One backend as the latency suite watches it: where entries appear, and its own client's floor. */
interface Watched {
  readonly name: Target;
  uri(base: string): string;
  /** The key `seen` uses for service `id` of `name` under `base`. */
  key(base: string, name: string, id: string): string;
  /** Before the first entry of service `name` (Consul: its blocking query is open and has answered once). */
  follow(name: string): Promise<void>;
  /** Before a change to `key` (ZooKeeper's watches are one-shot). */
  arm(key: string): Promise<void>;
  /** `put <key>` / `delete <key>` → arrival time at the watcher. */
  readonly seen: Map<string, number>;
  /** One raw write (a new entry each time) of the backend's own client; the ms until its watcher saw it. */
  rawWrite(i: number): Promise<number>;
  close(): Promise<void>;
}

async function watchEtcd(server: EtcdServer): Promise<Watched> {
  const client = new Etcd3({ hosts: server.endpoint });
  const seen = new Map<string, number>();
  const watcher = await client.watch().prefix('/').create();
  watcher.on('put', (kv) => seen.set(`put ${kv.key.toString()}`, nowMs()));
  watcher.on('delete', (kv) => seen.set(`delete ${kv.key.toString()}`, nowMs()));
  let lease = '';
  let serial = 0;
  const prefix = `/raw-${randomBytes(3).toString('hex')}`;
  return {
    name: 'etcd',
    seen,
    uri: (base) => `etcd://127.0.0.1:${server.port}${base}`,
    key: (base, name, id) => `${base}/${name}/${id}`,
    follow: () => Promise.resolve(),
    arm: () => Promise.resolve(),
    async rawWrite(i) {
      // A lease of its own for each series of raw writes (a scenario's rounds outlast any fixed TTL).
      if (i === 0) lease = (await client.leaseClient.leaseGrant({ TTL: 600 })).ID;
      const key = `${prefix}/${serial++}`;
      const t0 = nowMs();
      await client.kv.put({ key: Buffer.from(key), value: Buffer.from('{"raw":true}'), lease });
      await until('raw etcd put seen', () => seen.has(`put ${key}`));
      return seen.get(`put ${key}`)! - t0;
    },
    async close() {
      await watcher.cancel();
      client.close();
    },
  };
}

async function watchZookeeper(server: ZookeeperServer): Promise<Watched> {
  const [watcher, writer] = await Promise.all([
    connectZookeeper(server.connectString),
    connectZookeeper(server.connectString),
  ]);
  const seen = new Map<string, number>();
  const arm = (path: string) =>
    zk((cb) =>
      watcher.exists(
        path,
        (event) => {
          const at = nowMs();
          if (event.getType() === zookeeper.Event.NODE_CREATED) seen.set(`put ${path}`, at);
          if (event.getType() === zookeeper.Event.NODE_DELETED) seen.set(`delete ${path}`, at);
        },
        cb,
      ),
    ).then(() => undefined);
  const prefix = `/raw-${randomBytes(3).toString('hex')}`;
  let serial = 0;
  await zk((cb) => writer.mkdirp(prefix, cb));
  const acl = [new zookeeper.ACL(zookeeper.Permission.ALL, new zookeeper.Id('world', 'anyone'))];
  return {
    name: 'zookeeper',
    seen,
    uri: (base) => `zookeeper://${server.connectString}${base}`,
    key: (base, name, id) => `${base}/${name}/${id}`,
    follow: () => Promise.resolve(),
    arm,
    async rawWrite() {
      const path = `${prefix}/${serial++}`;
      await arm(path);
      const t0 = nowMs();
      await zk((cb) =>
        writer.create(path, Buffer.from('{"raw":true}'), acl, zookeeper.CreateMode.EPHEMERAL, cb),
      );
      await until('raw zookeeper create seen', () => seen.has(`put ${path}`));
      return seen.get(`put ${path}`)! - t0;
    },
    close() {
      watcher.close();
      writer.close();
      return Promise.resolve();
    },
  };
}

/** A blocking-query loop per service name, started on first use; records `put`/`delete <id>`. */
async function watchConsul(double: ConsulDouble): Promise<Watched> {
  const seen = new Map<string, number>();
  const abort = new AbortController();
  const loops = new Map<string, Promise<void>>();
  const loop = async (name: string, answered: () => void) => {
    let index = '0';
    let present = new Set<string>();
    while (!abort.signal.aborted) {
      const res = await fetch(`${double.url}/v1/health/service/${name}?index=${index}&wait=30s`, {
        signal: abort.signal,
      });
      const body = (await res.json()) as { Service: { ID: string } }[];
      const at = nowMs();
      index = res.headers.get('X-Consul-Index') ?? index;
      const now = new Set(body.map((entry) => entry.Service.ID));
      for (const id of now) if (!present.has(id)) seen.set(`put ${id}`, at);
      for (const id of present) if (!now.has(id)) seen.set(`delete ${id}`, at);
      present = now;
      answered();
    }
  };
  const answeredOnce = new Map<string, Promise<void>>();
  const follow = (name: string) => {
    let answer = answeredOnce.get(name);
    if (answer === undefined) {
      let answered!: () => void;
      answer = new Promise<void>((resolve) => (answered = resolve));
      answeredOnce.set(name, answer);
      loops.set(
        name,
        loop(name, answered).catch(() => undefined),
      );
    }
    return answer;
  };
  const register = async (body: unknown) => {
    const res = await fetch(`${double.url}/v1/agent/service/register`, {
      method: 'PUT',
      body: JSON.stringify(body),
    });
    await res.text();
  };
  await register({ ID: 'raw-bridge', Name: 'raw-bridge', Check: { TTL: '24h' } });
  const rawName = `raw-${randomBytes(3).toString('hex')}`;
  let serial = 0;
  // The first answer of a blocking query comes at once: it must come before anything is timed.
  await follow(rawName);
  return {
    name: 'consul',
    seen,
    uri: () => `consul://127.0.0.1:${double.port}`,
    key: (_base, _name, id) => id,
    follow,
    arm: () => Promise.resolve(),
    async rawWrite() {
      const n = serial++;
      const id = `${rawName}:${n}`;
      const t0 = nowMs();
      await register(consulRegistration(id, rawName, 30000 + n, 'raw-bridge'));
      await until('raw consul register seen', () => seen.has(`put ${id}`));
      return seen.get(`put ${id}`)! - t0;
    },
    async close() {
      abort.abort();
      await Promise.all(loops.values());
    },
  };
}

interface Scenario {
  /** `etcd`, `zookeeper`, `consul` alone, or `all` three in one process. */
  readonly label: Target | 'all';
  readonly targets: readonly Target[];
}
const SCENARIOS: readonly Scenario[] = [
  ...TARGETS.map((t) => ({ label: t, targets: [t] })),
  { label: 'all' as const, targets: TARGETS },
];

describe('latency', () => {
  let etcd: EtcdServer;
  let zkServer: ZookeeperServer;
  let consul: ConsulDouble;
  const watched = {} as Record<Target, Watched>;
  let events: Awaited<ReturnType<typeof dockerEventTimes>>;
  const run = randomBytes(3).toString('hex');

  beforeAll(async () => {
    [etcd, zkServer, consul] = await Promise.all([startEtcd(), startZookeeper(), startConsulDouble()]);
    [watched.etcd, watched.zookeeper, watched.consul] = await Promise.all([
      watchEtcd(etcd),
      watchZookeeper(zkServer),
      watchConsul(consul),
    ]);
    events = await dockerEventTimes();
  });
  afterAll(async () => {
    events?.close();
    await removeLabelled(runLabel);
    await Promise.all(Object.values(watched).map((w) => w.close()));
    await Promise.all([etcd?.close(), zkServer?.close(), consul?.close()]);
  });

  it.each(SCENARIOS)(
    `event-to-visible latency, $label: ${FIRST_SPAWNS} first starts after ready, ${ROUNDS} starts and stops`,
    async ({ label, targets }) => {
      const base = `/lat-${label}-${run}`;
      const service = `lat-${label}-${run}`;
      const series = () => ({ start: [] as number[], stop: [] as number[] });
      const lat = Object.fromEntries(targets.map((t) => [t, series()])) as Record<
        Target,
        ReturnType<typeof series>
      >;
      const firsts = Object.fromEntries(targets.map((t) => [t, [] as number[]])) as Record<Target, number[]>;
      const delivery = { start: [] as number[], die: [] as number[] };
      const firstDelivery: number[] = [];
      /** Docker's inspect of the running container, timed here: a floor the bridge pays on every start. */
      const inspects: number[] = [];
      const readyMs: number[] = [];

      /** One container: start, visible everywhere, inspect timed, kill, gone everywhere. */
      const round = async (node: string, first: boolean) => {
        const name = uniqueName('lat');
        const id = `${node}:${name}:80`;
        const keys = Object.fromEntries(targets.map((t) => [t, watched[t].key(base, service, id)])) as Record<
          Target,
          string
        >;
        for (const t of targets) await watched[t].arm(keys[t]);
        const container = await runContainer({
          name,
          publish: ['80/tcp'],
          env: { SERVICE_NAME: service },
          labels: { [labelKey]: labelValue },
        });
        await until(
          'registered everywhere',
          () =>
            targets.every((t) => watched[t].seen.has(`put ${keys[t]}`)) && events.times.has(`${name}/start`),
        );
        const started = events.times.get(`${name}/start`)!;
        const arrived = events.arrivals.get(`${name}/start`)! - started;
        for (const t of targets) {
          const took = watched[t].seen.get(`put ${keys[t]}`)! - started;
          if (first) firsts[t].push(took - arrived);
          else lat[t].start.push(took);
        }
        if (first) firstDelivery.push(arrived);
        else delivery.start.push(arrived);
        const inspectStarted = nowMs();
        await container.inspect();
        inspects.push(nowMs() - inspectStarted);

        for (const t of targets) await watched[t].arm(keys[t]);
        await container.kill();
        await until(
          'deregistered everywhere',
          () =>
            targets.every((t) => watched[t].seen.has(`delete ${keys[t]}`)) && events.times.has(`${name}/die`),
        );
        const died = events.times.get(`${name}/die`)!;
        if (!first) {
          for (const t of targets) lat[t].stop.push(watched[t].seen.get(`delete ${keys[t]}`)! - died);
          delivery.die.push(events.arrivals.get(`${name}/die`)! - died);
        }
        await container.remove({ force: true });
      };

      for (const t of targets) await watched[t].follow(service);
      let bridge: RegistrarProcess | undefined;
      try {
        for (let spawn = 1; spawn <= FIRST_SPAWNS; spawn++) {
          const node = `lat${spawn}-${label}-${run}`;
          const t0 = performance.now();
          bridge = await spawnRegistrar({
            ...SHIPPED,
            args: [
              '--ip',
              '127.0.0.1',
              '--node-id',
              node,
              '--log-level',
              'warn',
              ...targets.map((t) => watched[t].uri(base)),
            ],
          });
          await bridge.ready();
          readyMs.push(performance.now() - t0);
          await round(node, true);
          if (spawn < FIRST_SPAWNS) {
            await bridge.stop();
            continue;
          }
          for (let i = 0; i < ROUNDS; i++) await round(node, false);
        }
      } finally {
        await bridge?.stop();
      }

      // Each backend's own floor in this scenario: the same kind of write made directly with its client.
      const raw = Object.fromEntries(targets.map((t) => [t, [] as number[]])) as Record<Target, number[]>;
      for (let i = 0; i < ROUNDS; i++) for (const t of targets) raw[t].push(await watched[t].rawWrite(i));

      const inspect = stats(inspects);
      const dockerStart = stats(delivery.start);
      const dockerDie = stats(delivery.die);
      for (const t of targets) {
        const start = stats(lat[t].start);
        const stop = stats(lat[t].stop);
        const rawWrite = stats(raw[t]);
        // What the bridge adds: its latency minus the floors it cannot beat (Docker delivering the event to a
        // subscriber, Docker's inspect, the backend making a write visible to a watcher).
        const overStart = ms(start.median - dockerStart.median - rawWrite.median - inspect.median);
        const overStop = ms(stop.median - dockerDie.median - rawWrite.median);
        // Per round: what is left of each start after its own event delivery and the median floors.
        const overheads = lat[t].start.map(
          (x, i) => x - (delivery.start[i] ?? 0) - rawWrite.median - inspect.median,
        );
        const overStartP95 = ms(stats(overheads).p95);
        const firstOver = firsts[t].map((x) => ms(x - rawWrite.median - inspect.median));
        const firstStartLimitMs = ms(rawWrite.median + inspect.median + GOALS.firstStartOverMs);
        const alone = label !== 'all';
        record('latency', t, {
          scenario: alone ? 'alone' : 'all three in one process',
          node: SHIPPED.label,
          watcher: {
            etcd: 'etcd watch',
            zookeeper: 'ZooKeeper exists-watch',
            consul: 'Consul blocking query',
          }[t],
          start,
          stop,
          rawWriteToVisible: rawWrite,
          dockerEventDelivery: { start: dockerStart, die: dockerDie },
          dockerInspect: inspect,
          bridgeOverheadMedianMs: { start: overStart, stop: overStop },
          bridgeOverheadStartP95Ms: overStartP95,
          spawnToReadyMs: stats(readyMs),
          // After its own event delivery: Docker → bridge is not the bridge's.
          firstStartsMs: firsts[t].map(ms),
          firstStartOverFloorsMs: firstOver,
          firstStartMedianMs: ms(median(firsts[t])),
          firstStartLimitMs,
          goal: `bridge adds ≤ ${GOALS.startMedianMs} ms to a start (median), p95 ≤ ${GOALS.startP95Ms} ms; first start after ready ≤ raw + inspect + ${GOALS.firstStartOverMs} ms`,
          ...(alone && {
            startGoalMet: overStart <= GOALS.startMedianMs && overStartP95 <= GOALS.startP95Ms,
            firstStartGoalMet: median(firsts[t]) <= firstStartLimitMs,
          }),
        });
      }
    },
  );
});
