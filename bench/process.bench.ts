// The process users run: the built `registrar` CLI as a child process, watching the synthetic Docker engine over
// its unix socket (bench/synthetic-engine.ts) and writing into the real etcd, ZooKeeper and the Consul double.
// Memory is the child's RSS from /proc, per-event cost its utime + stime, cold start the time until every
// service is visible in the backend.
import { afterAll, beforeAll, describe, it } from 'vitest';
import { BACKENDS, converged, sleep, startBackend, type Backend } from './backends.js';
import {
  launchOn,
  type HeapSplit,
  type Launch,
  type Memory,
  type RegistrarProcess,
} from './registrar-process.js';
import { record } from './report.js';
import { startSyntheticEngine, type SyntheticEngine } from '@registrar/core/testing';

const COLD = Number(process.env.BENCH_CONTAINERS ?? 1_000);
/** 100,000 is the goal's soak; 20,000 keeps `pnpm bench` near 10 min on 2 cores (~550 events/s each way). */
const SOAK = Number(process.env.BENCH_SOAK_EVENTS ?? 20_000);
/** `BENCH_PROCESS_VARIANTS=0` skips the table of Node and allocator variants (~90 s). */
const RUN_VARIANTS = process.env.BENCH_PROCESS_VARIANTS !== '0';
/** Tracked services of the large side of the per-event CPU comparison (the small side is 100). */
const SCALE = Number(process.env.BENCH_CPU_SERVICES ?? 10_000);
/** Events per measured batch (half starts, half dies) and batches per side. */
const CPU_EVENTS = Number(process.env.BENCH_CPU_EVENTS ?? 1_000);
const CPU_BATCHES = 3;
/** A churn batch of the soak: this many containers start, then die. */
const SOAK_BATCH = 2_500;
/** How long a process is left alone before its memory is read. */
const SETTLE_MS = 3_000;
const SOAK_RECOVERY_S = 60;
/** A process whose event stream is not open by then is reported as failed (Node flags that break it). */
const START_TIMEOUT_MS = 30_000;

const GOALS = {
  idleMiB: 60,
  servicesMiB: 80,
  soakMiB: 120,
  recoveredMiB: 90,
  cpuRatio: 1.3,
  coldStartSeconds: 0.3,
};

/** How the Docker image runs node (Dockerfile ENV and ENTRYPOINT), measured beside Node's defaults. */
const IMAGE: Partial<Launch> = { nodeFlags: ['--optimize-for-size'] };

const commandLine = (how: Partial<Launch>) =>
  [
    ...Object.entries(how.env ?? {}).map(([k, v]) => `${k}=${String(v)}`),
    'node',
    ...(how.nodeFlags ?? []),
  ].join(' ');

interface Variant extends Partial<Launch> {
  readonly label: string;
}

/** What was tried to find what holds the RSS (etcd, idle and at COLD services). */
const VARIANTS: readonly Variant[] = [
  { label: 'Node defaults' },
  { label: 'MALLOC_ARENA_MAX=2', env: { MALLOC_ARENA_MAX: '2' } },
  { label: '--max-semi-space-size=1', nodeFlags: ['--max-semi-space-size=1'] },
  { label: '--max-old-space-size=64', nodeFlags: ['--max-old-space-size=64'] },
  { label: '--optimize-for-size', nodeFlags: ['--optimize-for-size'] },
  { label: '--single-threaded-gc', nodeFlags: ['--single-threaded-gc'] },
  { label: '--lite-mode', nodeFlags: ['--lite-mode'] },
  {
    label: '--max-semi-space-size=1 --optimize-for-size, MALLOC_ARENA_MAX=2',
    nodeFlags: ['--max-semi-space-size=1', '--optimize-for-size'],
    env: { MALLOC_ARENA_MAX: '2' },
  },
];

/** The first line, cut short: a crashed child's stderr can hold a whole inlined module. */
const oneLineError = (error: unknown) =>
  (error instanceof Error ? error.message : String(error)).split('\n')[0].slice(0, 300);

const round = (x: number, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits;
const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

interface Reading extends Memory, HeapSplit {}
async function reading(p: RegistrarProcess): Promise<Reading> {
  // RSS first: the scrape of /metrics allocates.
  const memory = p.memory();
  return { ...memory, ...(await p.heap()) };
}

/** Start `registrar` on the engine and the backend at `base`; resolves once its event stream is open. */
const launch = (engine: SyntheticEngine, backend: Backend, base: string, extra: Partial<Launch> = {}) =>
  launchOn(
    engine,
    {
      // No periodic resync: a full pass landing inside a measured batch would be charged to its events.
      args: [
        '--docker-host',
        engine.host,
        '--ip',
        '127.0.0.1',
        '--node-id',
        `bench-${base.slice(1)}`,
        '--resync',
        '0',
        backend.uri(base),
      ],
      ...extra,
    },
    START_TIMEOUT_MS,
  );

describe.each(BACKENDS)('process — %s', (name) => {
  let backend: Backend;
  let engine: SyntheticEngine;
  beforeAll(async () => {
    backend = await startBackend(name);
    engine = await startSyntheticEngine();
  });
  afterAll(async () => {
    await engine?.close();
    await backend?.raw.close();
    await backend?.close();
  });

  it(`idle RSS, and a cold start of ${COLD} services`, async () => {
    const idleRun = await launch(engine, backend, '/idle');
    await sleep(SETTLE_MS);
    const idle = await reading(idleRun.p);
    await idleRun.p.stop();

    for (let i = 0; i < COLD; i++) engine.add({ name: `cold${i}`, service: 'cold' });
    const cold = await launch(engine, backend, '/cold');
    const fromSubscribe = await converged(backend, '/cold', 'cold', COLD, cold.subscribedAt, 'cold start');
    const fromSpawn = (performance.now() - cold.t0) / 1000;
    const inspected = (engine.requests.lastInspectAt - cold.subscribedAt) / 1000;
    await sleep(SETTLE_MS);
    const atServices = await reading(cold.p);
    await cold.p.stop();
    record('process', name, {
      idle,
      services: COLD,
      atServices,
      coldStartSeconds: round(fromSubscribe),
      coldStartFromSpawnSeconds: round(fromSpawn),
      // Where the cold start goes: Docker's answers (one inspect per container) vs the registry writes after.
      coldStartLastInspectSeconds: round(inspected),
      goals: `idle ≤ ${GOALS.idleMiB} MiB, ${COLD} services ≤ ${GOALS.servicesMiB} MiB, cold start ≤ ${GOALS.coldStartSeconds} s`,
      idleGoalMet: idle.rssMiB <= GOALS.idleMiB,
      servicesGoalMet: atServices.rssMiB <= GOALS.servicesMiB,
      coldStartGoalMet: fromSubscribe <= GOALS.coldStartSeconds,
    });
  });
});

describe('process — etcd only', () => {
  let backend: Backend;
  let engine: SyntheticEngine;
  beforeAll(async () => {
    backend = await startBackend('etcd');
    engine = await startSyntheticEngine();
  });
  afterAll(async () => {
    await engine?.close();
    await backend?.raw.close();
    await backend?.close();
  });

  it(`per-event CPU time at 100 and ${SCALE} tracked services`, async () => {
    const base = '/cpu';
    const service = 'cpu';
    for (let i = 0; i < 100; i++) engine.add({ name: `cpu${i}`, service });
    const run = await launch(engine, backend, base);
    const p = run.p;
    await converged(backend, base, service, 100, run.subscribedAt, '100 services');
    let serial = 0;

    /** CPU seconds per event over batches of starts then dies on top of `tracked` services. */
    const measure = async (tracked: number) => {
      const perEvent: number[] = [];
      const wall: number[] = [];
      for (let b = 0; b < CPU_BATCHES; b++) {
        await sleep(500);
        const half = CPU_EVENTS / 2;
        const c0 = p.cpuSeconds();
        const t0 = performance.now();
        const ids = Array.from({ length: half }, () => engine.start({ name: `cpu-b${serial++}`, service }));
        await converged(backend, base, service, tracked + half, t0, 'batch starts');
        for (const id of ids) engine.die(id);
        await converged(backend, base, service, tracked, t0, 'batch dies');
        wall.push((performance.now() - t0) / 1000);
        perEvent.push((p.cpuSeconds() - c0) / CPU_EVENTS);
      }
      return { cpuMsPerEvent: round(median(perEvent) * 1000, 4), batchSeconds: round(median(wall)) };
    };
    // Idle CPU per second, so a reader can tell the events' share from timers' (heartbeats, stall check).
    const idleC0 = p.cpuSeconds();
    await sleep(2_000);
    const idleCpuMsPerSecond = round(((p.cpuSeconds() - idleC0) / 2) * 1000, 1);
    const small = await measure(100);

    // Grow to SCALE with start events, in chunks the engine and the bridge take without a backlog of minutes.
    for (let have = 100; have < SCALE;) {
      const chunk = Math.min(2_000, SCALE - have);
      const t0 = performance.now();
      for (let i = 0; i < chunk; i++) engine.start({ name: `cpu${have + i}`, service });
      have += chunk;
      await converged(backend, base, service, have, t0, `growing to ${SCALE}`);
    }
    await sleep(SETTLE_MS);
    const atScale = await reading(p);
    const large = await measure(SCALE);
    await p.stop();
    engine.clear();
    const ratio = round(large.cpuMsPerEvent / small.cpuMsPerEvent);
    record('process-cpu', 'etcd', {
      eventsPerBatch: CPU_EVENTS,
      batches: CPU_BATCHES,
      at100: small,
      [`at${SCALE}`]: large,
      scale: SCALE,
      ratio,
      idleCpuMsPerSecond,
      [`memoryAt${SCALE}`]: atScale,
      counted: '/proc/<pid>/stat utime + stime around each batch, median of the batches',
      goal: `≤ ${GOALS.cpuRatio}× per event at ${SCALE} vs 100`,
      goalMet: ratio <= GOALS.cpuRatio,
    });
  });

  const soak = async (label: string, how: Partial<Launch>) => {
    const base = `/soak-${label}`;
    const service = `soak-${label}`;
    for (let i = 0; i < COLD; i++) engine.add({ name: `${service}${i}`, service });
    const run = await launch(engine, backend, base, how);
    const p = run.p;
    await converged(backend, base, service, COLD, run.subscribedAt, 'soak cold start');
    await sleep(SETTLE_MS);
    const before = await reading(p);
    const c0 = p.cpuSeconds();
    const t0 = performance.now();
    let serial = 0;
    for (let done = 0; done < SOAK;) {
      const batch = Math.min(SOAK_BATCH, Math.ceil((SOAK - done) / 2));
      const ids = Array.from({ length: batch }, () =>
        engine.start({ name: `${service}-s${serial++}`, service }),
      );
      await converged(backend, base, service, COLD + batch, t0, 'soak starts');
      for (const id of ids) engine.die(id);
      await converged(backend, base, service, COLD, t0, 'soak dies');
      done += 2 * batch;
    }
    const soakSeconds = (performance.now() - t0) / 1000;
    const soakCpuMsPerEvent = ((p.cpuSeconds() - c0) / SOAK) * 1000;
    const afterSoak = await reading(p);
    // RSS falls as V8 shrinks its heap and the allocator returns pages; read it until under the goal.
    const r0 = performance.now();
    let recovered = p.memory();
    while (recovered.rssMiB > GOALS.recoveredMiB && performance.now() - r0 < SOAK_RECOVERY_S * 1000) {
      await sleep(2_000);
      recovered = p.memory();
    }
    const recoverySeconds = (performance.now() - r0) / 1000;
    const settled = await reading(p);
    await p.stop();
    engine.clear();
    record('process-soak', 'etcd', {
      node: commandLine(how),
      services: COLD,
      before,
      soakEvents: SOAK,
      soakSeconds: round(soakSeconds, 1),
      soakCpuMsPerEvent: round(soakCpuMsPerEvent, 3),
      afterSoak,
      recovered: { ...settled, rssMiB: recovered.rssMiB },
      recoverySeconds: round(recoverySeconds, 1),
      goal: `≤ ${GOALS.soakMiB} MiB right after, < ${GOALS.recoveredMiB} MiB within ${SOAK_RECOVERY_S} s; heap back at its plateau`,
      goalMet: afterSoak.rssMiB <= GOALS.soakMiB && recovered.rssMiB < GOALS.recoveredMiB,
      // No forced GC in the shipped process: heap used as it reports it, after a minute of idle GCs.
      heapGoalMet: settled.heapUsedMiB <= before.heapUsedMiB * 1.1 + 2,
    });
  };

  it.runIf(RUN_VARIANTS)(`RSS idle and at ${COLD} services under Node and allocator variants`, async () => {
    const rows: Record<string, unknown>[] = [];
    for (const [index, variant] of VARIANTS.entries()) {
      const base = `/variant${index}`;
      const service = `variant${index}`;
      let run: Awaited<ReturnType<typeof launch>>;
      try {
        run = await launch(engine, backend, base, variant);
      } catch (error) {
        rows.push({ variant: variant.label, failed: oneLineError(error) });
        continue;
      }
      const { p } = run;
      try {
        await sleep(SETTLE_MS);
        const idle = await reading(p);
        const c0 = p.cpuSeconds();
        const t0 = performance.now();
        for (let i = 0; i < COLD; i++) engine.start({ name: `${service}-${i}`, service });
        const seconds = await converged(
          backend,
          base,
          service,
          COLD,
          t0,
          `${variant.label}: ${COLD} services`,
          120_000,
        );
        const cpuMsPerStart = round(((p.cpuSeconds() - c0) / COLD) * 1000, 3);
        await sleep(SETTLE_MS);
        rows.push({
          variant: variant.label,
          idle,
          atServices: await reading(p),
          registerSeconds: round(seconds),
          cpuMsPerStart,
        });
      } catch (error) {
        rows.push({ variant: variant.label, failed: oneLineError(error) });
      } finally {
        await p.stop();
        engine.clear();
      }
    }
    record('process-variants', 'etcd', { services: COLD, variants: rows });
  });

  it(`RSS around a ${SOAK}-event churn soak, Node defaults`, () => soak('default', {}));
  it(`RSS around a ${SOAK}-event churn soak, as the Docker image runs node`, () => soak('image', IMAGE));
});
