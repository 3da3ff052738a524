// Event-to-visible latency: from the Docker event's own timestamp (timeNano) to the change reaching a watcher
// of the registry, for container starts and stops, next to the backend's own write-to-watch time.
import { Etcd3 } from 'etcd3';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { spawnBridge, type BridgeProcess } from '../test/harness/bridge.js';
import { runContainer, TEST_LABEL, uniqueName } from '../test/harness/containers.js';
import { docker, removeLabelled } from '../test/harness/docker.js';
import { startEtcd, type EtcdServer } from '../test/harness/etcd.js';
import { until } from '../test/harness/net.js';
import { record, stats } from './report.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 20);
const runLabel = `${TEST_LABEL}.bench=${randomBytes(4).toString('hex')}`;
const [labelKey, labelValue] = runLabel.split('=') as [string, string];
/** Wall-clock milliseconds with sub-millisecond resolution (Docker's timeNano is wall-clock too). */
const nowMs = () => performance.timeOrigin + performance.now();

/** Docker event times for our containers, by `<name>/<action>`. */
async function dockerEventTimes() {
  const times = new Map<string, number>();
  const stream = await docker.getEvents({ filters: { type: ['container'], label: [runLabel] } });
  stream.on('data', (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n')) {
      if (line.trim() === '') continue;
      const e = JSON.parse(line) as {
        Action: string;
        timeNano: number;
        Actor: { Attributes: { name: string } };
      };
      times.set(`${e.Actor.Attributes.name}/${e.Action}`, e.timeNano / 1e6);
    }
  });
  return { times, close: () => (stream as unknown as { destroy(): void }).destroy() };
}

describe('etcd', () => {
  let etcd: EtcdServer;
  let client: Etcd3;
  let bridge: BridgeProcess;
  const prefix = `/bench-${randomBytes(3).toString('hex')}`;
  const node = 'bench';

  beforeAll(async () => {
    etcd = await startEtcd();
    client = new Etcd3({ hosts: etcd.endpoint });
    bridge = spawnBridge([
      '--ip',
      '127.0.0.1',
      '--node-id',
      node,
      '--log-level',
      'warn',
      `etcd://127.0.0.1:${etcd.port}${prefix}`,
    ]);
  });
  afterAll(async () => {
    await bridge?.kill();
    await removeLabelled(runLabel);
    client?.close();
    await etcd?.close();
  });

  it(`event-to-key latency over ${ROUNDS} starts and stops`, async () => {
    const seen = new Map<string, number>();
    const watcher = await client.watch().prefix(`${prefix}/`).create();
    watcher.on('put', (kv) => seen.set(`put ${kv.key.toString()}`, nowMs()));
    watcher.on('delete', (kv) => seen.set(`delete ${kv.key.toString()}`, nowMs()));
    const events = await dockerEventTimes();
    const starts: number[] = [];
    const stops: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const name = uniqueName('lat');
      const key = `${prefix}/lat/${node}:${name}:80`;
      const container = await runContainer({
        name,
        publish: ['80/tcp'],
        env: { SERVICE_NAME: 'lat' },
        labels: { [labelKey]: labelValue },
      });
      await until('key put', () => seen.has(`put ${key}`) && events.times.has(`${name}/start`));
      starts.push(seen.get(`put ${key}`)! - events.times.get(`${name}/start`)!);
      await container.kill();
      await until('key deleted', () => seen.has(`delete ${key}`) && events.times.has(`${name}/die`));
      stops.push(seen.get(`delete ${key}`)! - events.times.get(`${name}/die`)!);
      await container.remove({ force: true });
    }
    events.close();

    // The backend's own floor: a put made directly with the client, timed to its arrival at the same watcher.
    const raw: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const key = `${prefix}/raw/${i}`;
      const t0 = nowMs();
      await client.put(key).value('x');
      await until('raw put seen', () => seen.has(`put ${key}`));
      raw.push(seen.get(`put ${key}`)! - t0);
    }
    await watcher.cancel();
    record('latency', 'etcd', {
      start: stats(starts),
      stop: stats(stops),
      rawPut: stats(raw),
    });
  });
});
