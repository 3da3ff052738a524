// `registrar --swarm` as users run it on a manager: the built CLI as a child process on the synthetic engine's
// Swarm manager API (@registrar/core/testing's synthetic engine: services, tasks, nodes, networks, service/node events, over the
// unix socket), writing into the real etcd, ZooKeeper and the Consul double. Each figure stands beside the
// backend's own client writing the same number of entries at the reconciler's concurrency, in the same run.
// Assertions are about correctness only (the registry ends exact); timing goals are reported, never asserted.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS, countReaches, pool, sleep, startBackend, type Backend } from './backends.js';
import { launchOn, type Launched } from './registrar-process.js';
import { record } from './report.js';
import { startSyntheticEngine, type SyntheticEngine } from '@registrar/core/testing';

const SERVICES = Number(process.env.BENCH_SWARM_SERVICES ?? 40);
const REPLICAS = Number(process.env.BENCH_SWARM_REPLICAS ?? 50);
const TASKS = SERVICES * REPLICAS;
const NODES = 5;
const SCALE_FROM = 2;
const SCALE_TO = 50;
/** The new tasks reach `running` one after another over this long (a small Swarm starts 48 in about this). */
const SPREAD_MS = Number(process.env.BENCH_SWARM_SPREAD_MS ?? 1_000);
/** All-at-once variant: every new task is `running` this long after the update event. */
const AT_ONCE_AFTER_MS = 200;
/** The reconciler's writes in flight (the raw limit is measured at the same). */
const CONCURRENCY = 16;
/** `--ttl` of the failover's bridges: the dead leader's campaign lease expires within it. */
const FAILOVER_TTL = Number(process.env.BENCH_SWARM_FAILOVER_TTL ?? 5);
/** How long the registry must stay exact after converging (no late extra or missing entries). */
const HOLD_MS = 1_500;

const GOALS = { coldStartSeconds: 2, scaleSeconds: 1 };

const round = (x: number, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits;
const seconds = (t0: number) => (performance.now() - t0) / 1000;

/** A cluster of `NODES` nodes with SERVICES × REPLICAS running tasks named `<prefix>-NN`. */
async function cluster(prefix: string) {
  const engine = await startSyntheticEngine({ swarm: { nodes: NODES } });
  const swarm = engine.swarm!;
  const names = Array.from({ length: SERVICES }, (_, i) => `${prefix}-${String(i).padStart(2, '0')}`);
  const ids = names.map((name) => swarm.addService({ name, replicas: REPLICAS }));
  return { engine, swarm, names, ids };
}

/** `registrar --swarm --swarm-mode tasks --network <overlay>` on a manager of the engine (the first by default). */
function launchSwarm(
  engine: SyntheticEngine,
  backend: Backend,
  base: string,
  extra: readonly string[] = [],
  manager: { host: string; nextSubscriber(): Promise<void> } = engine,
): Promise<Launched> {
  return launchOn(manager, {
    args: [
      ...extra,
      '--docker-host',
      manager.host,
      '--swarm',
      '--swarm-mode',
      'tasks',
      '--network',
      engine.swarm!.network,
      // The default full inventory every 15 s stays on (it is Swarm mode's stall check); no extra resync.
      '--resync',
      '0',
      backend.uri(base),
    ],
  });
}

describe.each(BACKENDS)('swarm — %s', (name) => {
  let backend: Backend;
  /** The backend's own client: TASKS registration-shaped writes at CONCURRENCY, seconds and writes/s. */
  let raw: { putSeconds: number; putsPerSec: number; removesPerSec: number };
  // The Consul double runs in this process and a count is a listing of every service: polling it often
  // would take the event loop from the writes being measured.
  const pollMs = name === 'consul' ? 100 : 10;
  beforeAll(async () => {
    backend = await startBackend(name);
    let t0 = performance.now();
    await pool(TASKS, CONCURRENCY, (i) => backend.raw.put(i));
    const putSeconds = seconds(t0);
    t0 = performance.now();
    await pool(TASKS, CONCURRENCY, (i) => backend.raw.remove(i));
    const removeSeconds = seconds(t0);
    raw = {
      putSeconds: round(putSeconds),
      putsPerSec: Math.round(TASKS / putSeconds),
      removesPerSec: Math.round(TASKS / removeSeconds),
    };
  });
  afterAll(async () => {
    await backend?.raw.close();
    await backend?.close();
  });

  it(`cold start of ${TASKS} tasks (${SERVICES} services × ${REPLICAS} replicas on ${NODES} nodes)`, async () => {
    const base = '/swarm-cold';
    const { engine, swarm, names } = await cluster('cold');
    const w0 = await backend.writes();
    const run = await launchSwarm(engine, backend, base);
    try {
      const total = () => backend.total(base, names);
      const fromSpawn = await countReaches(total, TASKS, run.t0, 'swarm cold start', 120_000, pollMs);
      const fromSubscribe = (run.t0 + fromSpawn * 1000 - run.subscribedAt) / 1000;
      await sleep(HOLD_MS);
      expect(await total()).toBe(TASKS);
      const writes = (await backend.writes()) - w0;
      record('swarm-cold', name, {
        tasks: TASKS,
        services: SERVICES,
        nodes: NODES,
        coldStartSeconds: round(fromSpawn),
        coldStartFromSubscribeSeconds: round(fromSubscribe),
        // Where it goes: the manager's answer to the inventory (every task, ~2 KB each) vs what follows.
        inventoryAnsweredSeconds: round((swarm.requests.firstInventoryAt - run.t0) / 1000),
        serverWrites: writes,
        rawPutSeconds: raw.putSeconds,
        rawPutsPerSec: raw.putsPerSec,
        rawRemovesPerSec: raw.removesPerSec,
        swarmRequests: {
          services: swarm.requests.services,
          tasks: swarm.requests.tasks,
          nodes: swarm.requests.nodes,
          networks: swarm.requests.networks,
        },
        counted: 'registrar spawn → the registry holds exactly the tasks (polled every ' + `${pollMs} ms)`,
        goal: `≤ ${GOALS.coldStartSeconds} s`,
        goalMet: fromSpawn <= GOALS.coldStartSeconds,
      });
    } finally {
      await run.p.stop();
      await engine.close();
    }
  });

  it(`scale one service ${SCALE_FROM} → ${SCALE_TO} beside ${TASKS} tasks, spread over ${SPREAD_MS} ms and all at once`, async () => {
    const base = '/swarm-scale';
    const { engine, swarm, names } = await cluster('bg');
    const service = 'scale-web';
    const id = swarm.addService({ name: service, replicas: SCALE_FROM });
    const run = await launchSwarm(engine, backend, base);
    const entries = () => backend.entries(base, service);
    try {
      await countReaches(entries, SCALE_FROM, run.t0, 'scale: initial replicas', 120_000, pollMs);
      // The background services' cold start must be over too, or its writes are charged to the scale-up.
      await countReaches(
        () => backend.total(base, names),
        TASKS,
        run.t0,
        'scale: background',
        120_000,
        pollMs,
      );
      await sleep(3_000);

      /** Scale up, bring the new tasks to running `at(i)` ms after the update event; seconds to visible. */
      const scaleUp = async (at: (i: number) => number) => {
        const w0 = await backend.writes();
        const tasks0 = swarm.requests.tasks;
        const tEvent = performance.now();
        const created = swarm.scale(id, SCALE_TO);
        expect(created).toHaveLength(SCALE_TO - SCALE_FROM);
        let tLast = 0;
        await Promise.all(
          created.map(
            (task, i) =>
              new Promise<void>((resolve) =>
                setTimeout(() => {
                  swarm.setTaskState(task, 'running');
                  tLast = Math.max(tLast, performance.now());
                  resolve();
                }, at(i)),
              ),
          ),
        );
        expect(swarm.taskStates(id)).toEqual({ running: SCALE_TO });
        const fromLastRunning = await countReaches(entries, SCALE_TO, tLast, 'scale-up', 60_000, pollMs);
        const fromEvent = (tLast + fromLastRunning * 1000 - tEvent) / 1000;
        await sleep(HOLD_MS);
        expect(await entries()).toBe(SCALE_TO);
        return {
          fromLastRunningSeconds: round(fromLastRunning),
          fromUpdateEventSeconds: round(fromEvent),
          lastRunningAfterEventSeconds: round((tLast - tEvent) / 1000),
          serverWrites: (await backend.writes()) - w0,
          taskLists: swarm.requests.tasks - tasks0,
        };
      };
      /** Scale back down: surplus tasks shut down with the update event; seconds to the registry holding 2. */
      const scaleDown = async () => {
        const t0 = performance.now();
        swarm.scale(id, SCALE_FROM);
        const s = await countReaches(entries, SCALE_FROM, t0, 'scale-down', 60_000, pollMs);
        await sleep(HOLD_MS);
        expect(await entries()).toBe(SCALE_FROM);
        return round(s);
      };

      /** The background services stay exactly as they were: a scale of one service touches no other. */
      const backgroundExact = async (when: string) => {
        const background = await backend.total(base, names);
        if (background === TASKS) return;
        const counts = await Promise.all(names.map(async (n) => `${n}=${await backend.entries(base, n)}`));
        const warnings = run.p.stderr
          .join('')
          .split('\n')
          .filter((l) => /warn|error/i.test(l));
        throw new Error(
          `${when}: background entries ${background} of ${TASKS}: ${counts.filter((c) => !c.endsWith(`=${REPLICAS}`)).join(', ')}; ${warnings.slice(-5).join(' | ').slice(0, 2000)}`,
        );
      };
      await backgroundExact('before scaling');
      const spread = await scaleUp((i) => Math.round(((i + 1) * SPREAD_MS) / (SCALE_TO - SCALE_FROM)));
      await backgroundExact('after the spread scale-up');
      const downSeconds = await scaleDown();
      await backgroundExact('after the scale-down');
      await sleep(3_000);
      const atOnce = await scaleUp(() => AT_ONCE_AFTER_MS);
      await backgroundExact('after the all-at-once scale-up');
      record('swarm-scale', name, {
        from: SCALE_FROM,
        to: SCALE_TO,
        backgroundTasks: TASKS,
        spreadMs: SPREAD_MS,
        spread,
        atOnceAfterMs: AT_ONCE_AFTER_MS,
        atOnce,
        scaleDownSeconds: downSeconds,
        rawPutsPerSec: raw.putsPerSec,
        rawSecondsFor48Puts: round((SCALE_TO - SCALE_FROM) / raw.putsPerSec),
        counted: 'the last new task running in the API → all of them visible in the registry',
        goal: `≤ ${GOALS.scaleSeconds} s`,
        goalMet:
          spread.fromLastRunningSeconds <= GOALS.scaleSeconds &&
          atOnce.fromLastRunningSeconds <= GOALS.scaleSeconds,
      });
    } finally {
      await run.p.stop();
      await engine.close();
    }
  });

  it(`leader failover: two managers' bridges over ${TASKS} tasks, the leader SIGKILLed`, async () => {
    const probe = backend.registry({ nodeId: 'probe' });
    const elects = typeof probe.elect === 'function';
    await probe.close();
    if (!elects) {
      // The bridge would write unconditionally (and warn): two bridges, no failover to measure.
      record('swarm-failover', name, { supported: false, why: `the ${name} adapter has no elect()` });
      return;
    }
    const base = '/swarm-failover';
    const { engine, swarm, names, ids } = await cluster('fo');
    const ttl = ['--ttl', String(FAILOVER_TTL)];
    const a = await launchSwarm(engine, backend, base, ttl);
    const second = await engine.openManager(1);
    let b: Launched | undefined;
    let entryWrites: Awaited<ReturnType<Backend['watchWrites']>> | undefined;
    try {
      const total = () => backend.total(base, names);
      await countReaches(total, TASKS, a.t0, 'failover: the first bridge', 120_000, pollMs);
      b = await launchSwarm(engine, backend, base, ttl, second);
      const leading = async (p: Launched) => (await p.p.metric('registrar_leader')) ?? 0;
      // The second bridge stands by once its inventory is in: the first one leads, the second follows.
      await sleep(3_000);
      expect([await leading(a), await leading(b)]).toEqual([1, 0]);

      const w0 = await backend.writes();
      // Entry writes only: the election's own keys, sessions or locks are the backend's bookkeeping.
      entryWrites = await backend.watchWrites(base);
      let fewest = TASKS;
      const tKill = performance.now();
      await a.p.kill();
      let elected = NaN;
      while (Number.isNaN(elected)) {
        if (seconds(tKill) > 60) throw new Error('failover: the second bridge was not elected within 60 s');
        fewest = Math.min(fewest, await total());
        if ((await leading(b)) === 1) elected = seconds(tKill);
        else await sleep(pollMs);
      }
      const exact = await countReaches(total, TASKS, tKill, 'failover: exact', 60_000, pollMs);
      // Whatever the new leader's first pass writes lands within this.
      await sleep(HOLD_MS + 2_000);
      expect(await total()).toBe(TASKS);
      const serverWrites = (await backend.writes()) - w0;
      const unchangedWrites = await entryWrites.count();

      // The new leader writes what changes: one service scaled by 2.
      const tScale = performance.now();
      for (const task of swarm.scale(ids[0]!, REPLICAS + 2)) swarm.setTaskState(task, 'running');
      const newLeaderWrites = await countReaches(
        total,
        TASKS + 2,
        tScale,
        'failover: new leader',
        60_000,
        pollMs,
      );
      record('swarm-failover', name, {
        supported: true,
        tasks: TASKS,
        ttlSeconds: FAILOVER_TTL,
        electedSeconds: round(elected),
        exactSeconds: round(Math.max(elected, exact)),
        fewestEntriesDuringFailover: fewest,
        unchangedWrites,
        serverWritesDuringFailover: serverWrites,
        newLeaderScaleSeconds: round(newLeaderWrites),
        rawPutsPerSec: raw.putsPerSec,
        counted:
          "SIGKILL of the leader → the other reports registrar_leader 1 / the registry holds exactly the tasks; entry writes: etcd a watch on the prefix, ZooKeeper entry nodes' czxid/mzxid, Consul register/deregister PUTs (election keys, sessions and locks left out); server writes include them",
        goal: `0 writes for unchanged entries, exact within TTL + 2 s (${FAILOVER_TTL + 2} s)`,
        goalMet: unchangedWrites === 0 && fewest === TASKS && Math.max(elected, exact) <= FAILOVER_TTL + 2,
      });
    } finally {
      entryWrites?.close();
      await a.p.kill();
      await b?.p.stop();
      await engine.close();
    }
  });
});
