// The process users run: the built `registrar` CLI as a child process, run as the image runs it (node flags and
// runtime environment read from the Dockerfile, bench/shipped.ts), watching the synthetic Docker engine over its
// unix socket and writing into the real etcd, ZooKeeper and the Consul double. Memory is the child's RssAnon and
// VmRSS from /proc, CPU its utime + stime, visibility the entries the backend itself holds. Every figure stands
// beside its limit measured in the same run: the backend's own client, a lean reference cold start, or a fixed
// bound where the goal is one.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, it, onTestFinished } from 'vitest';
import { BACKENDS, converged, pool, sleep, startBackend, type Backend } from './backends.js';
import { leanColdStart } from './lean-reference.js';
import {
  launchOn,
  type HeapSplit,
  type Launch,
  type Memory,
  type RegistrarProcess,
} from './registrar-process.js';
import { record, stats } from './report.js';
import { shipped } from './shipped.js';
import { startSyntheticEngine, type SyntheticEngine } from '@registrar/core/testing';

const COLD = Number(process.env.BENCH_CONTAINERS ?? 1_000);
/** Services of the idle reading. */
const IDLE_SERVICES = 30;
/** Containers started at once in the burst. */
const BURST = Number(process.env.BENCH_BURST ?? 2_000);
/** 20,000 events: the goal's soak. */
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
/** How long a process is left alone before its memory is read (idle, at COLD services). */
const SETTLE_MS = 3_000;
/** How long after the soak's last event its memory is read. */
const AFTER_SOAK_MS = 10_000;
/** A process whose event stream is not open by then is reported as failed (Node flags that break it). */
const START_TIMEOUT_MS = 30_000;
const IN_FLIGHT = 16;

/** The issue's goals: private memory (RssAnon) and RSS idle / at COLD / after the soak, and the rest. */
const GOALS = {
  anonMiB: { idle: 30, services: 60, soak: 70 },
  rssMiB: { idle: 80, services: 110, soak: 120 },
  cpuRatio: 1.3,
  coldStartRatio: 1.2,
  spawnToStreamSeconds: 0.15,
  burstRatio: { etcd: 3, zookeeper: 2, consul: 0.95 } as Record<string, number>,
};

const SHIPPED = shipped();
const NODE_DEFAULTS: Partial<Launch> & { label: string } = { label: 'node' };

interface Variant extends Partial<Launch> {
  readonly label: string;
}

/** What was tried to find what holds the memory (etcd, idle and at COLD services). */
const VARIANTS: readonly Variant[] = [
  { label: 'Node defaults (glibc defaults, no flags)' },
  { ...SHIPPED, label: `as shipped: ${SHIPPED.label}` },
  { label: 'MALLOC_ARENA_MAX=1 only', env: { MALLOC_ARENA_MAX: '1' } },
  { ...SHIPPED, label: 'as shipped + --optimize-for-size', nodeFlags: ['--optimize-for-size'] },
  { ...SHIPPED, label: 'as shipped + --max-semi-space-size=1', nodeFlags: ['--max-semi-space-size=1'] },
  { ...SHIPPED, label: 'as shipped + --single-threaded-gc', nodeFlags: ['--single-threaded-gc'] },
];

/** The first line, cut short: a crashed child's stderr can hold a whole inlined module. */
const oneLineError = (error: unknown) =>
  (error instanceof Error ? error.message : String(error)).split('\n')[0].slice(0, 300);

const round = (x: number, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits;
const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

interface Reading extends Memory, HeapSplit {}
async function reading(p: RegistrarProcess): Promise<Reading> {
  // /proc first: the scrape of /metrics allocates.
  const memory = p.memory();
  return { ...memory, ...(await p.heap()) };
}

/** Start `registrar` on the engine and the backend at `base`; resolves once its event stream is open. */
const launch = (
  engine: SyntheticEngine,
  backend: Backend,
  base: string,
  how: Partial<Launch> = SHIPPED,
  extraArgs: readonly string[] = [],
) =>
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
        // Each run leaves the registry as it found it (the stop is not timed): a Consul agent holding the
        // last run's thousands of services answers the next one slower.
        '--deregister-on-exit',
        ...extraArgs,
        backend.uri(base),
      ],
      ...(how.nodeFlags !== undefined && { nodeFlags: how.nodeFlags }),
      ...(how.env !== undefined && { env: how.env }),
    },
    START_TIMEOUT_MS,
  );

/** The engine's list and inspect requests from now until the returned function is called. */
const requestsDuring = (engine: SyntheticEngine) => {
  const { list, inspect } = engine.requests;
  return () => ({ list: engine.requests.list - list, inspect: engine.requests.inspect - inspect });
};

/** Prepare `count` containers `<prefix>-<n>` of `service` (documents built now, outside any timed region). */
const prepare = (engine: SyntheticEngine, service: string, count: number, from = 0, prefix = service) =>
  Array.from({ length: count }, (_, i) => engine.prepare({ name: `${prefix}-${from + i}`, service }));

describe('process — start-up', () => {
  it('module by module: load time and memory of each dependency in a fresh node', () => {
    // Each figure is one module imported alone into a fresh `node` (its own dependencies included, so shared
    // ones count in each): what loading it costs a process that did not need it.
    const pkg = (name: string) => fileURLToPath(new URL(`../packages/${name}/`, import.meta.url));
    const modules: [string, string][] = [
      ['(bare node)', 'cli'],
      ['commander', 'cli'],
      ['pino', 'cli'],
      ['prom-client', 'cli'],
      ['rxjs', 'cli'],
      ['@registrar/core', 'cli'],
      ['@registrar/core/internal', 'cli'],
      ['dockerode', 'cli'],
      ['etcd3', 'etcd'],
      ['node-zookeeper-client', 'zookeeper'],
      ['undici', 'consul'],
      ['@registrar/etcd', 'cli'],
      ['@registrar/zookeeper', 'cli'],
      ['@registrar/consul', 'cli'],
      ['./dist/run.js', 'cli'],
    ];
    const probe = (specifier: string) => `
      const kib = (f) => Number(new RegExp('^' + f + ':\\\\s+(\\\\d+)', 'm').exec(require('node:fs').readFileSync('/proc/self/status', 'utf8'))[1]);
      const a0 = kib('RssAnon'), r0 = kib('VmRSS'), c0 = process.cpuUsage(), t0 = performance.now();
      ${specifier === '(bare node)' ? '' : `await import(${JSON.stringify(specifier)});`}
      const t1 = performance.now(), c1 = process.cpuUsage(c0);
      console.log(JSON.stringify({ ms: t1 - t0, cpuMs: (c1.user + c1.system) / 1000, anonKiB: kib('RssAnon') - a0, rssKiB: kib('VmRSS') - r0, bootMs: t0 }));`;
    const rows = modules.map(([specifier, dir]) => {
      const samples = Array.from({ length: 3 }, () => {
        const out = execFileSync(
          process.execPath,
          [
            ...(SHIPPED.nodeFlags ?? []),
            '--input-type=commonjs',
            '-e',
            `(async () => {${probe(specifier)}})()`,
          ],
          { cwd: pkg(dir), encoding: 'utf8', env: { ...process.env, ...SHIPPED.env, NODE_OPTIONS: '' } },
        );
        return JSON.parse(out) as {
          ms: number;
          cpuMs: number;
          anonKiB: number;
          rssKiB: number;
          bootMs: number;
        };
      });
      const pick = (k: 'ms' | 'cpuMs' | 'anonKiB' | 'rssKiB' | 'bootMs') => median(samples.map((s) => s[k]));
      return {
        module: specifier,
        loadMs: round(pick('ms'), 1),
        cpuMs: round(pick('cpuMs'), 1),
        anonMiB: round(pick('anonKiB') / 1024, 1),
        rssMiB: round(pick('rssKiB') / 1024, 1),
        nodeBootMs: round(pick('bootMs'), 1),
      };
    });
    record('process-modules', 'all', { node: SHIPPED.label, modules: rows });
  });
});

describe.each(BACKENDS)('process — %s', (name) => {
  let backend: Backend;
  let engine: SyntheticEngine;
  const spawnToStream: number[] = [];
  beforeAll(async () => {
    backend = await startBackend(name);
    engine = await startSyntheticEngine();
    if (SHIPPED.env?.NODE_COMPILE_CACHE !== undefined) {
      // The image fills its compile cache when it is built: the first run here does the same.
      const warm = await launch(engine, backend, '/warm');
      await warm.p.stop();
    }
  });
  // A test that failed half-way leaves no containers to the next.
  afterEach(() => engine?.clear());
  afterAll(async () => {
    await engine?.close();
    await backend?.raw.close();
    await backend?.close();
  });

  it(`memory idle with ${IDLE_SERVICES} services, and a cold start of ${COLD}`, async () => {
    for (let i = 0; i < IDLE_SERVICES; i++) engine.add({ name: `idle${i}`, service: 'idle' });
    const idleRun = await launch(engine, backend, '/idle');
    spawnToStream.push((idleRun.subscribedAt - idleRun.t0) / 1000);
    onTestFinished(() => idleRun.p.stop());
    await converged(backend, '/idle', 'idle', IDLE_SERVICES, idleRun.subscribedAt, 'idle services');
    await sleep(SETTLE_MS);
    const idle = await reading(idleRun.p);
    await idleRun.p.stop();
    engine.clear();

    for (let i = 0; i < COLD; i++) engine.add({ name: `cold${i}`, service: 'cold' });
    const coldRequests = requestsDuring(engine);
    const cold = await launch(engine, backend, '/cold');
    spawnToStream.push((cold.subscribedAt - cold.t0) / 1000);
    onTestFinished(() => cold.p.stop());
    const c0 = cold.p.cpuSeconds();
    const fromSubscribe = await converged(backend, '/cold', 'cold', COLD, cold.subscribedAt, 'cold start');
    const coldCpu = cold.p.cpuSeconds() - c0;
    const fromSpawn = (performance.now() - cold.t0) / 1000;
    const inspected = (engine.requests.lastInspectAt - cold.subscribedAt) / 1000;
    const coldDocker = coldRequests();
    await sleep(SETTLE_MS);
    const atServices = await reading(cold.p);
    await cold.p.stop();

    // The limit, same engine, same containers, same backend, right after.
    const reference = await leanColdStart(engine.socketPath, backend.raw, 40_000);
    engine.clear();

    // The same cold start with --labels-only (as many containers, of a service of their own).
    for (let i = 0; i < COLD; i++) engine.add({ name: `lo-cold${i}`, service: 'locold' });
    const loColdRequests = requestsDuring(engine);
    const loCold = await launch(engine, backend, '/locold', SHIPPED, ['--labels-only']);
    onTestFinished(() => loCold.p.stop());
    const lc0 = loCold.p.cpuSeconds();
    const loColdSeconds = await converged(
      backend,
      '/locold',
      'locold',
      COLD,
      loCold.subscribedAt,
      'labels-only cold start',
    );
    const loColdCpu = loCold.p.cpuSeconds() - lc0;
    const loColdDocker = loColdRequests();
    await loCold.p.stop();
    engine.clear();

    // A burst: BURST containers start at once into a ready process that tracks none.
    const burstRun = await launch(engine, backend, '/burst');
    spawnToStream.push((burstRun.subscribedAt - burstRun.t0) / 1000);
    onTestFinished(() => burstRun.p.stop());
    await burstRun.p.ready();
    const ids = prepare(engine, 'burst', BURST);
    const burstRequests = requestsDuring(engine);
    const b0 = burstRun.p.cpuSeconds();
    const t0 = performance.now();
    for (const id of ids) engine.startPrepared(id);
    const burstSeconds = await converged(backend, '/burst', 'burst', BURST, t0, 'burst', 300_000);
    const burstCpu = burstRun.p.cpuSeconds() - b0;
    const burstDocker = burstRequests();
    await burstRun.p.stop();
    // What inspecting the burst's containers costs alone, the lean way: no bridge that inspects every new
    // container (as the contract's SERVICE_* environment variables require) can be faster than this.
    const burstInspectFloor = (await leanColdStart(engine.socketPath, backend.raw, 42_000))
      .listInspectSeconds;
    engine.clear();

    // The same burst with --labels-only.
    const loBurstRun = await launch(engine, backend, '/loburst', SHIPPED, ['--labels-only']);
    onTestFinished(() => loBurstRun.p.stop());
    await loBurstRun.p.ready();
    const loIds = prepare(engine, 'loburst', BURST);
    const loBurstRequests = requestsDuring(engine);
    const lb0 = loBurstRun.p.cpuSeconds();
    const lt0 = performance.now();
    for (const id of loIds) engine.startPrepared(id);
    const loBurstSeconds = await converged(
      backend,
      '/loburst',
      'loburst',
      BURST,
      lt0,
      'labels-only burst',
      300_000,
    );
    const loBurstCpu = loBurstRun.p.cpuSeconds() - lb0;
    const loBurstDocker = loBurstRequests();
    await loBurstRun.p.stop();
    engine.clear();
    // The limit: the backend's own client, one write per entry, 16 in flight.
    const r0 = performance.now();
    await pool(BURST, IN_FLIGHT, (i) => backend.raw.put(i));
    const rawBurstSeconds = (performance.now() - r0) / 1000;
    await pool(BURST, IN_FLIGHT, (i) => backend.raw.remove(i));
    const burstRatio = rawBurstSeconds / burstSeconds;

    record('process', name, {
      node: SHIPPED.label,
      idleServices: IDLE_SERVICES,
      idle,
      services: COLD,
      atServices,
      memoryGoals: { anonMiB: GOALS.anonMiB, rssMiB: GOALS.rssMiB },
      coldStartSeconds: round(fromSubscribe),
      coldStartCpuSeconds: round(coldCpu),
      coldStartFromSpawnSeconds: round(fromSpawn),
      // Where the cold start goes: Docker's answers (one inspect per container) vs the registry writes after.
      coldStartLastInspectSeconds: round(inspected),
      coldStartReference: {
        ...reference,
        listInspectSeconds: round(reference.listInspectSeconds),
        writeSeconds: round(reference.writeSeconds),
        totalSeconds: round(reference.totalSeconds),
      },
      coldStartRatio: round(fromSubscribe / reference.totalSeconds, 2),
      coldStartGoalMet: fromSubscribe <= GOALS.coldStartRatio * reference.totalSeconds,
      burst: BURST,
      burstSeconds: round(burstSeconds),
      burstCpuSeconds: round(burstCpu),
      rawBurstSeconds: round(rawBurstSeconds),
      burstRatio: round(burstRatio, 2),
      burstGoal: GOALS.burstRatio[name],
      burstGoalMet: burstRatio >= GOALS.burstRatio[name],
      burstInspectFloorSeconds: round(burstInspectFloor),
      coldStartDockerRequests: coldDocker,
      burstDockerRequests: burstDocker,
      labelsOnly: {
        coldStartSeconds: round(loColdSeconds),
        coldStartCpuSeconds: round(loColdCpu),
        coldStartRatio: round(loColdSeconds / reference.totalSeconds, 2),
        coldStartGoalMet: loColdSeconds <= GOALS.coldStartRatio * reference.totalSeconds,
        coldStartDockerRequests: loColdDocker,
        burstSeconds: round(loBurstSeconds),
        burstCpuSeconds: round(loBurstCpu),
        burstRatio: round(rawBurstSeconds / loBurstSeconds, 2),
        burstGoalMet: rawBurstSeconds / loBurstSeconds >= GOALS.burstRatio[name],
        burstDockerRequests: loBurstDocker,
      },
      // The best ratio a bridge that inspects each container can reach: the raw writes over that floor.
      burstRatioCeiling: round(rawBurstSeconds / burstInspectFloor, 2),
      spawnToStreamSeconds: stats(spawnToStream.map((s) => round(s * 1000, 1))),
      spawnToStreamGoalMet: median(spawnToStream) <= GOALS.spawnToStreamSeconds,
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
  // A test that failed half-way leaves no containers to the next.
  afterEach(() => engine?.clear());
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
    // A failed wait must not leave the process running after the test.
    onTestFinished(() => p.stop());
    await converged(backend, base, service, 100, run.subscribedAt, '100 services');
    let serial = 0;

    /** CPU seconds per event over batches of starts then dies on top of `tracked` services. */
    const measure = async (tracked: number) => {
      const perEvent: number[] = [];
      const wall: number[] = [];
      for (let b = 0; b < CPU_BATCHES; b++) {
        const half = CPU_EVENTS / 2;
        const ids = prepare(engine, service, half, serial, `${service}-b`);
        serial += half;
        await sleep(500);
        const c0 = p.cpuSeconds();
        const t0 = performance.now();
        for (const id of ids) engine.startPrepared(id);
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
      const ids = Array.from({ length: chunk }, (_, i) =>
        engine.prepare({ name: `cpu${have + i}`, service }),
      );
      const t0 = performance.now();
      for (const id of ids) engine.startPrepared(id);
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
      node: SHIPPED.label,
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

  const soak = async (label: string, how: Partial<Launch> & { label: string }) => {
    const base = `/soak-${label}`;
    const service = `soak-${label}`;
    for (let i = 0; i < COLD; i++) engine.add({ name: `${service}${i}`, service });
    const run = await launch(engine, backend, base, how);
    const p = run.p;
    onTestFinished(() => p.stop());
    await converged(backend, base, service, COLD, run.subscribedAt, 'soak cold start');
    await sleep(SETTLE_MS);
    const before = await reading(p);
    let soakSeconds = 0;
    let cpuSeconds = 0;
    let serial = 0;
    for (let done = 0; done < SOAK;) {
      const batch = Math.min(SOAK_BATCH, Math.ceil((SOAK - done) / 2));
      const ids = prepare(engine, service, batch, serial, `${service}-s`);
      serial += batch;
      const c0 = p.cpuSeconds();
      const t0 = performance.now();
      for (const id of ids) engine.startPrepared(id);
      await converged(backend, base, service, COLD + batch, t0, 'soak starts');
      for (const id of ids) engine.die(id);
      await converged(backend, base, service, COLD, t0, 'soak dies');
      soakSeconds += (performance.now() - t0) / 1000;
      cpuSeconds += p.cpuSeconds() - c0;
      done += 2 * batch;
    }
    const rightAfter = await reading(p);
    await sleep(AFTER_SOAK_MS);
    const afterWait = await reading(p);
    await p.stop();
    engine.clear();
    const met = (r: Reading) => r.anonMiB <= GOALS.anonMiB.soak && r.rssMiB <= GOALS.rssMiB.soak;
    record('process-soak', 'etcd', {
      node: how.label,
      shipped: how === SHIPPED,
      services: COLD,
      before,
      soakEvents: SOAK,
      soakSeconds: round(soakSeconds, 1),
      soakCpuMsPerEvent: round((cpuSeconds / SOAK) * 1000, 3),
      rightAfter,
      afterWaitSeconds: AFTER_SOAK_MS / 1000,
      afterWait,
      goal: `${AFTER_SOAK_MS / 1000} s after: RssAnon ≤ ${GOALS.anonMiB.soak} MiB, RSS ≤ ${GOALS.rssMiB.soak} MiB`,
      goalMet: met(afterWait),
    });
  };

  it.runIf(RUN_VARIANTS)(
    `memory idle and at ${COLD} services under Node and allocator variants`,
    async () => {
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
          const ids = prepare(engine, service, COLD);
          const c0 = p.cpuSeconds();
          const t0 = performance.now();
          for (const id of ids) engine.startPrepared(id);
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
    },
  );

  it(`memory around a ${SOAK}-event churn soak, as shipped`, () => soak('shipped', SHIPPED));
  it(`memory around a ${SOAK}-event churn soak, Node defaults`, () => soak('default', NODE_DEFAULTS));
  it(`memory around a ${SOAK}-event churn soak, as shipped + --optimize-for-size`, () =>
    soak('optsize', {
      ...SHIPPED,
      label: `${SHIPPED.label} --optimize-for-size`,
      nodeFlags: ['--optimize-for-size'],
    }));
});
