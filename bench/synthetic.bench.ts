// Throughput and resync at scale: the synthetic engine drives the real pipeline into each real backend, next to
// the backend's own client doing the same writes at the same concurrency (the reconciler's 16 in flight).
import { afterAll, beforeAll, describe, it } from 'vitest';
import { BACKENDS, pool, sleep, startBackend, waitUntil, type Backend } from './backends.js';
import { SyntheticDocker } from '@registrar/core/testing';
import { startPipeline } from './pipeline.js';
import { record } from './report.js';

/** Lifecycle events for the throughput run: half starts, half dies. */
const EVENTS = Number(process.env.BENCH_EVENTS ?? 10_000);
const CONTAINERS = Number(process.env.BENCH_CONTAINERS ?? 1_000);
const CONCURRENCY = 16;
const round = (x: number) => Math.round(x * 10) / 10;
const seconds = (t0: number) => (performance.now() - t0) / 1000;

describe.each(BACKENDS)('%s', (name) => {
  let backend: Backend;
  beforeAll(async () => {
    backend = await startBackend(name);
  });
  afterAll(async () => {
    await backend?.raw.close();
    await backend?.close();
  });

  it(`throughput over ${EVENTS} container lifecycle events`, async () => {
    const n = Math.floor(EVENTS / 2);
    // The backend's limit: its own client, same writes (n registrations, n removals), same concurrency.
    const rawW0 = await backend.writes();
    let t0 = performance.now();
    await pool(n, CONCURRENCY, (i) => backend.raw.put(i));
    const rawPutS = seconds(t0);
    t0 = performance.now();
    await pool(n, CONCURRENCY, (i) => backend.raw.remove(i));
    const rawRemoveS = seconds(t0);
    const rawWrites = (await backend.writes()) - rawW0;

    const docker = new SyntheticDocker();
    const registry = backend.registry({ nodeId: 'tput' });
    const run = startPipeline(docker, registry, 'tput');
    await run.inventoried();
    await sleep(200);
    const w0 = await backend.writes();
    // The engine's containers exist up front; the clock runs from the first `start` event.
    const ids = Array.from({ length: n }, (_, i) => docker.add({ name: `t${i}` }));
    t0 = performance.now();
    for (const id of ids) docker.emit(id, 'start');
    await waitUntil('all registered', () => run.counters.registered >= n, 480_000);
    const registerS = seconds(t0);
    const t1 = performance.now();
    for (const id of ids) docker.die(id);
    await waitUntil('all deregistered', () => run.counters.deregistered >= n, 480_000);
    const deregisterS = seconds(t1);
    const totalS = seconds(t0);
    const writes = (await backend.writes()) - w0;
    await run.bridge.stop({ deregister: true });
    docker.close();

    const rawRate = (2 * n) / (rawPutS + rawRemoveS);
    const rate = (2 * n) / totalS;
    record('throughput', name, {
      events: 2 * n,
      concurrency: CONCURRENCY,
      opsPerSec: round(rate),
      registrationsPerSec: round(n / registerS),
      deregistrationsPerSec: round(n / deregisterS),
      rawWritesPerSec: round(rawRate),
      rawPutsPerSec: round(n / rawPutS),
      rawRemovesPerSec: round(n / rawRemoveS),
      ratio: Math.round((rate / rawRate) * 1000) / 1000,
      goal: '≥ 0.95 × raw',
      goalMet: rate >= 0.95 * rawRate,
      serverWrites: writes,
      rawServerWrites: rawWrites,
      passes: run.counters.passes,
      errors: run.counters.errors,
    });
  });

  it(`resync at scale with ${CONTAINERS} containers`, async () => {
    const docker = new SyntheticDocker();
    const ids = Array.from({ length: CONTAINERS }, (_, i) => docker.add({ name: `r${i}` }));

    // Cold start into an empty registry.
    const w0 = await backend.writes();
    const t0 = performance.now();
    const run = startPipeline(docker, backend.registry({ nodeId: 'resync' }), 'resync');
    await waitUntil('cold start converged', () => run.counters.registered >= CONTAINERS);
    const coldS = seconds(t0);
    await sleep(500);
    const coldWrites = (await backend.writes()) - w0;

    // A resync when nothing changed: re-list Docker and the registry, re-inspect everything.
    const converge = async (expectRegistered: number) => {
      const passes = run.counters.passes;
      const inspects = docker.inspects;
      const w = await backend.writes();
      const t = performance.now();
      run.bridge.resync();
      await waitUntil(
        'resync converged',
        () =>
          run.counters.passes > passes &&
          docker.inspects >= inspects + CONTAINERS &&
          run.counters.registered >= expectRegistered,
      );
      const s = seconds(t);
      await sleep(500);
      return { seconds: Math.round(s * 1000) / 1000, writes: (await backend.writes()) - w };
    };
    const idle = await converge(run.counters.registered);

    // 10 % drift behind the bridge's back, seen only by the resync's re-inspection: each port now published
    // on another host port, which every layout stores (tags would not do: ZooKeeper's default payload has
    // none, so nothing there would need rewriting).
    const drifted = Math.round(CONTAINERS / 10);
    for (const id of ids.slice(0, drifted)) {
      docker.change(id, (info) => {
        for (const bindings of Object.values(info.NetworkSettings.Ports ?? {})) {
          for (const binding of bindings ?? []) binding.HostPort = String(Number(binding.HostPort) + 1000);
        }
      });
    }
    const drift = await converge(run.counters.registered + drifted);

    await run.bridge.stop({ deregister: true });
    docker.close();
    record('resync', name, {
      containers: CONTAINERS,
      coldStartSeconds: Math.round(coldS * 1000) / 1000,
      coldStartWrites: coldWrites,
      idleResyncSeconds: idle.seconds,
      idleResyncWrites: idle.writes,
      idleGoalMet: idle.writes === 0,
      driftedContainers: drifted,
      driftResyncSeconds: drift.seconds,
      driftResyncWrites: drift.writes,
      // At most one server write per drifted service: etcd counts one revision per transaction, and the bridge
      // sends a pass's writes as transactions, so fewer is the batching at work, not writes left out (the
      // wait above saw every drifted service registered).
      driftGoalMet: drift.writes > 0 && drift.writes <= drifted,
      errors: run.counters.errors,
    });
  });
});
