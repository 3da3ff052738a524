// Event-to-visible latency: from the Docker event's own timestamp (timeNano) to the change reaching a watcher
// of each registry (etcd watch, ZooKeeper exists-watch, Consul blocking query on /v1/health/service/:name),
// for container starts and stops, next to each backend's own write-to-visible time with its own client.
// One bridge process mirrors into all three backends at once, as `registrar <uri> <uri> <uri>` does.
import { startConsulDouble, type ConsulDouble } from '@registrar/consul-double';
import { Etcd3 } from 'etcd3';
import type { Client } from 'node-zookeeper-client';
import zookeeper from 'node-zookeeper-client';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { spawnBridge, type BridgeProcess } from '../test/harness/bridge.js';
import { runContainer, TEST_LABEL, uniqueName } from '../test/harness/containers.js';
import { docker, removeLabelled } from '../test/harness/docker.js';
import { startEtcd, type EtcdServer } from '@registrar/test-servers/etcd';
import { until } from '@registrar/core/testing';
import { startZookeeper, type ZookeeperServer } from '@registrar/test-servers/zookeeper';
import { connectZookeeper, consulRegistration, zk } from './backends.js';
import { record, stats } from './report.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 50);
const runLabel = `${TEST_LABEL}.bench=${randomBytes(4).toString('hex')}`;
const [labelKey, labelValue] = runLabel.split('=') as [string, string];
/** Wall-clock milliseconds with sub-millisecond resolution (Docker's timeNano is wall-clock too). */
const nowMs = () => performance.timeOrigin + performance.now();

/** Docker event times for our containers, by `<name>/<action>`: the event's own time and its arrival here. */
async function dockerEventTimes() {
  const times = new Map<string, number>();
  const arrivals = new Map<string, number>();
  const stream = await docker.getEvents({ filters: { type: ['container'], label: [runLabel] } });
  stream.on('data', (chunk: Buffer) => {
    const at = nowMs();
    for (const line of chunk.toString().split('\n')) {
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

/** `seen` records `put <key>` / `delete <key>` arrival times at an etcd watcher. */
async function watchEtcd(client: Etcd3, prefix: string, seen: Map<string, number>) {
  const watcher = await client.watch().prefix(`${prefix}/`).create();
  watcher.on('put', (kv) => seen.set(`put ${kv.key.toString()}`, nowMs()));
  watcher.on('delete', (kv) => seen.set(`delete ${kv.key.toString()}`, nowMs()));
  return watcher;
}

/** Arm a one-shot ZooKeeper exists-watch on `path`; records `put`/`delete <path>` when it fires. */
async function armZookeeper(client: Client, path: string, seen: Map<string, number>) {
  await zk((cb) =>
    client.exists(
      path,
      (event) => {
        const at = nowMs();
        if (event.getType() === zookeeper.Event.NODE_CREATED) seen.set(`put ${path}`, at);
        if (event.getType() === zookeeper.Event.NODE_DELETED) seen.set(`delete ${path}`, at);
      },
      cb,
    ),
  );
}

/** A Consul blocking-query loop on one service name; records `put`/`delete <id>` as ids appear and vanish. */
function watchConsul(url: string, name: string, seen: Map<string, number>) {
  const abort = new AbortController();
  let present = new Set<string>();
  const loop = async () => {
    let index = '0';
    while (!abort.signal.aborted) {
      const res = await fetch(`${url}/v1/health/service/${name}?index=${index}&wait=30s`, {
        signal: abort.signal,
      });
      const body = (await res.json()) as { Service: { ID: string } }[];
      const at = nowMs();
      index = res.headers.get('X-Consul-Index') ?? index;
      const now = new Set(body.map((entry) => entry.Service.ID));
      for (const id of now) if (!present.has(id)) seen.set(`put ${id}`, at);
      for (const id of present) if (!now.has(id)) seen.set(`delete ${id}`, at);
      present = now;
    }
  };
  const done = loop().catch(() => undefined);
  return async () => {
    abort.abort();
    await done;
  };
}

describe('latency', () => {
  let etcd: EtcdServer;
  let zkServer: ZookeeperServer;
  let consul: ConsulDouble;
  let etcdClient: Etcd3;
  let zkWatcher: Client;
  let zkWriter: Client;
  let bridge: BridgeProcess;
  const base = `/bench-${randomBytes(3).toString('hex')}`;
  const node = 'bench';

  beforeAll(async () => {
    [etcd, zkServer, consul] = await Promise.all([startEtcd(), startZookeeper(), startConsulDouble()]);
    etcdClient = new Etcd3({ hosts: etcd.endpoint });
    [zkWatcher, zkWriter] = await Promise.all([
      connectZookeeper(zkServer.connectString),
      connectZookeeper(zkServer.connectString),
    ]);
    bridge = spawnBridge([
      '--ip',
      '127.0.0.1',
      '--node-id',
      node,
      '--log-level',
      'warn',
      `etcd://127.0.0.1:${etcd.port}${base}`,
      `zookeeper://${zkServer.connectString}${base}`,
      `consul://127.0.0.1:${consul.port}`,
    ]);
  });
  afterAll(async () => {
    await bridge?.kill();
    await removeLabelled(runLabel);
    etcdClient?.close();
    zkWatcher?.close();
    zkWriter?.close();
    await Promise.all([etcd?.close(), zkServer?.close(), consul?.close()]);
  });

  it(`event-to-visible latency over ${ROUNDS} starts and stops`, async () => {
    const etcdSeen = new Map<string, number>();
    const zkSeen = new Map<string, number>();
    const consulSeen = new Map<string, number>();
    const etcdWatcher = await watchEtcd(etcdClient, base, etcdSeen);
    const stopConsul = watchConsul(consul.url, 'lat', consulSeen);
    const events = await dockerEventTimes();
    const series = () => ({ start: [] as number[], stop: [] as number[] });
    const lat = { etcd: series(), zookeeper: series(), consul: series() };
    const delivery = { start: [] as number[], die: [] as number[] };
    /** Docker's inspect of the running container, timed here: a floor the bridge pays on every start. */
    const inspects: number[] = [];

    for (let i = 0; i < ROUNDS; i++) {
      const name = uniqueName('lat');
      const id = `${node}:${name}:80`;
      const etcdKey = `put ${base}/lat/${id}`;
      const zkPath = `${base}/lat/${id}`;
      await armZookeeper(zkWatcher, zkPath, zkSeen);
      const container = await runContainer({
        name,
        publish: ['80/tcp'],
        env: { SERVICE_NAME: 'lat' },
        labels: { [labelKey]: labelValue },
      });
      await until(
        'registered everywhere',
        () =>
          etcdSeen.has(etcdKey) &&
          zkSeen.has(`put ${zkPath}`) &&
          consulSeen.has(`put ${id}`) &&
          events.times.has(`${name}/start`),
      );
      const started = events.times.get(`${name}/start`)!;
      lat.etcd.start.push(etcdSeen.get(etcdKey)! - started);
      lat.zookeeper.start.push(zkSeen.get(`put ${zkPath}`)! - started);
      lat.consul.start.push(consulSeen.get(`put ${id}`)! - started);
      delivery.start.push(events.arrivals.get(`${name}/start`)! - started);
      const inspectStarted = nowMs();
      await container.inspect();
      inspects.push(nowMs() - inspectStarted);

      await armZookeeper(zkWatcher, zkPath, zkSeen);
      await container.kill();
      await until(
        'deregistered everywhere',
        () =>
          etcdSeen.has(`delete ${base}/lat/${id}`) &&
          zkSeen.has(`delete ${zkPath}`) &&
          consulSeen.has(`delete ${id}`) &&
          events.times.has(`${name}/die`),
      );
      const died = events.times.get(`${name}/die`)!;
      lat.etcd.stop.push(etcdSeen.get(`delete ${base}/lat/${id}`)! - died);
      lat.zookeeper.stop.push(zkSeen.get(`delete ${zkPath}`)! - died);
      lat.consul.stop.push(consulSeen.get(`delete ${id}`)! - died);
      delivery.die.push(events.arrivals.get(`${name}/die`)! - died);
      await container.remove({ force: true });
    }
    events.close();

    // Each backend's own floor: the same kind of write made directly with its client, timed to the same watcher.
    const raw = { etcd: [] as number[], zookeeper: [] as number[], consul: [] as number[] };
    const lease = await etcdClient.leaseClient.leaseGrant({ TTL: 30 });
    await zk((cb) => zkWriter.mkdirp(`${base}/raw`, cb));
    await fetch(`${consul.url}/v1/agent/service/register`, {
      method: 'PUT',
      body: JSON.stringify({ ID: 'raw-bridge', Name: 'raw-bridge', Check: { TTL: '30s' } }),
    });
    const acl = [new zookeeper.ACL(zookeeper.Permission.ALL, new zookeeper.Id('world', 'anyone'))];
    for (let i = 0; i < ROUNDS; i++) {
      const key = `${base}/raw/${i}`;
      let t0 = nowMs();
      await etcdClient.kv.put({ key: Buffer.from(key), value: Buffer.from('{"raw":true}'), lease: lease.ID });
      await until('raw etcd put seen', () => etcdSeen.has(`put ${key}`));
      raw.etcd.push(etcdSeen.get(`put ${key}`)! - t0);

      await armZookeeper(zkWatcher, key, zkSeen);
      t0 = nowMs();
      await zk((cb) =>
        zkWriter.create(key, Buffer.from('{"raw":true}'), acl, zookeeper.CreateMode.EPHEMERAL, cb),
      );
      await until('raw zookeeper create seen', () => zkSeen.has(`put ${key}`));
      raw.zookeeper.push(zkSeen.get(`put ${key}`)! - t0);

      const id = `raw:${i}`;
      t0 = nowMs();
      const res = await fetch(`${consul.url}/v1/agent/service/register`, {
        method: 'PUT',
        body: JSON.stringify(consulRegistration(id, 'lat', 30000 + i, 'raw-bridge')),
      });
      await res.text();
      await until('raw consul register seen', () => consulSeen.has(`put ${id}`));
      raw.consul.push(consulSeen.get(`put ${id}`)! - t0);
    }
    await etcdWatcher.cancel();
    await stopConsul();

    const watcher = {
      etcd: 'etcd watch',
      zookeeper: 'ZooKeeper exists-watch',
      consul: 'Consul blocking query /v1/health/service/:name',
    };
    for (const backend of ['etcd', 'zookeeper', 'consul'] as const) {
      const start = stats(lat[backend].start);
      const stop = stats(lat[backend].stop);
      const rawWrite = stats(raw[backend]);
      const dockerStart = stats(delivery.start);
      const dockerDie = stats(delivery.die);
      // What the bridge adds: its latency minus the two floors it cannot beat (Docker delivering the event
      // to a subscriber, the backend making a write visible to a watcher), compared at the median.
      const inspect = stats(inspects);
      const ms = (x: number) => Math.round(x * 100) / 100;
      // A start also pays Docker's inspect; a stop needs none (the die event says the process exited).
      const overStart = ms(start.median - dockerStart.median - rawWrite.median - inspect.median);
      const overStop = ms(stop.median - dockerDie.median - rawWrite.median);
      // Per round: what is left of each start after its own event delivery and the median floors.
      const startOverheads = lat[backend].start.map(
        (t, i) => t - (delivery.start[i] ?? 0) - rawWrite.median - inspect.median,
      );
      const overStartP95 = ms(stats(startOverheads).p95);
      const worstStart = ms(Math.max(...lat[backend].start.map((t, i) => t - (delivery.start[i] ?? 0))));
      const worstLimit = ms(rawWrite.max + inspect.max + 20);
      record('latency', backend, {
        watcher: watcher[backend],
        start,
        stop,
        rawWriteToVisible: rawWrite,
        dockerEventDelivery: { start: dockerStart, die: dockerDie },
        dockerInspect: inspect,
        bridgeOverheadMedianMs: { start: overStart, stop: overStop },
        bridgeOverheadStartP95Ms: overStartP95,
        worstStartMs: worstStart,
        worstStartLimitMs: worstLimit,
        goal: 'bridge adds ≤ 1 ms to a start over Docker delivery + inspect + raw write (median), ≤ 3 ms (p95); worst start ≤ raw + inspect + 20 ms',
        goalMet: overStart <= 1 && overStartP95 <= 3 && worstStart <= worstLimit,
      });
    }
  });
});
