// Run by memory.bench.ts as `node --expose-gc bench/memory-child.ts <etcd-endpoint> <soak-events>` (Node's
// own type stripping): the real pipeline with the etcd adapter in a process of its own, so its RSS and heap
// are the bridge's alone. Prints one JSON line with the figures.
import { createBridge } from '@registrar/core';
import { createEtcdRegistry } from '@registrar/etcd';
import { SyntheticDocker } from '@registrar/core/testing';

const [endpoint, soakArg] = process.argv.slice(2);
const SOAK = Number(soakArg ?? 100_000);
const BASE = 1_000;
const BATCH = 2_500;
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc || !endpoint)
  throw new Error('usage: node --expose-gc memory-child.ts <etcd-endpoint> [soak-events]');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const mib = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10;
const measure = async () => {
  await sleep(50);
  gc();
  gc();
  const m = process.memoryUsage();
  return { rssMiB: mib(m.rss), heapUsedMiB: mib(m.heapUsed) };
};

const before = await measure();
const docker = new SyntheticDocker();
for (let i = 0; i < BASE; i++) docker.add({ name: `m${i}` });
const counts = { registered: 0, deregistered: 0 };
const bridge = createBridge({
  docker,
  registries: [createEtcdRegistry({ hosts: [endpoint], nodeId: 'mem', prefix: '/mem' })],
  nodeId: 'mem',
  hostIp: '127.0.0.1',
  internal: false,
  tags: [],
  explicit: false,
  resync: 0,
  stallCheckMs: 0,
  observer: {
    onOp(_registry, op, outcome) {
      if (outcome !== 'ok') return;
      if (op.type === 'register') counts.registered += 1;
      else counts.deregistered += 1;
    },
  },
});
const waitFor = async (check: () => boolean) => {
  const deadline = Date.now() + 120_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await sleep(2);
  }
};
await waitFor(() => counts.registered >= BASE);
const cold = await measure();

// Churn: containers with fresh ids start and die in batches, 2 events each, on top of the 1,000 that stay.
const t0 = performance.now();
let serial = 0;
for (let done = 0; done < SOAK; done += 2 * BATCH) {
  const ids = Array.from({ length: BATCH }, () => docker.start({ name: `s${serial++}` }));
  const target = counts.registered + BATCH;
  await waitFor(() => counts.registered >= target);
  const gone = counts.deregistered + BATCH;
  for (const id of ids) docker.die(id);
  await waitFor(() => counts.deregistered >= gone);
}
const soakSeconds = (performance.now() - t0) / 1000;
const afterSoak = await measure();

// The pipeline keeps a per-container group for 5 s after its last event; wait for those to expire.
const settleStart = performance.now();
let settled = afterSoak;
while (settled.heapUsedMiB > cold.heapUsedMiB * 1.1 + 2 && performance.now() - settleStart < 75_000) {
  await sleep(5_000);
  settled = await measure();
}
const settleSeconds = (performance.now() - settleStart) / 1000;
await bridge.stop({ deregister: true });
process.stdout.write(
  `${JSON.stringify({
    baseline: before,
    coldStart: cold,
    services: BASE,
    soakEvents: SOAK,
    soakSeconds: Math.round(soakSeconds * 10) / 10,
    afterSoak,
    settled,
    settleSeconds: Math.round(settleSeconds),
  })}\n`,
);
process.exit(0);
