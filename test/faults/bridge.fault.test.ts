// Bridge-side faults, for every backend: kill -9 and restart amid churn (adopt without flapping, remove what
// died meanwhile), and two bridges of different nodes sharing one registry scope.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { until } from '@registrar/core/testing';
import { startBackend, BACKENDS, type Backend } from '../harness/backends.js';
import { faultScope, idsOf } from './common.js';

/** Cycles per churn loop: 4 loops × 32 × ~8 events (create, connect, start, kill, die, disconnect, stop,
 * destroy) ≈ 1,000 Docker events. */
const CHURN_CYCLES = Number(process.env.FAULT_CHURN_CYCLES ?? 32);

describe.each(BACKENDS)('%s', (name) => {
  let backend: Backend;
  let t: ReturnType<typeof faultScope>;
  beforeAll(async () => {
    backend = await startBackend(name);
  });
  afterEach(async () => {
    await t.cleanup();
  });
  afterAll(async () => {
    await backend?.close();
  });

  const converged = (what: string, expected: string[], timeoutMs?: number) =>
    t.converged(backend, what, expected, timeoutMs);

  it('kill -9 and restart: adopts surviving entries without flapping and removes what died meanwhile', async () => {
    t = faultScope(name);
    // A TTL long enough to outlive the restart: that grace period is what lets the new process adopt.
    const args = ['--cleanup', '--ttl', '10'];
    const first = t.bridge(backend.uri(t.scope), t.node, args);
    const a = await t.container('a');
    const b = await t.container('b');
    const c = await t.container('c');
    await converged('three registered', idsOf(t.node, [a.name, b.name, c.name]));
    await first.kill('SIGKILL');

    await c.container.stop({ t: 0 });
    const d = await t.container('d');
    // Watch the survivors from now on: they must never disappear while the new process takes over.
    const survivors = idsOf(t.node, [a.name, b.name]);
    let flapped: string[] = [];
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const ids = await backend.ids(t.scope, t.service);
        const missing = survivors.filter((id) => !ids.includes(id));
        if (missing.length > 0) flapped = missing;
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const restarted = Date.now();
    t.bridge(backend.uri(t.scope), t.node, args);
    await converged('restarted bridge converged', idsOf(t.node, [a.name, b.name, d.name]));
    console.log(`[measure] ${name}: restarted bridge converged in ${Date.now() - restarted} ms`);
    watching = false;
    await watcher;
    // ZooKeeper ties ephemeral nodes to the dead process's session: a new session must re-create them.
    if (name !== 'zookeeper') expect(flapped).toEqual([]);
  });

  it('two nodes on one registry never touch each other’s entries through churn, cleanup and resync', async () => {
    t = faultScope(name);
    const nodeA = `${t.node}-a`;
    const nodeB = `${t.node}-b`;
    const args = ['--cleanup', '--resync', '1', '--ttl', '30'];
    const bridgeA = t.bridge(backend.uri(t.scope), nodeA, args);
    const bridgeB = t.bridge(backend.uri(t.scope), nodeB, args);
    const fixed = [await t.container('fixed'), await t.container('fixed')];
    const names = fixed.map((f) => f.name);
    const both = [...idsOf(nodeA, names), ...idsOf(nodeB, names)];
    await converged('both nodes registered', both);
    const before = await backend.stamps(t.scope, t.service);

    // Both bridges see every container and register it under their own node. Through the churn, with
    // cleanup and a resync every second, the entries of the fixed containers must never be written again:
    // not by their owner (nothing changed) and above all not by the other node.
    const passes = (b: typeof bridgeA) => b.logs.filter((l) => l.msg === 'reconcile pass').length;
    const passesBefore = [passes(bridgeA), passes(bridgeB)];
    const churnStarted = Date.now();
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let i = 0; i < CHURN_CYCLES; i++) {
          const x = await t.container('churn');
          await x.container.stop({ t: 0 });
          await x.container.remove();
        }
      }),
    );
    console.log(`${name}: ${4 * CHURN_CYCLES} start/stop/remove cycles took ${Date.now() - churnStarted} ms`);
    await until('both bridges resynced twice after the churn', () => {
      return passes(bridgeA) >= passesBefore[0]! + 2 && passes(bridgeB) >= passesBefore[1]! + 2;
    });
    await converged('only the fixed containers remain, for both nodes', both);
    const after = await backend.stamps(t.scope, t.service);
    for (const id of both) expect(after.get(id), id).toBe(before.get(id));
  }, 600_000);
});
